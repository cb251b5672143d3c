"""Cached word counts prune a text search exactly as the SQL that counts them in every search."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from memstrata.adapters.postgres import PostgresEpisodeStore, sql
from memstrata.adapters.postgres.query_words import pruned_query_words
from memstrata.adapters.postgres.word_counts import PARTIAL_MATCH_ROWS, SCOPE_COUNT_CAP, WordCountCache
from memstrata.schemas import Episode, Scope, SearchFilters, SearchQuery, utc_now
from memstrata.testing import HashingEmbedder

pytestmark = pytest.mark.postgres

EMBED = HashingEmbedder(16)
WORDS = ["apple", "river", "stone", "cloud", "lamp", "violin", "garden", "ticket", "harbor", "pepper"]
TEXTS = [
    "Where is the apple by the river?",
    "violin violin garden",
    "What about the ticket to the harbor and the pepper and the lamp?",
    "the of and is",  # stop words only: no lexemes
    "zeppelin",  # in no row
    "O'Brien's back\\slash stone",  # quoting
    "apple river stone cloud lamp violin garden ticket harbor pepper",  # ties in frequency
]


@pytest.fixture(scope="module")
def store(postgres_dsn: str) -> Iterator[PostgresEpisodeStore]:
    schema = f"words_{uuid.uuid4().hex[:8]}"
    rng = random.Random(3)
    with PostgresEpisodeStore.from_conn_string(postgres_dsn, dimensions=16, schema=schema) as store:
        store.setup()
        for user, rows in (("small", 60), ("large", 1_300)):  # a sample that is whole, one that is not
            texts = [
                " ".join(rng.sample(WORDS, rng.randint(1, 4))) + f" O'Brien {i % 7}" for i in range(rows)
            ]
            episodes = [
                Episode(scope=Scope(user_id=user, session_id=f"s{i % 2}"), text=t)
                for i, t in enumerate(texts)
            ]
            store.put(episodes, EMBED.embed(texts))
        yield store
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.mark.parametrize("user", ["small", "large"])
@pytest.mark.parametrize("share", [0.1, 0.3, 1.0])
def test_cached_pruning_builds_the_same_tsqueries_and_finds_the_same_rows(
    store: PostgresEpisodeStore, user: str, share: float
) -> None:
    tables = sql.Tables(store.schema)
    now = utc_now()
    for filters in (SearchFilters(), SearchFilters(session_id="s1")):
        for text in TEXTS:
            query = SearchQuery(scope=Scope(user_id=user), text=text, k=60, filters=filters)
            with store._scoped("probe", query.scope) as conn:
                where, params = sql.search_filters(query, "e")
                expected = conn.execute(
                    sql.pruned_tsquery(tables, where),
                    {
                        **params,
                        "text": text,
                        "max_term_share": share,
                        "word_sample_rows": sql.WORD_SAMPLE_ROWS,
                        "scope_count_cap": SCOPE_COUNT_CAP,
                        "partial_match_rows": PARTIAL_MATCH_ROWS,
                    },
                ).fetchone()
                pruned = pruned_query_words(conn, WordCountCache(), tables, query, max_term_share=share)
                got = conn.execute(
                    "SELECT CAST(%s AS tsquery), CAST(%s AS tsquery), %s::bigint, CAST(%s AS tsquery), "
                    "CAST(%s AS tsquery)",
                    (pruned.q, pruned.q_all, pruned.words, pruned.q_fallback, pruned.params()["q_some"]),
                ).fetchone()
                assert got == expected, text
                # Every match ranked: a capped scan ranks the first rows in storage order, which
                # depends on the plan, and the two statements are planned apart.
                options = {"now": now, "max_term_share": share, "text_scan_limit": 2_000}
                in_sql = conn.execute(*sql.search(tables, query, None, **options)).fetchall()
                cached = conn.execute(*sql.search(tables, query, None, pruned=pruned, **options)).fetchall()
                if pruned.fallback_missed(matched=bool(cached)):  # as the store does
                    cached = conn.execute(
                        *sql.search(tables, query, None, pruned=pruned.with_fallback(), **options)
                    ).fetchall()
                assert cached == in_sql, text


def test_a_write_to_a_small_scope_recounts_its_words(postgres_dsn: str) -> None:
    schema = f"words_{uuid.uuid4().hex[:8]}"
    scope = Scope(user_id="u")
    try:
        with PostgresEpisodeStore.from_conn_string(postgres_dsn, dimensions=16, schema=schema) as store:
            store.setup()
            texts = [f"plain note number {i}" for i in range(20)] + ["a zebra crossed"]
            store.put([Episode(scope=scope, text=t) for t in texts], EMBED.embed(texts))
            query = SearchQuery(scope=scope, text="zebra note", k=5)

            def kept() -> str:
                with store._scoped("probe", scope) as conn:
                    return pruned_query_words(
                        conn, store._word_counts, sql.Tables(schema), query, max_term_share=0.1
                    ).q

            assert kept() == "'zebra'"  # "note" is in 20 of 21 rows
            assert [h.episode.text for h in store.search(query)] == ["a zebra crossed"]
            more = [f"zebra {i}" for i in range(5)]
            store.put([Episode(scope=scope, text=t) for t in more], EMBED.embed(more))
            assert kept() == ""  # zebra is now in 6 of 26 rows: dropped, as a fresh count says
            assert len(store.search(query)) == 5  # the fallback: the least common dropped word
            store.forget(scope)
            assert kept() == "'note' | 'zebra'"  # no rows: every word is rare
    finally:
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
