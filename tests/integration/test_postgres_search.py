"""Search behaviour that only shows at some scale: common-word pruning, HNSW against exact."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Iterator

import psycopg
import pytest
from memstrata.adapters.postgres import PostgresEpisodeStore, plan_cache, retriever_statements
from memstrata.adapters.postgres.ranking import ExactRanking
from memstrata.adapters.postgres.read_transaction import read_transaction
from memstrata.adapters.postgres.security import APP_ROLE
from memstrata.errors import ConfigError
from memstrata.fusion import hybrid_ranks, hybrid_search
from memstrata.schemas import Episode, EpisodeKind, Scope, SearchFilters, SearchQuery
from memstrata.testing import HashingEmbedder

pytestmark = pytest.mark.postgres

EMBED = HashingEmbedder(32)
WORDS = [
    "apple",
    "river",
    "stone",
    "cloud",
    "lamp",
    "violin",
    "garden",
    "ticket",
    "harbor",
    "pepper",
    "meadow",
    "canyon",
]


@pytest.fixture(scope="module")
def filled(postgres_dsn: str) -> Iterator[tuple[PostgresEpisodeStore, Scope]]:
    """2,000 episodes of one user; every one mentions Caroline, one mentions a zeppelin."""
    schema = f"search_{uuid.uuid4().hex[:8]}"
    rng = random.Random(7)
    scope = Scope(user_id="searcher")
    texts = [
        f"Caroline said the {rng.choice(WORDS)} and the {rng.choice(WORDS)} were lovely." for _ in range(2000)
    ]
    texts[1234] = "Caroline once rode a zeppelin over the harbor."
    # Each of the 12 words is in ~300 rows: the text side ranks all of a word's matches rather than
    # the first ones in storage order (the default 100), so it never depends on which of a text's
    # ~14 copies (equal vectors, equal text ranks) the HNSW graph happened to return.
    with PostgresEpisodeStore.from_conn_string(
        postgres_dsn, dimensions=32, schema=schema, text_scan_limit=500
    ) as store:
        store.setup()
        for start in range(0, len(texts), 500):
            chunk = texts[start : start + 500]
            store.put([Episode(scope=scope, text=t) for t in chunk], EMBED.embed(chunk))
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute(f'ANALYZE "{schema}".episodes')  # the word statistics pruning reads
        yield store, scope
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def test_a_word_in_every_episode_is_dropped_when_a_rarer_one_is_asked(
    filled: tuple[PostgresEpisodeStore, Scope],
) -> None:
    store, scope = filled
    hits = hybrid_search(store, SearchQuery(scope=scope, text="Did Caroline ride a zeppelin?", k=50))
    assert [h.episode.text for h in hits] == ["Caroline once rode a zeppelin over the harbor."]


def test_the_rarest_word_is_kept_even_when_common(filled: tuple[PostgresEpisodeStore, Scope]) -> None:
    store, scope = filled
    hits = hybrid_search(store, SearchQuery(scope=scope, text="What did Caroline say?", k=50))
    assert len(hits) == 50 and all("Caroline" in h.episode.text for h in hits)


def test_hnsw_hybrid_search_agrees_with_exact_search(filled: tuple[PostgresEpisodeStore, Scope]) -> None:
    store, scope = filled
    overlaps = []
    for i, (a, b) in enumerate(zip(WORDS, reversed(WORDS), strict=True)):
        text = f"the {a} near the {b}"
        query = SearchQuery(scope=scope, vector=tuple(EMBED.embed([text])[0]), text=text, k=10)
        approx, exact = hybrid_search(store, query), hybrid_search(ExactRanking(store), query)
        by_rank = sorted((h for h in exact if h.vector_rank), key=lambda h: h.vector_rank or 0)
        distances = [h.vector_distance or 0.0 for h in by_rank]
        assert distances == sorted(distances), f"query {i}: exact vector ranks must follow distance"
        # Compared by text: 2,000 rows hold ~144 distinct texts, so each has ~14 copies with equal
        # vectors and equal text ranks. Which copies fill a tie is the HNSW graph's (random) pick;
        # comparing ids made this test fail about 1 run in 7 for that reason alone.
        found = Counter(h.episode.text for h in approx) & Counter(h.episode.text for h in exact)
        overlaps.append(sum(found.values()) / 10)
    assert sum(overlaps) / len(overlaps) >= 0.9


def test_full_text_search_uses_its_index_under_row_level_security(
    filled: tuple[PostgresEpisodeStore, Scope],
) -> None:
    """Full-text match is marked LEAKPROOF at setup, else PostgreSQL never uses the GIN index on a
    table under row-level security, and every text search scans all of the user's rows."""
    store, scope = filled
    with store._scoped("explain", scope) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (APP_ROLE,)
        plan = "\n".join(
            row[0]
            for row in conn.execute(
                f'EXPLAIN SELECT id FROM "{store.schema}".episodes WHERE user_id = %s '
                "AND tsv @@ to_tsquery('english', 'zeppelin')",
                (scope.user_id,),
            )
        )
    assert "Bitmap Index Scan on episodes_tsv" in plan, plan


