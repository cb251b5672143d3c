"""What runs inside each process of the concurrency harness: writer threads, a compressor
thread, and compressors racing to fold the same scope.

Every worker goes through the real ``Memory`` facade over one ``PostgresEpisodeStore`` (one
connection pool) per process. Results go back to the harness as plain dicts.
"""

from __future__ import annotations

import random
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

from memstrata.errors import MemstrataError
from memstrata.memory import Memory
from memstrata.schemas import Episode, Scope, Turn
from memstrata.schemas.config import CompressionConfig, MemoryConfig, PlannerConfig

from memstrata_bench.reliability.components import (
    EmbedderName,
    harness_config,
    load_embedder,
    open_memory,
    scripted_model,
)

__all__ = ["RACE_MODEL_DELAY_S", "WriterStats", "process_main", "run_writer", "writer_scope", "writer_turns"]

RACE_MODEL_DELAY_S = 0.4
"""Each racing compressor's model call takes this long, so all of them have read the scope
before the first fold commits (a real model takes longer)."""
_RETRIES = 5
_NAMES = ("Maria", "Tomas", "Aiko", "Lena", "Omar", "Priya", "Jonas", "Chen")
_PLACES = ("Lisbon", "Osaka", "Nairobi", "Quito", "Tallinn", "Hobart", "Oslo", "Accra")
_THINGS = ("bikes", "lemons", "tickets", "books", "plants", "lamps", "maps", "kites")


def writer_scope(run_id: str, writer: int) -> Scope:
    """Even writers share one scope; odd writers each have their own."""
    return Scope(user_id=f"{run_id}-shared" if writer % 2 == 0 else f"{run_id}-w{writer}")


def writer_turns(seed: int, writer: int, count: int) -> list[Turn]:
    """The turns writer ``writer`` writes, the same in every process (keys ``w<writer>:<i>``)."""
    rng = random.Random(seed * 1009 + writer)
    return [
        Turn(
            role="user" if i % 2 == 0 else "assistant",
            content=f"Writer {writer} note {i}: {rng.choice(_NAMES)} kept {rng.randint(2, 99)} "
            f"{rng.choice(_THINGS)} in {rng.choice(_PLACES)}.",
            idempotency_key=f"w{writer}:{i}",
        )
        for i in range(count)
    ]


@dataclass
class WriterStats:
    writer: int
    writes: int = 0
    reads: int = 0
    errors: int = 0
    cross_scope_reads: int = 0
    read_your_writes_failures: int = 0
    failure: str | None = None


def _retrying(action: Callable[[], Any], stats: WriterStats) -> Any:
    for attempt in range(_RETRIES):
        try:
            return action()
        except MemstrataError:
            stats.errors += 1
            if attempt == _RETRIES - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    return None


def _check_scope(episodes: list[Episode], scope: Scope, stats: WriterStats) -> None:
    stats.cross_scope_reads += sum(
        e.scope.user_id != scope.user_id or e.scope.agent_id != scope.agent_id for e in episodes
    )


def run_writer(memory: Memory, task: dict[str, Any], writer: int) -> WriterStats:
    stats = WriterStats(writer)
    scope = writer_scope(task["run_id"], writer)
    own = writer % 2 == 1
    turns = writer_turns(task["seed"], writer, task["turns"])
    size, every = task["batch"], task["read_every"]
    try:
        for number, start in enumerate(range(0, len(turns), size), start=1):
            batch = turns[start : start + size]
            _retrying(partial(memory.add, batch, scope=scope), stats)
            stats.writes += 1
            if number % every:
                continue
            hits = _retrying(partial(memory.recall, batch[-1].content, scope=scope, k=10), stats)
            recent = _retrying(lambda: memory.recent(scope=scope, limit=5), stats)
            stats.reads += 2
            _check_scope([h.episode for h in hits] + recent, scope, stats)
            wrote = [t.idempotency_key for t in turns[max(0, start + len(batch) - 5) : start + len(batch)]]
            if own and [e.idempotency_key for e in recent] != wrote:
                stats.read_your_writes_failures += 1
    except Exception:  # reported, not raised: the harness counts it
        stats.failure = traceback.format_exc(limit=3)
    return stats


