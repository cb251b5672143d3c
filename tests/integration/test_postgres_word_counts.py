"""Cached word counts prune a text search exactly as SQL that counts them in every search would."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator, Sequence

import psycopg
import pytest
from memstrata.adapters.postgres import PostgresEpisodeStore, statements
from memstrata.adapters.postgres.fulltext import (
    PARTIAL_MATCH_ROWS,
    SCOPE_COUNT_CAP,
    WORD_SAMPLE_ROWS,
)
from memstrata.adapters.postgres.retriever_statements import search_filters
from memstrata.adapters.postgres.word_count_cache import WordCountCache, pruned_query_words
from memstrata.fusion import hybrid_search
from memstrata.schemas import Episode, Scope, SearchFilters, SearchQuery
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


# A lexeme quoted for tsquery input: backslashes and single quotes doubled.
_QUOTED_LEXEME = "'''' || replace(replace(w.lexeme, '\\', '\\\\'), '''', '''''') || ''''"


def pruned_tsquery(t: statements.Tables, where: Sequence[str]) -> str:
    """The reference: the text side's tsqueries built in SQL, inside the search, as the store did
    before it cached word counts (``q``, ``q_all``, ``words``, ``q_fallback``, ``q_some``)."""
    kept = "FILTER (WHERE w.cum <= %(max_term_share)s)"
    some = (
        "FILTER (WHERE w.cum <= %(max_term_share)s "
        "AND (w.before = 0 OR w.cum * sc.rows <= %(partial_match_rows)s))"
    )
    scope = " AND ".join(where)
    lexemes = "tsvector_to_array(to_tsvector('english', %(text)s))"
    return f"""WITH ws AS MATERIALIZED (SELECT e.tsv FROM {t.episodes} e WHERE {scope}
                            ORDER BY e.seq DESC LIMIT %(word_sample_rows)s)
SELECT coalesce(CAST(string_agg({_QUOTED_LEXEME}, ' | ') {kept} AS tsquery), CAST('' AS tsquery)) AS q,
       coalesce(CAST(string_agg({_QUOTED_LEXEME}, ' & ') {kept} AS tsquery), CAST('' AS tsquery)) AS q_all,
       count(*) {kept} AS words,
       coalesce(CAST((array_agg({_QUOTED_LEXEME} ORDER BY w.n) FILTER (WHERE w.cum > %(max_term_share)s))[1]
                     AS tsquery), CAST('' AS tsquery)) AS q_fallback,
       coalesce(CAST(string_agg({_QUOTED_LEXEME}, ' | ') {some} AS tsquery), CAST('' AS tsquery)) AS q_some
    FROM (SELECT count(*) AS rows FROM (SELECT 1 FROM {t.episodes} e WHERE {scope}
                                        LIMIT %(scope_count_cap)s) s) sc,
         (SELECT w.lexeme,
                 sum(w.freq) OVER (ORDER BY w.freq, w.lexeme) AS cum,
                 coalesce(sum(w.freq) OVER (ORDER BY w.freq, w.lexeme ROWS BETWEEN UNBOUNDED PRECEDING
                                            AND 1 PRECEDING), 0) AS before,
                 row_number() OVER (ORDER BY w.freq, w.lexeme) AS n
          FROM (SELECT w.lexeme, coalesce(c.n, 0)::float8 / greatest(1, size.rows) AS freq
                FROM unnest({lexemes}) AS w(lexeme)
                CROSS JOIN (SELECT count(*) AS rows FROM ws) size
                LEFT JOIN (SELECT l.lexeme, count(*) AS n FROM ws, unnest(tsvector_to_array(ws.tsv)) AS l(lexeme)
                           WHERE l.lexeme = ANY({lexemes}) GROUP BY l.lexeme) c ON c.lexeme = w.lexeme
               ) w
         ) w"""


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
def test_cached_pruning_builds_the_same_tsqueries_as_sql(
    store: PostgresEpisodeStore, user: str, share: float
) -> None:
    tables = statements.Tables(store.schema)
    for filters in (SearchFilters(), SearchFilters(session_id="s1")):
        for text in TEXTS:
            query = SearchQuery(scope=Scope(user_id=user), text=text, k=60, filters=filters)
            with store._scoped("probe", query.scope) as conn:
                where, params = search_filters(query, "e")
                expected = conn.execute(
                    pruned_tsquery(tables, where),
                    {
                        **params,
                        "text": text,
                        "max_term_share": share,
                        "word_sample_rows": WORD_SAMPLE_ROWS,
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
                        conn, store._word_counts, statements.Tables(schema), query, max_term_share=0.1
                    ).q

            assert kept() == "'zebra'"  # "note" is in 20 of 21 rows
            assert [h.episode.text for h in hybrid_search(store, query)] == ["a zebra crossed"]
            more = [f"zebra {i}" for i in range(5)]
            store.put([Episode(scope=scope, text=t) for t in more], EMBED.embed(more))
            assert kept() == ""  # zebra is now in 6 of 26 rows: dropped, as a fresh count says
            assert len(hybrid_search(store, query)) == 5  # the fallback: the least common dropped word
            store.forget(scope)
            assert kept() == "'note' | 'zebra'"  # no rows: every word is rare
    finally:
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
