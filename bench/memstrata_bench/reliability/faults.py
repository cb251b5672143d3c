"""The fault-injection harness: SIGKILL a worker at a random moment, restart as a client would,
and audit what the store holds.

One trial, in its own scope (user):

1. a worker process (:mod:`.fault_worker`) runs a seeded plan of ``Memory.add`` batches (with
   idempotency keys), ``Memory.compress(force=True)`` and ``Memory.chat`` (with an idempotency
   key), journaling each step it got an answer for;
2. after a seeded random delay the harness SIGKILLs it (mid-transaction, mid-embedding,
   between steps: wherever it is);
3. the harness checks that the unacknowledged step left all or nothing, re-sends it with the same
   keys as a restarted client would, compresses once more, then audits the scope: every turn of
   every acknowledged or re-sent step stored exactly once with its text, every summary's lineage
   valid (see :mod:`.audit`), no orphan.

Workers are forked from a multiprocessing fork server that imported memstrata and psycopg once
(a worker is ready in ~0.3 s instead of ~1-2 s), and the next trial's worker starts while the
current one runs. Each is still a separate process with its own connections, killed for real.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import secrets
import shutil
import signal
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memstrata.errors import MemstrataError, StoreUnavailable
from memstrata.memory import Memory
from memstrata.schemas import EpisodeKind, Scope

from memstrata_bench.reliability.audit import ScopeAudit, audit_scope, batch_state
from memstrata_bench.reliability.components import (
    EmbedderName,
    Progress,
    drop_schema,
    fresh_schema,
    load_embedder,
    open_memory,
)
from memstrata_bench.reliability.fault_plan import expected_turns, plan, read_journal, run_step
from memstrata_bench.reliability.fault_worker import PRELOAD, WorkerArgs, serve
from memstrata_bench.reliability.server_kills import KillableServer

__all__ = ["TrialResult", "run_faults"]

READY_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class _Spec:
    index: int
    user: str
    seed: int
    delay_s: float


@dataclass
class TrialResult:
    """One trial: where the kill landed, what the restart did, what the audit found."""

    killed: bool
    kill_point: str
    acked: int
    retried: str | None
    retry_found: str
    half_written: bool
    audit: ScopeAudit
    max_level: int
    worker_error: str | None = None
    recovery_error: str | None = None
    recovery_s: float = 0.0
    server_killed: bool = False


def _fork_context() -> Any:
    """The fork server workers are forked from, with memstrata and psycopg already imported."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


