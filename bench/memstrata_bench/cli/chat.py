"""``memstrata bench chat``: prefix-cache reuse, time to first token and reply length over a long
chat on the local model, against the same prompts with the cache emptied (see
:mod:`memstrata_bench.chat_run`)."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Annotated

import typer

from memstrata_bench.cli.group import bench


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@bench.command("chat")
def chat(
    turns: Annotated[int, typer.Option("--turns", min=2, help="User messages to send.")] = 100,
    window: Annotated[int, typer.Option("--window", min=256, help="The model's context (n_ctx).")] = 2048,
    model_path: Annotated[
        Path | None, typer.Option("--model", help="A GGUF file (default: SmolLM2-135M).")
    ] = None,
    threads: Annotated[
        int | None, typer.Option("--threads", help="llama.cpp threads (default: cores - 1).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="The script's seed.")] = 7,
    dsn: Annotated[
        str | None, typer.Option("--dsn", help="A Postgres DSN (default: the embedded server).")
    ] = None,
    think_ms: Annotated[
        int, typer.Option("--think-ms", min=0, help="The user's pause after each reply, in ms (not timed).")
    ] = 0,
    warm: Annotated[
        bool, typer.Option("--warm/--no-warm", help="Warm the chat's prompt cache after each fold.")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
) -> None:
    """A long scripted chat through Memory.stream (folds in the background): cache reuse and TTFT."""
    from memstrata.adapters.defaults import open_memory
    from memstrata.adapters.llamacpp import LlamaCppChatModel
    from memstrata.schemas import Scope
    from memstrata.schemas.config import CompressionConfig, MemoryConfig

    from memstrata_bench.chat_run import replay_without_cache, report, run_chat, script

    model = LlamaCppChatModel(model_path, n_ctx=window, n_threads=threads)
    user = f"bench-chat-{uuid.uuid4().hex[:8]}"
    messages = script(turns, seed=seed)
    try:
        config = MemoryConfig(compression=CompressionConfig(warm=warm))
        with open_memory(model=model, dsn=dsn, config=config) as memory:
            try:
                figures, prompts = run_chat(
                    memory, model, messages, user=user, progress=_progress, think_ms=think_ms
                )
                memory.wait_for_compression()
                cap = memory.config.planner.reserve_tokens
                baseline = replay_without_cache(model, prompts, max_tokens=cap, progress=_progress)
                settings = {
                    "model": model.name,
                    "n_ctx": model.context_window,
                    "n_threads": model.n_threads,
                    "path": "Memory.stream on open_memory defaults (embedded Postgres, MiniLM, folds in a sibling context)",
                    "reply_cap": cap,
                    "seed": seed,
                    "think_ms": think_ms,
                    "warm_after_fold": warm,
                }
                result = report(figures, baseline, config=settings)
            finally:
                memory.forget(scope=Scope(user_id=user))
    finally:
        model.close()
    if as_json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            if key not in ("per_turn", "baseline_ttft_ms"):
                print(f"{key}: {value}")