def test_hybrid_search_with_a_pool_of_one_connection(
    postgres_dsn: str, filled: tuple[PostgresEpisodeStore, Scope]
) -> None:
    """A rank-only hybrid search runs its two legs at once on two connections; with one, they
    must take turns, not wait for each other until the pool times out."""
    shared, scope = filled
    query = SearchQuery(
        scope=scope,
        vector=tuple(EMBED.embed(["zeppelin harbor"])[0]),
        text="Did Caroline ride a zeppelin?",
        k=5,
    )
    expected = [h.episode.id for h in hybrid_search(shared, query)]
    with PostgresEpisodeStore.from_conn_string(
        postgres_dsn, dimensions=32, schema=shared.schema, max_size=1, timeout=5.0
    ) as single:
        assert [r.id for r in hybrid_ranks(single, query)] == expected
        assert [h.episode.id for h in hybrid_search(single, query)] == expected
    assert "zeppelin" in hybrid_search(shared, query)[0].episode.text


def test_a_search_transaction_quotes_any_text_and_never_stays_open(
    postgres_dsn: str,
    filled: tuple[PostgresEpisodeStore, Scope],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first statement of a search is bound client-side (``BEGIN`` rides with it) and the
    last is pipelined with ``COMMIT``: hostile text stays data, and a failed statement rolls
    the transaction back, so the pool's one connection serves the next search."""
    shared, scope = filled
    hostile = "Caroline's 100% zeppelin\\'; ROLLBACK; DROP TABLE x; -- %s %(text)s"
    query = SearchQuery(scope=scope, vector=tuple(EMBED.embed(["zeppelin"])[0]), text=hostile, k=3)
    with PostgresEpisodeStore.from_conn_string(
        postgres_dsn, dimensions=32, schema=shared.schema, max_size=1, timeout=5.0
    ) as single:
        assert "zeppelin" in hybrid_search(single, query)[0].episode.text
        assert [r.id for r in single.rank(query.model_copy(update={"vector": None}))]

        def broken(*args: object, **kwargs: object) -> tuple[str, dict[str, object]]:
            return "SELECT * FROM no_such_table", {}

        returned = []  # how each connection comes back to the pool (which would roll back itself)
        putconn = single._pool.putconn

        def noting(conn: psycopg.Connection[object]) -> None:
            returned.append(conn.info.transaction_status)
            putconn(conn)

        with monkeypatch.context() as patched:
            patched.setattr(retriever_statements, "leg", broken)
            patched.setattr(single._pool, "putconn", noting)
            with pytest.raises(ConfigError):
                hybrid_search(single, query)
        assert returned == [psycopg.pq.TransactionStatus.IDLE] * 2  # both legs
        assert "zeppelin" in hybrid_search(single, query)[0].episode.text


def test_a_read_transaction_left_unfinished_or_failed_is_rolled_back(postgres_dsn: str) -> None:
    """Not left to the pool: ``read_transaction`` works on any autocommit connection."""
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        with read_transaction(conn) as tx:
            assert tx.begin(("SELECT set_config('memstrata.user_id', %(user)s, true)", {"user": "u'1"})) == ("u'1",)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE  # left unfinished
        assert conn.execute("SELECT current_setting('memstrata.user_id', true)").fetchone() in (
            ("",),
            (None,),
        )
        with pytest.raises(psycopg.errors.UndefinedTable), read_transaction(conn) as tx:
            tx.begin(("SELECT 1", {}))
            tx.finish(("SELECT * FROM no_such_table", {}))
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        with read_transaction(conn) as tx:
            tx.begin(("SELECT 1", {}))
            assert tx.finish(("SELECT %(x)s::int", {"x": 2})) == [(2,)]
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def _searches(scope: Scope) -> list[SearchQuery]:
    """Text searches first: a vector-only search is planned once only in a scope already counted."""
    vector = tuple(EMBED.embed(["the violin near the harbor"])[0])
    text = "Did Caroline ride a zeppelin over the harbor?"
    fact_only = SearchFilters(kinds=(EpisodeKind.TURN, EpisodeKind.FACT), include_superseded=False)
    return [
        SearchQuery(scope=scope, vector=vector, text=text, k=10),
        SearchQuery(scope=scope, text="the lamp and the canyon", k=10),
        SearchQuery(scope=scope, text="pepper", k=10, filters=fact_only),
        SearchQuery(scope=scope, vector=vector, text="meadow", k=5, filters=fact_only),
        SearchQuery(scope=scope, vector=vector, k=10),
        SearchQuery(scope=scope, text="quixotic", vector=vector, k=3),  # no kept word: the fallback
    ]


def _legs(query: SearchQuery) -> list[SearchQuery]:
    """The single-retriever legs a hybrid search runs for ``query``."""
    vector = [query.model_copy(update={"text": ""})] if query.vector is not None else []
    text = [query.model_copy(update={"vector": None})] if query.text else []
    return vector + text


def test_a_large_scope_is_planned_once_and_finds_what_per_search_plans_find(
    postgres_dsn: str, filled: tuple[PostgresEpisodeStore, Scope], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its scope, kinds and limits written as literals, a large scope's search is prepared and
    runs with a generic plan: the same hits as planned per search, planned once."""
    shared, scope = filled
    with PostgresEpisodeStore.from_conn_string(
        postgres_dsn, dimensions=32, schema=shared.schema, text_scan_limit=500, max_size=1
    ) as single:
        queries = _searches(scope)
        legs = [leg for q in queries for leg in _legs(q)]
        # 2,000 rows: not large
        per_search = [[h.episode.id for h in hybrid_search(single, q)] for q in queries]
        ranked = [[r.id for r in single.rank(leg)] for leg in legs]
        assert all(per_search) and sum(map(bool, ranked)) == len(legs) - 1  # "quixotic": no match
        monkeypatch.setattr(plan_cache, "LARGE_SCOPE_ROWS", 1000)
        for _ in range(3):
            assert [[h.episode.id for h in hybrid_search(single, q)] for q in queries] == per_search
            assert [[r.id for r in single.rank(leg)] for leg in legs] == ranked
        with single._pool.connection() as conn:
            prepared = conn.execute(
                "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements"
            ).fetchall()
    once = [row for row in prepared if "e.user_id = 'searcher'" in row[0]]
    assert len(once) >= 6, prepared  # the legs: vector and text (each shape), with and without kinds
    assert all(generic >= 1 and custom == 0 for _, generic, custom in once), once
    # Vector only: the scope's size comes from the counts a text search of the same filters left.
    assert any("tsquery" not in text for text, _, _ in once), once


def test_a_scope_planned_once_is_written_into_sql_as_data(
    postgres_dsn: str, filled: tuple[PostgresEpisodeStore, Scope], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scope id with quotes, a backslash and psycopg's own placeholder syntax is a literal of
    its statement: it finds its own rows, and only them."""
    shared, _ = filled
    hostile = Scope(user_id="o'brien\\ 100%s %(vector)s'; --", agent_id="a%%gent'")
    texts = [f"O'Brien kept the {w} by the zeppelin" for w in WORDS]
    shared.put([Episode(scope=hostile, text=t) for t in texts], EMBED.embed(texts))
    queries = _searches(hostile)
    per_search = [[h.episode.text for h in hybrid_search(shared, q)] for q in queries]
    monkeypatch.setattr(plan_cache, "LARGE_SCOPE_ROWS", len(texts))
    once = [[h.episode.text for h in hybrid_search(shared, q)] for q in queries]
    assert once == per_search
    assert {text for hits in once for text in hits} <= set(texts) and any(once)
