"""The concurrency harness: processes and threads writing to and reading from the same scope and
different scopes at once, compression folding the shared scope meanwhile, and compressors racing
to fold the same turns.

Phases, all through the real ``Memory`` facade over ``PostgresEpisodeStore``:

1. baseline: one writer alone (in this process) writes ``turns`` turns with the same batches and
   reads as every concurrent writer;
2. concurrent: ``writers`` writer threads spread over ``processes`` processes (spawned), all
   released by one barrier. Even writers share one scope, odd writers own one each; every writer
   reads back (recall and recent turns) every ``read_every`` batches, and each process runs a
   compressor folding the shared scope while the writers write;
3. races: ``race_rounds`` times, ``racers`` compressors (threads in every process) call
   ``compress(force=True)`` on one scope at the same moment; exactly one fold may win, the
   others must notice (``FoldConflict``, counted in ``CompressionReport.conflicts``).

Then every scope is audited (:mod:`.audit`): each writer's turns stored exactly once.
"""

from __future__ import annotations

import multiprocessing
import queue
import secrets
import time
from collections.abc import Sequence
from typing import Any

from memstrata.errors import ConfigError, StoreUnavailable
from memstrata.memory import Memory
from memstrata.schemas import Scope, Turn

from memstrata_bench.reliability.audit import ScopeAudit, audit_scope
from memstrata_bench.reliability.components import (
    EmbedderName,
    Progress,
    drop_schema,
    fresh_schema,
    harness_config,
    load_embedder,
    open_memory,
)
from memstrata_bench.reliability.concurrency_work import (
    RACE_MODEL_DELAY_S,
    WriterStats,
    process_main,
    run_writer,
    writer_scope,
    writer_turns,
)

__all__ = ["run_concurrency"]

PHASE_TIMEOUT_S = 900.0
RACE_TURNS = 30