def _compress_until(memory: Memory, scope: Scope, done: threading.Event) -> dict[str, Any]:
    folds = conflicts = errors = calls = 0
    while not done.is_set():
        try:
            report = memory.compress(scope=scope)
            folds += len(report.folds)
            conflicts += report.conflicts
        except MemstrataError:
            errors += 1
        calls += 1
        time.sleep(0.02)
    return {"calls": calls, "folds": folds, "conflicts": conflicts, "errors": errors}


def _run_threads(jobs: list[Callable[[], Any]]) -> list[Any]:
    results: list[Any] = [None] * len(jobs)

    def run(index: int) -> None:
        results[index] = jobs[index]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def run_writers(memory: Memory, task: dict[str, Any]) -> dict[str, Any]:
    """Writer threads for ``task["writers"]``, plus (if asked) one compressor on the shared scope."""
    done = threading.Event()
    shared = writer_scope(task["run_id"], 0)
    compressor: dict[str, Any] = {}
    worker = None
    if task.get("compress_shared"):
        worker = threading.Thread(target=lambda: compressor.update(_compress_until(memory, shared, done)))
        worker.start()
    started = time.time()
    stats = _run_threads([partial(run_writer, memory, task, w) for w in task["writers"]])
    ended = time.time()
    done.set()
    if worker is not None:
        worker.join()
    return {"writers": [asdict(s) for s in stats], "compressor": compressor, "start": started, "end": ended}


def race_config() -> MemoryConfig:
    """Only the forced fold is due: each racing ``compress(force=True)`` attempts one fold (the
    threshold is out of reach, and the whole window is the recent room, so no fold is due by it)."""
    return MemoryConfig(
        planner=PlannerConfig(memory_window_share=1.0, memory_budget=None),
        compression=CompressionConfig(
            threshold=10, stack_fraction=1.0, chunk_fraction=0.06, keep_recent_turns=4, background=False
        ),
    )


def _race_once(memory: Memory, scope: Scope, gate: threading.Barrier) -> dict[str, Any]:
    gate.wait()
    try:
        report = memory.compress(scope=scope, force=True)
        return {"folds": len(report.folds), "conflicts": report.conflicts, "error": None}
    except MemstrataError as exc:
        return {"folds": 0, "conflicts": 0, "error": f"{type(exc).__name__}: {exc}"}


def run_race(memory: Memory, task: dict[str, Any]) -> dict[str, Any]:
    """``task["threads"]`` threads compressing ``task["user"]``'s scope at the same moment."""
    race = Memory(
        memory.store, memory.embedder, model=scripted_model(delay_s=RACE_MODEL_DELAY_S), config=race_config()
    )
    scope = Scope(user_id=task["user"])
    gate = threading.Barrier(task["threads"])
    results = _run_threads([lambda: _race_once(race, scope, gate) for _ in range(task["threads"])])
    return {"compressors": results}


def process_main(
    index: int,
    dsn: str,
    schema: str,
    embedder: EmbedderName,
    pool_size: int,
    tasks: Any,
    results: Any,
    barrier: Any,
) -> None:
    """A harness process: build a Memory, say ``ready``, then run tasks until told to stop.

    Each task starts when every process (and the harness) has reached ``barrier``.
    """
    try:
        with open_memory(
            dsn, schema, load_embedder(embedder), config=harness_config(), pool_size=pool_size
        ) as memory:
            results.put({"process": index, "ready": True})
            while (task := tasks.get()) is not None:
                barrier.wait()
                runner = run_writers if task["kind"] == "write" else run_race
                results.put({"process": index, "kind": task["kind"], **runner(memory, task)})
    except Exception:
        results.put({"process": index, "failure": traceback.format_exc(limit=5)})
