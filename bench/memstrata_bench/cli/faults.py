"""``memstrata bench faults`` and ``memstrata bench concurrency``: crash safety and concurrent
writers, checked on the real store (see ``docs/reliability.md``).

Both run in a fresh schema of ``--database-url``, else ``MEMSTRATA_DATABASE_URL``, else the
embedded server, and drop it at the end. Progress goes to stderr; ``--json`` prints one JSON
object on stdout. The exit status is 1 when the audit found anything wrong (a lost, duplicated or
half-written turn, bad lineage, a cross-scope read), so the commands can gate a release.
"""

from __future__ import annotations

import json
import os
from typing import Annotated, Any

import typer

from memstrata_bench.cli.group import bench

_EMBEDDERS = ("hashing", "minilm")
_FAULT_KEYS = ("turns_lost", "duplicates", "unexpected_turns", "altered_turns", "half_written_batches",
               "bad_summaries", "orphans", "worker_errors", "recovery_errors")  # fmt: skip


def _embedder(name: str) -> Any:
    if name not in _EMBEDDERS:
        raise typer.BadParameter(f"must be one of {', '.join(_EMBEDDERS)}", param_hint="--embedder")
    return name


def _finish(report: dict[str, Any], *, as_json: bool, failed: bool) -> None:
    report["machine"] = {"cpus": os.cpu_count(), "load_avg_1m_at_end": round(os.getloadavg()[0], 2)}
    if as_json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key}: {value}")
    if failed:
        raise typer.Exit(1)


def _run(command: str, action: Any) -> dict[str, Any]:
    from memstrata.errors import MemstrataError, UsageError

    try:
        result: dict[str, Any] = action()
    except MemstrataError as exc:
        typer.echo(f"memstrata bench {command}: {exc}", err=True)
        raise typer.Exit(2 if isinstance(exc, UsageError) else 1) from None
    return result


@bench.command("faults")
def bench_faults(
    trials: Annotated[int, typer.Option("--trials", min=1, help="Workers to SIGKILL.")] = 200,
    seed: Annotated[int | None, typer.Option("--seed", help="Seeds plans and kill delays.")] = None,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="PostgreSQL DSN (default: the embedded server).")
    ] = None,
    max_delay: Annotated[
        float, typer.Option("--max-delay", min=0.0, help="Kill delays are uniform in [0, this] seconds.")
    ] = 1.5,
    embedder: Annotated[str, typer.Option("--embedder", help="hashing or minilm.")] = "hashing",
    keep_schema: Annotated[bool, typer.Option("--keep-schema", help="Keep the schema to inspect.")] = False,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Progress bar on stderr.")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    kill_server: Annotated[
        bool,
        typer.Option(
            "--kill-server",
            help="Also SIGKILL the database server with each worker (a private embedded server the "
            "harness starts in a scratch dir), restart it, then audit.",
        ),
    ] = False,
) -> None:
    """Kill workers (and with --kill-server the database itself) at random points of add,
    compress and chat; restart; audit the store."""
    from memstrata_bench.reliability.components import resolve_database
    from memstrata_bench.reliability.faults import run_faults

    def action() -> dict[str, Any]:
        if kill_server:
            return _with_private_server(trials, seed, max_delay, _embedder(embedder), progress, database_url)
        dsn, database = resolve_database(database_url)
        report = run_faults(
            dsn,
            trials=trials,
            seed=seed,
            max_delay_s=max_delay,
            embedder=_embedder(embedder),
            progress=progress,
            keep_schema=keep_schema,
        )
        return {**report, "database": database}

    report = _run("faults", action)
    _finish(report, as_json=as_json, failed=any(report[k] for k in _FAULT_KEYS))


def _with_private_server(
    trials: int, seed: int | None, max_delay: float, embedder: Any, progress: bool, database_url: str | None
) -> dict[str, Any]:
    """``bench faults --kill-server``: the trials against a private embedded server."""
    import shutil
    import tempfile
    from pathlib import Path

    from memstrata.errors import ConfigError

    from memstrata_bench.reliability.faults import run_faults
    from memstrata_bench.reliability.server_kills import KillableServer

    if database_url:
        raise ConfigError("--kill-server starts and kills its own embedded server: drop --database-url")
    base = "/var/tmp" if os.path.isdir("/var/tmp") else None
    scratch = Path(tempfile.mkdtemp(prefix="memstrata-server-kills-", dir=base))
    server = KillableServer(scratch / "data")
    try:
        dsn = server.start()
        report = run_faults(
            dsn,
            trials=trials,
            seed=seed,
            max_delay_s=max_delay,
            embedder=embedder,
            progress=progress,
            server=server,
        )
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    return {**report, "database": {"kind": "private embedded, SIGKILLed each trial"}}


@bench.command("concurrency")
def bench_concurrency(
    writers: Annotated[int, typer.Option("--writers", min=1, help="Concurrent writer threads.")] = 8,
    turns: Annotated[int, typer.Option("--turns", min=1, help="Turns each writer writes.")] = 1000,
    processes: Annotated[int, typer.Option("--processes", min=1, help="Processes the writers share.")] = 2,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Turns per Memory.add.")] = 10,
    read_every: Annotated[int, typer.Option("--read-every", min=1, help="Batches between reads.")] = 5,
    race_rounds: Annotated[int, typer.Option("--race-rounds", min=0, help="Compression races.")] = 5,
    racers: Annotated[int, typer.Option("--racers", min=2, help="Compressors per race.")] = 4,
    embedder: Annotated[str, typer.Option("--embedder", help="hashing or minilm.")] = "hashing",
    seed: Annotated[int | None, typer.Option("--seed", help="Seeds the turns' text.")] = None,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="PostgreSQL DSN (default: the embedded server).")
    ] = None,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Progress bar on stderr.")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Writers in several processes and threads on shared and own scopes, compression racing."""
    from memstrata_bench.reliability.components import resolve_database
    from memstrata_bench.reliability.concurrency import run_concurrency

    def action() -> dict[str, Any]:
        dsn, database = resolve_database(database_url)
        report = run_concurrency(
            dsn,
            writers=writers,
            turns=turns,
            processes=processes,
            batch=batch,
            read_every=read_every,
            race_rounds=race_rounds,
            racers=racers,
            embedder=_embedder(embedder),
            seed=seed,
            progress=progress,
        )
        return {**report, "database": database}

    report = _run("concurrency", action)
    races = report["compression_races"]
    failed = bool(
        report["writer_failures"]
        or report["lost"]
        or report["duplicated"]
        or report["unexpected"]
        or report["cross_scope_reads"]
        or report["read_your_writes_failures"]
        or report["shared_scope"]["bad_summaries"]
        or report["shared_scope"]["orphans"]
        or races["single_winner_rounds"] != races["rounds"]
        or races["lineage_ok_rounds"] != races["rounds"]
    )
    _finish(report, as_json=as_json, failed=failed)
