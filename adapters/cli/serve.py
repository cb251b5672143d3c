"""``memstrata serve``: the OpenAI-compatible chat server with memory (uvicorn).

The upstream model is the local GGUF (``--model``, else ``MEMSTRATA_MODEL_PATH``, else the default
model) or an OpenAI-compatible server (``--upstream-url``, else ``MEMSTRATA_MODEL_URL``). Memory is
``open_memory()``'s: ``MEMSTRATA_DATABASE_URL`` or the embedded PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from memstrata.adapters.cli.app import app
from memstrata.adapters.extras import require
from memstrata.errors import MemstrataError
from memstrata.ports import StreamingChatModel
from memstrata.schemas.model_config import ModelSettings

__all__ = ["build_upstream", "serve"]


def build_upstream(
    *,
    model: Path | None = None,
    upstream_url: str | None = None,
    model_name: str | None = None,
    n_ctx: int | None = None,
    threads: int | None = None,
) -> StreamingChatModel:
    """The model that answers: an OpenAI-compatible server when a URL is given (here or in
    ``MEMSTRATA_MODEL_URL``), else a local GGUF (``model``, ``MEMSTRATA_MODEL_PATH``, the default).

    With a URL and a local ``model`` file too, prompts are counted exactly with that file's
    tokenizer (give the GGUF the server runs).

    Raises:
        ConfigError, ModelUnavailable: as the model adapters.
    """
    settings = ModelSettings()
    url = upstream_url or (settings.model_url if model is None else None)
    if url:
        from memstrata.adapters.llamacpp import LlamaCppTokenCounter
        from memstrata.adapters.openai_compat import OpenAICompatibleChatModel

        return OpenAICompatibleChatModel(
            url,
            model=model_name or settings.model_name,
            api_key=settings.api_key,
            context_window=n_ctx or settings.model_n_ctx,
            json_mode=settings.model_json_mode,
            token_counter=LlamaCppTokenCounter(model) if model is not None else None,
        )
    from memstrata.adapters.llamacpp import LlamaCppChatModel
    from memstrata.adapters.models import local_model_path

    return LlamaCppChatModel(
        model or local_model_path(settings), n_ctx=n_ctx or settings.model_n_ctx, n_threads=threads
    )


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    upstream_url: Annotated[
        str | None, typer.Option(help="An OpenAI-compatible server to answer (default: the local model).")
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(help="A GGUF file: the local model, or the upstream's tokenizer with --upstream-url."),
    ] = None,
    model_name: Annotated[
        str | None, typer.Option(help="Model name to request upstream and to report.")
    ] = None,
    n_ctx: Annotated[
        int | None, typer.Option(help="Context window (local n_ctx, or the upstream's).")
    ] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads for the local model.")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Answer length when a request sets none.")] = None,
    agent_id: Annotated[str, typer.Option(help="The agent id of every request's scope.")] = "default",
) -> None:
    """Serve /v1/chat/completions with long-term memory per user (``user`` field or X-Memstrata-User)."""
    try:
        uvicorn = require("uvicorn", extra="server", purpose="memstrata serve")
        from memstrata.adapters.defaults import open_memory
        from memstrata.adapters.server import create_app

        upstream = build_upstream(
            model=model, upstream_url=upstream_url, model_name=model_name, n_ctx=n_ctx, threads=threads
        )
    except MemstrataError as exc:
        typer.echo(f"memstrata serve: {exc}", err=True)
        raise typer.Exit(2) from exc
    application = create_app(
        lambda: open_memory(model=upstream),
        upstream=upstream,
        agent_id=agent_id,
        max_tokens=max_tokens,
        model_name=model_name,
    )
    typer.echo(
        f"memstrata serve: http://{host}:{port}/v1 (OpenAI-compatible; pass user= or X-Memstrata-User)",
        err=True,
    )
    uvicorn.run(application, host=host, port=port, log_level="info")