class _Processes:
    """The harness's spawned processes, each holding one Memory and waiting for tasks."""

    def __init__(self, count: int, *, dsn: str, schema: str, embedder: EmbedderName, pool_size: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.barrier = ctx.Barrier(count + 1)
        self.results: Any = ctx.Queue()
        self.tasks: list[Any] = [ctx.Queue() for _ in range(count)]
        self.procs = [
            ctx.Process(
                target=process_main,
                args=(i, dsn, schema, embedder, pool_size, self.tasks[i], self.results, self.barrier),
                daemon=True,
            )
            for i in range(count)
        ]
        for proc in self.procs:
            proc.start()
        self._collect("ready", timeout=120.0)

    def _collect(self, what: str, *, timeout: float) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(found) < len(self.procs):
            try:
                message = self.results.get(timeout=0.5)
            except queue.Empty:
                dead = [p.exitcode for p in self.procs if not p.is_alive()]
                if dead or time.monotonic() > deadline:
                    status = f" (a process exited with status {dead[0]})" if dead else ""
                    raise StoreUnavailable(f"the harness processes did not finish {what!r}{status}") from None
                continue
            if "failure" in message:
                raise StoreUnavailable(f"harness process {message['process']} failed:\n{message['failure']}")
            found.append(message)
        return sorted(found, key=lambda m: m["process"])

    def run(self, tasks: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        for box, task in zip(self.tasks, tasks, strict=True):
            box.put(task)
        self.barrier.wait(timeout=120.0)
        return self._collect(str(tasks[0]["kind"]), timeout=PHASE_TIMEOUT_S)

    def close(self) -> None:
        for box in self.tasks:
            box.put(None)
        for proc in self.procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
                proc.join()


def _throughput(operations: int, turns: int, seconds: float) -> dict[str, Any]:
    return {
        "operations": operations,
        "turns": turns,
        "seconds": round(seconds, 3),
        "throughput_ops_s": round(operations / seconds, 1) if seconds else None,
        "throughput_turns_s": round(turns / seconds, 1) if seconds else None,
    }


def _audits(memory: Memory, run_id: str, seed: int, writers: int, turns: int) -> dict[str, ScopeAudit]:
    """Audit every writer's scope, and the baseline writer's (its turns are writer 1's)."""
    expected: dict[str, dict[str, str]] = {}
    for w in range(writers):
        texts = expected.setdefault(writer_scope(run_id, w).user_id, {})
        texts.update({t.idempotency_key or "": t.content for t in writer_turns(seed, w, turns)})
    baseline = writer_scope(f"{run_id}-base", 1).user_id
    expected[baseline] = {t.idempotency_key or "": t.content for t in writer_turns(seed, 1, turns)}
    return {
        user: audit_scope(memory.store.scan(Scope(user_id=user)), texts) for user, texts in expected.items()
    }


def _race(memory: Memory, pool: _Processes, user: str, racers: int) -> dict[str, Any]:
    scope = Scope(user_id=user)
    turns = [
        Turn(role="user", content=f"Race note {i}: Omar kept {i + 3} maps in Oslo.")
        for i in range(RACE_TURNS)
    ]
    memory.add([t.model_copy(update={"idempotency_key": f"r:{i}"}) for i, t in enumerate(turns)], scope=scope)
    per_process = [racers // len(pool.procs) + (i < racers % len(pool.procs)) for i in range(len(pool.procs))]
    results = pool.run([{"kind": "race", "user": user, "threads": n} for n in per_process])
    attempts = [c for r in results for c in r["compressors"]]
    audit = audit_scope(memory.store.scan(scope), {f"r:{i}": t.content for i, t in enumerate(turns)})
    return {
        "winners": sum(a["folds"] for a in attempts),
        "conflicts": sum(a["conflicts"] for a in attempts),
        "errors": [a["error"] for a in attempts if a["error"]],
        "summaries": audit.summaries,
        "audit_ok": audit.ok,
    }


def run_concurrency(
    dsn: str,
    *,
    writers: int = 8,
    turns: int = 1000,
    processes: int = 2,
    batch: int = 10,
    read_every: int = 5,
    race_rounds: int = 5,
    racers: int = 4,
    embedder: EmbedderName = "hashing",
    seed: int | None = None,
    progress: bool = False,
    keep_schema: bool = False,
) -> dict[str, Any]:
    """Run the concurrency benchmark against the database at ``dsn`` (in a fresh schema).

    Args:
        writers: concurrent writers (threads), spread over ``processes`` processes.
        turns: turns each writer writes, ``batch`` per ``Memory.add``.
        read_every: each writer recalls and reads its recent turns every this many batches.
        race_rounds: rounds of ``racers`` compressors folding one scope at the same moment.
        embedder: ``hashing`` (default: the DB and the facade are under test, not onnxruntime) or ``minilm``.
        seed: seeds the turns' text (default random, reported).
        progress: a progress bar on stderr.

    Returns:
        The report: writers, operations, errors, lost, duplicated, throughput, the single-writer
        baseline and the ratio, and the compression races (see ``docs/reliability.md``).

    Raises:
        ConfigError: impossible sizes.
        StoreUnavailable: the database cannot be reached, or a harness process failed.
    """
    if writers < 1 or turns < 1 or batch < 1 or read_every < 1 or not 1 <= processes <= writers:
        raise ConfigError("need writers >= processes >= 1, and turns, batch, read_every >= 1")
    if race_rounds and racers < 2:
        raise ConfigError("a compression race needs at least 2 racers")
    seed = secrets.randbelow(2**31) if seed is None else seed
    run_id = f"cc-{secrets.token_hex(3)}"
    schema = fresh_schema("memstrata_concurrency")
    threads = -(-writers // processes)
    task = {"run_id": run_id, "seed": seed, "turns": turns, "batch": batch, "read_every": read_every}
    pool: _Processes | None = None
    try:
        with (
            open_memory(dsn, schema, load_embedder(embedder), config=harness_config(), setup=True) as memory,
            Progress(progress, 2 + race_rounds, "concurrency") as bar,
        ):
            bar.step("baseline: 1 writer", 0)
            started = time.perf_counter()
            alone = run_writer(memory, {**task, "run_id": f"{run_id}-base"}, 1)
            baseline = _throughput(alone.writes + alone.reads, turns, time.perf_counter() - started)
            if alone.failure:
                raise StoreUnavailable(f"the baseline writer failed:\n{alone.failure}")
            bar.step(f"{writers} writers")
            pool = _Processes(processes, dsn=dsn, schema=schema, embedder=embedder, pool_size=threads + 2)
            results = pool.run(
                [
                    {
                        **task,
                        "kind": "write",
                        "writers": list(range(p, writers, processes)),
                        "compress_shared": True,
                    }
                    for p in range(processes)
                ]
            )
            stats = [WriterStats(**s) for r in results for s in r["writers"]]
            seconds = max(r["end"] for r in results) - min(r["start"] for r in results)
            concurrent = _throughput(sum(s.writes + s.reads for s in stats), writers * turns, seconds)
            compressors = [r["compressor"] for r in results]
            bar.step("compression races")
            races = []
            for r in range(race_rounds):
                races.append(_race(memory, pool, f"{run_id}-race{r}", racers))
                bar.step(f"compression race {r + 1}")
            audits = _audits(memory, run_id, seed, writers, turns)
    finally:
        if pool is not None:
            pool.close()
        if not keep_schema:
            drop_schema(dsn, schema)
    shared = audits[writer_scope(run_id, 0).user_id]
    return {
        "writers": writers,
        "processes": processes,
        "threads_per_process": threads,
        "turns_per_writer": turns,
        "batch": batch,
        "scopes": len(audits),
        "operations": concurrent["operations"],
        "writes": sum(s.writes for s in stats),
        "reads": sum(s.reads for s in stats),
        "errors": sum(s.errors for s in stats) + sum(c.get("errors", 0) for c in compressors),
        "writer_failures": [s.failure for s in stats if s.failure][:3],
        "turns_stored": sum(a.turns for a in audits.values()),
        "lost": sum(a.lost for a in audits.values()),
        "duplicated": sum(a.duplicated for a in audits.values()),
        "unexpected": sum(a.unexpected + a.altered for a in audits.values()),
        "cross_scope_reads": sum(s.cross_scope_reads for s in stats),
        "read_your_writes_failures": sum(s.read_your_writes_failures for s in stats),
        "shared_scope": {
            "writers": len(range(0, writers, 2)),
            "compress_calls": sum(c.get("calls", 0) for c in compressors),
            "folds": sum(c.get("folds", 0) for c in compressors),
            "conflicts_noticed": sum(c.get("conflicts", 0) for c in compressors),
            "summaries": shared.summaries,
            "bad_summaries": shared.bad_summaries,
            "orphans": shared.orphans,
        },
        "problems": [p for a in audits.values() for p in a.problems][:10],
        "seconds": concurrent["seconds"],
        "throughput_ops_s": concurrent["throughput_ops_s"],
        "throughput_turns_s": concurrent["throughput_turns_s"],
        "baseline": baseline,
        "ratio": round(concurrent["throughput_ops_s"] / baseline["throughput_ops_s"], 2)
        if concurrent["throughput_ops_s"] and baseline["throughput_ops_s"]
        else None,
        "compression_races": {
            "rounds": race_rounds,
            "racers": racers,
            "model_delay_s": RACE_MODEL_DELAY_S,
            "single_winner_rounds": sum(r["winners"] == 1 and r["conflicts"] == racers - 1 for r in races),
            "winners": [r["winners"] for r in races],
            "conflicts_noticed": sum(r["conflicts"] for r in races),
            "errors": [e for r in races for e in r["errors"]][:3],
            "lineage_ok_rounds": sum(r["audit_ok"] for r in races),
        },
        "embedder": embedder,
        "seed": seed,
    }
