"""The process the fault harness kills.

The harness forks each worker from a multiprocessing fork server that has already imported
memstrata, psycopg and pgvector (so a new worker is ready in ~0.1 s instead of ~1-2 s on a
2-core machine); :func:`serve` is that process's target. ``python -m
memstrata_bench.reliability.fault_worker`` runs the same worker by hand, reading the DSN from
``MEMSTRATA_DATABASE_URL`` (never from its command line, which other users can read).

A worker builds a real ``Memory`` over ``PostgresEpisodeStore``, warms it up, says ``ready``,
waits for ``go``, then runs its trial's plan (see :func:`.fault_plan.plan`), journaling
``begin i`` / ``ack i`` around each step, until it is SIGKILLed (or, rarely, finishes).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["PRELOAD", "WorkerArgs", "main", "run_worker", "serve"]

PRELOAD = [
    "memstrata_bench.reliability.components",
    "memstrata_bench.reliability.fault_plan",
    "memstrata.adapters.postgres.store",
    "memstrata_bench.runtime",
    "psycopg_pool",
    "pgvector.psycopg",
]
"""Modules the fork server imports once, before forking workers."""


@dataclass(frozen=True)
class WorkerArgs:
    """One worker's trial: where to write, whose scope, which plan, where to journal."""

    dsn: str
    schema: str
    user: str
    seed: int
    journal: Path
    embedder: str = "hashing"
    operations: int = 200


def run_worker(args: WorkerArgs, *, ready: Callable[[], None], go: Callable[[], bool]) -> None:
    """Build the worker's Memory, call ``ready``, and run the plan if ``go()`` says so."""
    from memstrata.schemas import Scope

    from memstrata_bench.reliability.components import load_embedder, open_memory
    from memstrata_bench.reliability.fault_plan import Journal, plan, run_step

    steps = plan(args.seed, args.user, operations=args.operations)
    embedder = load_embedder("minilm" if args.embedder == "minilm" else "hashing")
    embedder.embed(["warm up"])
    with open_memory(args.dsn, args.schema, embedder) as memory:
        memory.store.scan(Scope(user_id=args.user), limit=1)
        ready()
        if not go():
            return
        journal = Journal(args.journal)
        try:
            for step in steps:
                journal.record("begin", step.index)
                run_step(memory, step, args.user)
                journal.record("ack", step.index)
        finally:
            journal.close()


def serve(channel: Any, args: WorkerArgs, log: Path) -> None:
    """The fork server's target: ``("ready", time)``/``go`` over a multiprocessing pipe; a
    failure's traceback goes to ``log`` and the exit status is 1."""
    try:
        run_worker(
            args, ready=lambda: channel.send(("ready", time.time())), go=lambda: channel.recv() == "go"
        )
    except BaseException:
        log.write_text(traceback.format_exc())
        os._exit(1)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one worker by hand (``ready`` on stdout, ``go`` on stdin); returns the exit status."""
    parser = argparse.ArgumentParser(prog="fault_worker", description=__doc__)
    parser.add_argument("--schema", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--journal", type=Path, required=True)
    parser.add_argument("--embedder", choices=("minilm", "hashing"), default="hashing")
    parser.add_argument("--operations", type=int, default=200)
    options = parser.parse_args(argv)
    from memstrata.adapters.postgres.dsn import DATABASE_URL_ENV

    dsn = os.environ.get(DATABASE_URL_ENV, "").strip()
    if not dsn:
        print(f"fault_worker: {DATABASE_URL_ENV} is not set", file=sys.stderr)
        return 2
    args = WorkerArgs(dsn, options.schema, options.user, options.seed, options.journal, options.embedder,
                      options.operations)  # fmt: skip
    run_worker(
        args,
        ready=lambda: print("ready", flush=True),
        go=lambda: sys.stdin.readline().strip() == "go",
    )
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
