"""``memstrata bench store``: ingest and hybrid-search speed and recall of the Postgres store.

The timed hybrid search is the path recall takes (``Recaller.recall``: the two rank-only legs of
:func:`memstrata.fusion.hybrid_ranks` at once, fused, the winners read with one ``get``; query
vectors are looked up, not embedded, and no episode is held between searches). The timed
questions are distinct, and none is a warm-up question; each kind of search (hybrid, vector only,
text only) runs the same ones. Runs in a fresh schema of the configured database (``MEMSTRATA_DATABASE_URL``, else the
embedded server) and drops it at the end. One user holds all the searched episodes (the
hardest case for a scope-filtered HNSW search); side measurements write to other users.
Baselines measured in the same run: exact search (HNSW bypassed) for recall and speed-up, and
pipelined INSERTs (``executemany``) against binary COPY for ingest. Progress goes to stderr;
``--json`` prints one JSON object on stdout. Timings on a shared machine vary: the report
carries the load average and, for a local server, the CPU time per search of all the server's processes
(other clients of the same server add to it).
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console

from memstrata_bench.cli.group import bench

_console = Console(stderr=True)


def _progress(message: str) -> None:
    _console.log(message)


def _ms(seconds: Sequence[float], q: float) -> float:
    return round(float(np.quantile(np.asarray(seconds) * 1000.0, q)), 3)


def _timed(action: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


_START_PROBE = """
import sys, time
from pathlib import Path
from memstrata.adapters.postgres.embedded import EmbeddedPostgres
server = EmbeddedPostgres(Path(sys.argv[1]))
start = time.perf_counter(); server.start(); print(time.perf_counter() - start); server.stop()
"""


def embedded_start_times() -> dict[str, float]:
    """Seconds for ``EmbeddedPostgres.start()`` in a new process: on an empty data dir (initdb
    included), then on the existing one with no server running (a cold start)."""
    base = "/var/tmp" if os.path.isdir("/var/tmp") else None
    with tempfile.TemporaryDirectory(prefix="memstrata-bench-", dir=base) as scratch:
        times = []
        for _ in range(2):
            out = subprocess.run(
                [sys.executable, "-c", _START_PROBE, f"{scratch}/data"],
                check=True,
                capture_output=True,
                text=True,
            )
            times.append(float(out.stdout.strip().splitlines()[-1]))
    return {"first_start_s": round(times[0], 3), "cold_start_s": round(times[1], 3)}


def _resolve_server() -> tuple[str, dict[str, Any]]:
    from memstrata.adapters.postgres.dsn import DATABASE_URL_ENV, redact_dsn
    from memstrata.adapters.postgres.embedded import EmbeddedPostgres

    url = os.environ.get(DATABASE_URL_ENV, "").strip()
    if url:
        return url, {"kind": "external", "url": redact_dsn(url)}
    server = EmbeddedPostgres()
    running = (server.pgdata / "postmaster.pid").exists()
    seconds, url = _timed(server.start)
    info = {"kind": "embedded", "data_dir": str(server.data_dir), "joined_running": running}
    return url, {**info, "start_s": round(seconds, 3)}


@dataclass(frozen=True)
class Options:
    episodes: int
    queries: int
    batch: int
    ef_search: int
    m: int
    ef_construction: int
    sentences: int | None
    recall_queries: int
    start_times: bool
    seed: int


class _Run:
    """One benchmark run: a pool, a fresh schema, and a store per write method."""

    def __init__(self, url: str, dims: int, options: Options) -> None:
        from memstrata.adapters.postgres.store import PostgresEpisodeStore
        from psycopg_pool import ConnectionPool

        self.schema = f"memstrata_bench_{os.getpid()}_{secrets.token_hex(3)}"
        self.pool: ConnectionPool[Any] = ConnectionPool(
            # Two connections: a rank-only hybrid search (recall's) runs its two legs at once.
            url,
            open=False,
            min_size=2,
            max_size=2,
            kwargs={"autocommit": True},
        )
        self.pool.open(wait=True, timeout=30)
        common: dict[str, Any] = {"dimensions": dims, "schema": self.schema, "ef_search": options.ef_search}
        self.copy = PostgresEpisodeStore(self.pool, write_method="copy", **common)
        self.many = PostgresEpisodeStore(self.pool, write_method="executemany", **common)

    def sql(self, statement: str) -> Any:
        """Run one statement; its first row, if it returns rows."""
        with self.pool.connection() as conn:
            cursor = conn.execute(statement)
            return cursor.fetchone() if cursor.description else None

    def server_cpu(self) -> Callable[[], float]:
        """Seconds of CPU used so far by the server's backends (0 if the server is not local)."""
        import psutil

        try:
            postmaster = psutil.Process(int(self.sql("SELECT pg_backend_pid()")[0])).parent()
            if postmaster is None:
                return lambda: 0.0
            postmaster.children()
        except (psutil.Error, TypeError):
            return lambda: 0.0

        def used() -> float:
            total = 0.0
            for child in postmaster.children():
                try:
                    total += sum(child.cpu_times()[:2])
                except psutil.Error:  # a backend that exited meanwhile
                    continue
            return total

        return used

    def close(self) -> None:
        try:
            self.sql(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        finally:
            self.pool.close()


def index_build_memory_mb(rows: int, dims: int, m: int) -> int:
    """``maintenance_work_mem`` for building the HNSW index of ``rows`` vectors: room for the whole
    graph (a graph that outgrows it is built on disk, several times slower), at least 1 GB, at most
    a third of the machine's memory. An element takes its vector plus ``2 * m`` neighbours at layer 0
    (and a few more above), ~10 bytes each, plus ~100 bytes of bookkeeping."""
    import psutil

    graph = rows * (4 * dims + 2 * m * 10 + 8 * m + 100)
    wanted = max(1024, int(graph * 1.25 / 2**20))
    return min(wanted, max(1024, int(psutil.virtual_memory().total / 3 / 2**20)))


def _put_rate(store: Any, user: str, texts: Sequence[str], vectors: np.ndarray, batch: int) -> float:
    """Episodes per second stored by ``put`` in batches (episodes built beforehand)."""
    from memstrata.schemas import Episode, Scope

    scope = Scope(user_id=user)
    batches = [
        ([Episode(scope=scope, text=t, role="user") for t in texts[i : i + batch]], vectors[i : i + batch])
        for i in range(0, len(texts), batch)
    ]
    seconds, _ = _timed(lambda: [store.put(episodes, rows) for episodes, rows in batches])
    return round(len(texts) / seconds, 1)


def _default(field: str) -> Any:
    """A search's default setting (``SearchQuery``), as the timed searches use it."""
    from memstrata.schemas import SearchQuery

    return SearchQuery.model_fields[field].default


def _ingest(run: _Run, corpus: Any, options: Options, side: int) -> dict[str, Any]:
    """Ingest rates (COPY and executemany, without and with the HNSW index), the index build, and
    single-episode puts: the searched user's ``options.episodes``, then ``side`` per side user."""
    from memstrata.adapters.postgres.migrations import HNSW_INDEX, hnsw_index
    from memstrata.adapters.postgres.tables import Tables

    n, texts, vectors = options.episodes, corpus.texts, corpus.vectors
    out: dict[str, Any] = {}
    _progress(f"put {n} episodes in batches of {options.batch} (binary COPY), no HNSW index yet")
    out["ingest_per_s"] = _put_rate(run.copy, "bench-user", texts[:n], vectors[:n], options.batch)
    _progress(f"put {side} episodes with executemany (baseline), no HNSW index yet")
    out["ingest_per_s_executemany"] = _put_rate(run.many, "side-1", texts[n : n + side], vectors[n : n + side],
                                                options.batch)  # fmt: skip
    _progress(f"build the HNSW index (m={options.m}, ef_construction={options.ef_construction})")
    with run.pool.connection() as conn:
        memory_mb = index_build_memory_mb(n + 3 * side, int(vectors.shape[1]), options.m)
        out["index_build_memory_mb"] = memory_mb
        conn.execute(f"SET maintenance_work_mem = '{memory_mb}MB'")
        conn.execute(f"SET max_parallel_maintenance_workers = {max(0, (os.cpu_count() or 1) - 1)}")
        ddl = hnsw_index(Tables(run.schema), m=options.m, ef_construction=options.ef_construction)
        out["index_build_s"] = round(_timed(lambda: conn.execute(ddl))[0], 2)
        conn.execute(f'VACUUM ANALYZE "{run.schema}".episodes')
    size = run.sql(f"SELECT pg_relation_size('\"{run.schema}\".{HNSW_INDEX}')")[0]
    out["index_mb"] = round(size / 2**20, 1)
    _progress(f"put {side} + {side} episodes with the HNSW index present (COPY, executemany)")
    a, b, c = n + side, n + 2 * side, n + 3 * side
    out["ingest_with_index_per_s"] = _put_rate(run.copy, "side-2", texts[a:b], vectors[a:b], options.batch)
    out["ingest_with_index_per_s_executemany"] = _put_rate(run.many, "side-3", texts[b:c], vectors[b:c],
                                                           options.batch)  # fmt: skip
    for name, store in (("put_one", run.copy), ("put_one_executemany", run.many)):
        single = [1 / _put_rate(store, "side-4", [texts[i]], vectors[i : i + 1], 1) for i in range(100)]
        out[f"{name}_p50_ms"], out[f"{name}_p95_ms"] = _ms(single, 0.5), _ms(single, 0.95)
    return out


def run_store_bench(options: Options) -> dict[str, Any]:
    """Run the whole benchmark; return the report (see the module docstring)."""
    import memstrata
    import psycopg
    from memstrata.adapters.postgres.migrations import HNSW_INDEX
    from memstrata.adapters.postgres.plan_cache import LARGE_SCOPE_ROWS
    from memstrata.adapters.postgres.retriever_statements import (
        DEFAULT_MAX_TERM_SHARE,
        DEFAULT_TEXT_SCAN_LIMIT,
        RANK,
    )
    from memstrata.adapters.postgres.tables import TS_CONFIG

    from memstrata_bench.cli.store_corpus import build_corpus, default_embedder
    from memstrata_bench.cli.store_searches import searches, warmups

    n = options.episodes
    report: dict[str, Any] = {"benchmark": "store", "episodes": n, "queries": options.queries}
    if options.start_times:
        _progress("embedded server start times (new data dir, in a new process)")
        report["embedded_start"] = embedded_start_times()
    url, report["server"] = _resolve_server()

    _progress("loading the embedder and generating the corpus")
    embedder, embedder_name = default_embedder()
    sentences = options.sentences or min(5000, max(200, n // 20))
    side = min(5_000, max(100, n // 20))  # size of each side measurement
    distinct = warmups(options) + options.queries  # warm-up, then the timed questions
    corpus_s, corpus = _timed(
        lambda: build_corpus(
            embedder, episodes=n + 3 * side, queries=distinct, sentences=sentences, seed=options.seed
        )
    )
    vectors = corpus.vectors
    run = _Run(url, int(vectors.shape[1]), options)
    out: dict[str, Any] = {}
    try:
        run.copy.setup()
        run.sql(f'DROP INDEX "{run.schema}".{HNSW_INDEX}')  # bulk load first, then build the index
        versions = {
            "memstrata": memstrata.__version__,
            "postgres": run.sql("SHOW server_version")[0],
            "pgvector": run.sql("SELECT extversion FROM pg_extension WHERE extname = 'vector'")[0],
            "psycopg": psycopg.__version__,
            "python": platform.python_version(),
        }
        out.update(_ingest(run, corpus, options, side))
        out.update(searches(run, corpus, options))
        out["copy_vs_executemany_ingest"] = round(out["ingest_per_s"] / out["ingest_per_s_executemany"], 2)
    finally:
        run.close()
    report.update(out)
    report["config"] = {
        "hnsw_m": options.m, "hnsw_ef_construction": options.ef_construction, "ef_search": options.ef_search,
        "iterative_scan": "relaxed_order", "candidates": _default("candidates"), "rrf_k": _default("rrf_k"),
        "k": _default("k"), "batch": options.batch,
        "ts_config": TS_CONFIG, "rank": RANK, "max_term_share": DEFAULT_MAX_TERM_SHARE,
        "text_scan_limit": DEFAULT_TEXT_SCAN_LIMIT, "large_scope_rows": LARGE_SCOPE_ROWS,
        "dimensions": int(vectors.shape[1]),
        "scope": "one user holds all searched episodes; side measurements add 3 other users",
        "timed_path": "Recaller.recall: memstrata.fusion.hybrid_ranks (legs at once) + get, nothing held",
        "warmup_queries": warmups(options), "distinct_queries": distinct,
    }  # fmt: skip
    report["data"] = {
        "embedder": embedder_name, "distinct_sentences": corpus.sentences, "sentences_per_episode": "1-3",
        "vector": "normalized mean of the turn's sentence embeddings",
        "mean_cosine_to_real_turn_embedding": round(corpus.join_cosine, 4), "corpus_s": round(corpus_s, 1),
    }  # fmt: skip
    report["versions"] = versions
    report["machine"] = {"cpus": os.cpu_count(), "load_avg_1m_at_end": round(os.getloadavg()[0], 2)}
    return report


@bench.command("store")
def bench_store(
    episodes: Annotated[
        int, typer.Option("--episodes", min=100, help="Episodes in the searched scope.")
    ] = 100_000,
    queries: Annotated[int, typer.Option("--queries", min=1, help="Timed searches of each kind.")] = 1000,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Episodes per put().")] = 1000,
    ef_search: Annotated[
        int | None, typer.Option("--ef-search", min=1, max=1000, help="HNSW ef_search [default: the store's]")
    ] = None,
    m: Annotated[int, typer.Option("--m", min=2, max=100, help="HNSW m.")] = 16,
    ef_construction: Annotated[int, typer.Option("--ef-construction", min=4, max=1000)] = 128,
    sentences: Annotated[int | None, typer.Option("--sentences", help="Distinct embedded sentences.")] = None,
    recall_queries: Annotated[
        int, typer.Option("--recall-queries", min=1, help="Searches also run exactly, for recall@10.")
    ] = 300,
    start_times: Annotated[bool, typer.Option("--start-times/--no-start-times")] = True,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Ingest rate, HNSW build time, hybrid search latency and recall@10 against exact search."""
    from memstrata.adapters.postgres.store import DEFAULT_EF_SEARCH
    from memstrata.errors import MemstrataError

    ef = DEFAULT_EF_SEARCH if ef_search is None else ef_search
    options = Options(episodes, queries, batch, ef, m, ef_construction, sentences, recall_queries,
                      start_times, seed)  # fmt: skip
    try:
        report = run_store_bench(options)
    except MemstrataError as exc:
        typer.echo(f"memstrata bench store: {exc}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        print(json.dumps(report))
        return
    for key, value in report.items():
        print(f"{key}: {value}")
