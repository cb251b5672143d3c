"""``memstrata serve``: the OpenAI-compatible chat server with memory (uvicorn).

The upstream model is the local GGUF (``--model``, else ``MEMSTRATA_MODEL_PATH``, else the default
model) or an OpenAI-compatible server (``--upstream-url``, else ``MEMSTRATA_MODEL_URL``). Memory is
``open_memory()``'s: ``MEMSTRATA_DATABASE_URL`` or the embedded PostgreSQL.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Annotated

import typer
from memstrata.adapters.cli.app import app
from memstrata.adapters.extras import require
from memstrata.errors import ConfigError, MemstrataError
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
            token_counter=LlamaCppTokenCounter(model) if model is not None else None,
        )
    from memstrata.adapters.llamacpp import LlamaCppChatModel

    return LlamaCppChatModel(
        model or settings.model_path, n_ctx=n_ctx or settings.model_n_ctx, n_threads=threads
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
    trust_user_header: Annotated[
        bool,
        typer.Option(
            "--trust-user-header",
            help="Take the user from X-Memstrata-User / 'user' WITHOUT an API key (only behind an "
            "authenticating gateway).",
        ),
    ] = False,
) -> None:
    """Serve /v1/chat/completions with long-term memory per user; callers need an API key
    (``memstrata keys create``). Stops on SIGTERM or Ctrl-C, leaving the embedded database."""
    with ExitStack() as stack:
        try:
            uvicorn = require("uvicorn", extra="server", purpose="memstrata serve")
            from memstrata.adapters.defaults import open_memory
            from memstrata.adapters.server import create_app

            upstream = build_upstream(
                model=model, upstream_url=upstream_url, model_name=model_name, n_ctx=n_ctx, threads=threads
            )
            memory = stack.enter_context(open_memory(model=upstream))
            application = create_app(
                memory,
                upstream=upstream,
                agent_id=agent_id,
                max_tokens=max_tokens,
                model_name=model_name,
                trust_user_header=trust_user_header,
            )
            listening = stack.enter_context(_listening(host, port))
        except MemstrataError as exc:
            typer.echo(f"memstrata serve: {' '.join(str(exc).split())}", err=True)
            raise typer.Exit(2) from None
        server = uvicorn.Server(uvicorn.Config(application, host=host, port=port, log_level="info"))
        typer.echo(
            f"memstrata serve: http://{host}:{port}/v1 (OpenAI-compatible; api_key: memstrata keys create)",
            err=True,
        )
        # uvicorn handles SIGTERM / SIGINT, shuts down, then re-raises the signal: the handlers the
        # embedded database installed (see memstrata.adapters.postgres.exit_signals) turn it into an
        # exit that runs this block's cleanup.
        server.run(sockets=[listening])


@contextmanager
def _listening(host: str, port: int) -> Iterator[socket.socket]:
    """The bound listening socket (so a port in use fails before the banner, in one line)."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    with sock:
        yield sock