class _Worker:
    """A worker process started ahead of its trial, waiting for ``go``."""

    def __init__(self, ctx: Any, spec: _Spec, *, args: WorkerArgs, scratch: Path) -> None:
        self.spec = spec
        self.journal = args.journal
        self.log = scratch / f"trial-{spec.index}.log"
        self.channel, child = ctx.Pipe()
        self.started = time.time()
        self.proc = ctx.Process(target=serve, args=(child, args, self.log), daemon=True)
        self.proc.start()
        child.close()
        self.ready_s: float | None = None

    def wait_ready(self) -> None:
        try:
            if self.channel.poll(READY_TIMEOUT_S):
                _, ready_at = self.channel.recv()
                self.ready_s = ready_at - self.started
                return
        except EOFError:
            pass
        self.stop()
        raise StoreUnavailable(f"fault worker {self.spec.index} did not start: {self.error_tail()}")

    def run_and_kill(self, server: KillableServer | None = None) -> bool:
        """Send ``go``, SIGKILL after the trial's delay (the database ``server`` first, when
        given, then the worker); True if the kill found the worker running."""
        self.channel.send("go")
        time.sleep(self.spec.delay_s)
        killed: bool = self.proc.is_alive()
        if server is not None:
            server.kill()
        if self.proc.is_alive():
            self.proc.kill()  # SIGKILL
        self.proc.join()
        return killed

    @property
    def failed(self) -> bool:
        return self.proc.exitcode not in (0, -signal.SIGKILL)

    def error_tail(self) -> str:
        text = self.log.read_text(errors="replace").strip() if self.log.exists() else ""
        return text[-800:] or f"exit status {self.proc.exitcode}"

    def stop(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join()
        self.channel.close()


def recover_and_audit(
    memory: Memory, spec: _Spec, journal: Path, *, operations: int, killed: bool = True
) -> TrialResult:
    """Restart as a client would after the worker died, then audit the trial's scope.

    A memstrata error while re-sending or compressing is recorded, not raised: the audit still runs.
    """
    started = time.perf_counter()
    steps = plan(spec.seed, spec.user, operations=operations)
    state = read_journal(journal)
    scope = Scope(user_id=spec.user)
    kill_point = steps[state.in_flight].kind if state.in_flight is not None else "between steps"
    retry = steps[state.acked] if state.acked < len(steps) else None
    retry_found, half = "none", False
    if retry is not None and retry.kind != "compress":
        stored = {
            e.idempotency_key
            for e in memory.store.scan(scope, kinds=(EpisodeKind.TURN,))
            if e.idempotency_key is not None
        }
        retry_found = batch_state(stored, list(retry.expected()))
        half = retry_found == "partial"
    failure = None
    try:
        if retry is not None:
            run_step(memory, retry, spec.user)
        memory.compress(scope=scope, force=True)
    except MemstrataError as exc:
        failure = f"{type(exc).__name__}: {exc}"
    episodes = memory.store.scan(scope)
    intended = steps[: state.acked + 1]
    audit = audit_scope(episodes, expected_turns(intended))
    return TrialResult(
        killed=killed,
        kill_point=kill_point,
        acked=state.acked,
        retried=retry.kind if retry is not None else None,
        retry_found=retry_found,
        half_written=half,
        audit=audit,
        max_level=max((e.level for e in episodes), default=0),
        recovery_error=failure,
        recovery_s=time.perf_counter() - started,
    )


@dataclass
class _Totals:
    results: list[TrialResult] = field(default_factory=list)
    ready_s: list[float] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        rs = self.results
        audits = [r.audit for r in rs]
        problems = [f"trial {i}: {p}" for i, r in enumerate(rs) for p in r.audit.problems]
        return {
            "trials": len(rs),
            "kills": sum(r.killed for r in rs),
            "server_kills": sum(r.server_killed for r in rs),
            "kill_points": dict(Counter(r.kill_point for r in rs if r.killed)),
            "worker_errors": sum(r.worker_error is not None for r in rs),
            "recovery_errors": sum(r.recovery_error is not None for r in rs),
            "operations_acknowledged": sum(r.acked for r in rs),
            "retried": dict(Counter(r.retried for r in rs if r.retried is not None)),
            "unacknowledged_but_stored": sum(r.retry_found == "all" for r in rs),
            "turns_written": sum(a.turns for a in audits),
            "turns_lost": sum(a.lost for a in audits),
            "duplicates": sum(a.duplicated for a in audits),
            "unexpected_turns": sum(a.unexpected for a in audits),
            "altered_turns": sum(a.altered for a in audits),
            "half_written_batches": sum(r.half_written for r in rs),
            "summaries": sum(a.summaries for a in audits),
            "max_summary_level": max((r.max_level for r in rs), default=0),
            "bad_summaries": sum(a.bad_summaries for a in audits),
            "orphans": sum(a.orphans for a in audits),
            "problems": problems[:20],
            "error_samples": [e for r in rs for e in (r.worker_error, r.recovery_error) if e][:3],
            "worker_ready_s_mean": round(sum(self.ready_s) / len(self.ready_s), 3) if self.ready_s else None,
            "recovery_s_mean": round(sum(r.recovery_s for r in rs) / len(rs), 3) if rs else None,
        }


def run_faults(
    dsn: str,
    *,
    trials: int,
    seed: int | None = None,
    max_delay_s: float = 1.5,
    embedder: EmbedderName = "hashing",
    operations: int = 200,
    progress: bool = False,
    keep_schema: bool = False,
    server: KillableServer | None = None,
) -> dict[str, Any]:
    """Run ``trials`` kill-and-restart trials against the database at ``dsn``.

    Args:
        dsn: a PostgreSQL with pgvector; a fresh schema is created in it (and dropped at the end
            unless ``keep_schema``).
        trials: how many workers to kill.
        seed: seeds every plan and kill delay (default: random, reported).
        max_delay_s: kill delays are uniform in ``[0, max_delay_s]`` after the worker starts its plan.
        embedder: ``hashing`` (default, see :mod:`.components` for why) or ``minilm``.
        operations: steps in each worker's plan (it is killed long before the end).
        progress: a progress bar on stderr.
        server: the private embedded server ``dsn`` points at, to SIGKILL with each worker (and
            restart before recovery): a database crash during writes and folds.

    Returns:
        The report: trials, kills, turns_written, turns_lost, duplicates, bad_summaries,
        half_written_batches and more (see ``docs/reliability.md``).

    Raises:
        StoreUnavailable: the database cannot be reached, or a worker did not start.
    """
    seed = secrets.randbelow(2**31) if seed is None else seed
    rng = random.Random(seed)
    run_id = secrets.token_hex(3)
    specs = [
        _Spec(i, f"faults-{run_id}-{i}", rng.randrange(2**31), rng.uniform(0.0, max_delay_s))
        for i in range(trials)
    ]
    schema = fresh_schema("memstrata_faults")
    base = "/var/tmp" if os.path.isdir("/var/tmp") else None
    scratch = Path(tempfile.mkdtemp(prefix="memstrata-faults-", dir=base))
    totals = _Totals()
    started = time.perf_counter()
    worker: _Worker | None = None
    upcoming: _Worker | None = None
    try:
        with (
            open_memory(dsn, schema, load_embedder(embedder), setup=True) as memory,
            Progress(progress, trials, "faults") as bar,
        ):
            ctx = _fork_context()

            def spawn(spec: _Spec) -> _Worker:
                journal = scratch / f"trial-{spec.index}.journal"
                args = WorkerArgs(dsn, schema, spec.user, spec.seed, journal, embedder, operations)
                return _Worker(ctx, spec, args=args, scratch=scratch)

            upcoming = spawn(specs[0]) if specs else None
            for spec in specs:
                worker, upcoming = upcoming or spawn(spec), None
                worker.wait_ready()
                totals.ready_s.append(worker.ready_s or 0.0)
                if spec.index + 1 < trials and server is None:  # a server kill would take it down too
                    upcoming = spawn(specs[spec.index + 1])
                killed = worker.run_and_kill(server)
                if server is not None:
                    server.restart()
                    memory.store.pool.check()  # type: ignore[attr-defined]  # drop the dead connections
                result = recover_and_audit(memory, spec, worker.journal, operations=operations, killed=killed)
                result.server_killed = server is not None
                if not killed and worker.failed and server is None:
                    result.worker_error = worker.error_tail()
                worker.stop()
                worker = None
                totals.results.append(result)
                bad = sum(
                    not r.audit.ok or r.half_written or bool(r.worker_error or r.recovery_error)
                    for r in totals.results
                )
                bar.step(f"faults ({bad} bad)")
    finally:
        for leftover in (worker, upcoming):
            if leftover is not None:
                leftover.stop()
        shutil.rmtree(scratch, ignore_errors=True)
        if not keep_schema:
            drop_schema(dsn, schema)
    elapsed = time.perf_counter() - started
    report = totals.report()
    return {
        **report,
        "seconds": round(elapsed, 2),
        "seconds_per_trial": round(elapsed / trials, 3) if trials else None,
        "seed": seed,
        "max_delay_s": max_delay_s,
        "embedder": embedder,
        "schema": schema if keep_schema else None,
        "kill_server": server is not None,
    }
