"""Concurrency: writers in two processes (two threads each) on a shared scope and their own
scopes, compression folding the shared scope meanwhile, and compressors racing on one scope."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from memstrata.adapters.postgres import PostgresEpisodeStore
from memstrata.schemas import Episode, Scope
from memstrata.testing import HashingEmbedder
from memstrata_bench.reliability.components import drop_schema
from memstrata_bench.reliability.concurrency import run_concurrency

pytestmark = pytest.mark.postgres


def test_concurrent_writers_keep_exact_counts_and_one_fold_wins_each_race(postgres_dsn: str) -> None:
    report = run_concurrency(
        postgres_dsn,
        writers=4,
        turns=100,
        processes=2,
        batch=10,
        read_every=2,
        race_rounds=2,
        racers=4,
        seed=11,
    )
    assert report["writer_failures"] == [] and report["problems"] == []
    assert report["turns_stored"] == 4 * 100 + 100 and report["scopes"] == 3 + 1  # + the baseline's
    assert (report["lost"], report["duplicated"], report["unexpected"]) == (0, 0, 0)
    assert report["cross_scope_reads"] == 0 and report["read_your_writes_failures"] == 0
    assert report["reads"] > 0 and report["throughput_ops_s"] > 0 and report["ratio"] is not None
    shared = report["shared_scope"]
    # Folded while two writers wrote to it: every fold a contiguous run of committed turns.
    assert shared["folds"] > 0 and shared["bad_summaries"] == 0 and shared["orphans"] == 0
    races = report["compression_races"]
    assert races["winners"] == [1, 1] and races["conflicts_noticed"] == 2 * 3
    assert races["errors"] == [] and races["lineage_ok_rounds"] == 2


def test_within_a_scope_seq_follows_commit_order(postgres_dsn: str) -> None:
    """A writer slow to commit (a trigger sleeps in its insert) holds back a later writer of the
    same scope, so no reader sees a turn while an older one of its scope is still uncommitted;
    a writer of another scope is not held back."""
    schema = f"commit_order_{uuid.uuid4().hex[:8]}"
    embedder = HashingEmbedder(16)
    scope, other = Scope(user_id="u"), Scope(user_id="other")
    try:
        with PostgresEpisodeStore.from_conn_string(
            postgres_dsn, dimensions=16, schema=schema, max_size=3
        ) as store:
            store.setup()
            with psycopg.connect(postgres_dsn, autocommit=True) as admin:
                admin.execute(
                    f'CREATE FUNCTION "{schema}".slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN '
                    "IF NEW.text LIKE 'slow%' THEN PERFORM pg_sleep(2); END IF; RETURN NEW; END $$"
                )
                admin.execute(
                    f'CREATE TRIGGER slow BEFORE INSERT ON "{schema}".episodes '
                    f'FOR EACH ROW EXECUTE FUNCTION "{schema}".slow()'
                )

            def put(where: Scope, texts: list[str]) -> None:
                store.put([Episode(scope=where, text=t) for t in texts], embedder.embed(texts))

            with ThreadPoolExecutor(1) as background:
                slow = background.submit(put, scope, ["slow writer's turn"])
                time.sleep(0.5)  # its transaction is open, its seq taken
                started = time.perf_counter()
                put(other, ["another scope"])
                assert time.perf_counter() - started < 1.0
                put(scope, ["fast 1", "fast 2"])
                seen = [e.text for e in store.scan(scope)]
                slow.result()
        assert seen == ["slow writer's turn", "fast 1", "fast 2"]
    finally:
        drop_schema(postgres_dsn, schema)
