"""Physical layout of the episodes table against a real PostgreSQL: vectors stay in the heap row
(no TOAST fetch per distance), and the scans behind every context (a session's recent turns,
the current summaries) read a handful of index pages however long the scope's history is."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from memstrata.adapters.postgres import PostgresEpisodeStore, statements
from memstrata.schemas import Episode, EpisodeKind, Scope

pytestmark = pytest.mark.postgres

DIMS = 384  # the default embedder's: a row of it is just over PostgreSQL's 2 kB TOAST threshold
HISTORY = 3000


@pytest.fixture(scope="module")
def store(postgres_dsn: str) -> Iterator[PostgresEpisodeStore]:
    schema = f"layout_{uuid.uuid4().hex[:10]}"
    with PostgresEpisodeStore.from_conn_string(postgres_dsn, dimensions=DIMS, schema=schema) as s:
        s.setup()
        yield s
        with s._pool.connection() as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(scope="module")
def history(store: PostgresEpisodeStore) -> Scope:
    """One user's long history in session "old", with one current summary."""
    scope = Scope(user_id="long-history", agent_id="a", session_id="old")
    rng = np.random.default_rng(7)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))

    def turn_text() -> str:  # ~250 characters that pglz cannot shrink much, like real turns
        return " ".join("".join(rng.choice(letters, size=rng.integers(3, 9))) for _ in range(40))

    for start in range(0, HISTORY, 500):
        episodes = [Episode(scope=scope, text=turn_text(), role="user") for _ in range(start, start + 500)]
        vectors = rng.normal(size=(500, DIMS))
        store.put(episodes, (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).tolist())
    summary = Episode(scope=scope, kind=EpisodeKind.SUMMARY, text="A summary of it all.", level=1)
    store.put([summary], [[1.0] + [0.0] * (DIMS - 1)])
    with store._pool.connection() as conn:
        conn.execute(f"ANALYZE {store._tables.episodes}")
    return scope


def _explain(
    store: PostgresEpisodeStore, scope: Scope, statement: tuple[str, dict[str, Any]]
) -> dict[str, Any]:
    with store._scoped("explain", scope) as conn:
        row = conn.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement[0], statement[1]).fetchone()
    assert row is not None
    plan = row[0] if isinstance(row[0], list) else json.loads(row[0])
    return dict(plan[0]["Plan"])


def _pages(node: dict[str, Any]) -> int:
    return int(node.get("Shared Hit Blocks", 0)) + int(node.get("Shared Read Blocks", 0))


def test_vectors_of_ordinary_turns_stay_in_the_heap_row(store: PostgresEpisodeStore, history: Scope) -> None:
    with store._scoped("count", history) as conn:
        row = conn.execute(
            f"SELECT count(*) FILTER (WHERE pg_column_toast_chunk_id(embedding) IS NOT NULL), count(*) "
            f"FROM {store._tables.episodes} WHERE user_id = %s",
            (history.user_id,),
        ).fetchone()
    assert row == (0, HISTORY + 1)


def test_a_long_text_still_leaves_the_row_and_its_vector_stays(store: PostgresEpisodeStore) -> None:
    scope = Scope(user_id="long-text", agent_id="a")
    words = " ".join(f"word{i}" for i in range(3000))  # ~27 kB: too long for a page even compressed
    [stored] = store.put([Episode(scope=scope, text=words, role="user")], [[0.0, 1.0] + [0.0] * (DIMS - 2)])
    with store._scoped("count", scope) as conn:
        row = conn.execute(
            f"SELECT pg_column_toast_chunk_id(embedding) IS NULL, length(text) "
            f"FROM {store._tables.episodes} WHERE user_id = %s AND id = %s",
            (scope.user_id, stored.id),
        ).fetchone()
    assert row == (True, len(words))
    assert store.get(scope, [stored.id])[0].text == words


def test_a_new_sessions_recent_scan_does_not_walk_the_history(
    store: PostgresEpisodeStore, history: Scope
) -> None:
    fresh = history.model_copy(update={"session_id": "new"})
    statement = statements.scan(
        store._tables, fresh, kinds=(EpisodeKind.TURN,), session_id="new", order="newest", limit=12
    )
    plan = _explain(store, fresh, statement)
    assert _pages(plan) < 10, plan  # the whole history is ~1,000 pages
    assert store.scan(fresh, kinds=(EpisodeKind.TURN,), session_id="new", order="newest", limit=12) == []


def test_the_current_summaries_are_read_without_walking_the_history(
    store: PostgresEpisodeStore, history: Scope
) -> None:
    statement = statements.scan(store._tables, history, kinds=(EpisodeKind.SUMMARY,), only_current=True)
    plan = _explain(store, history, statement)
    assert _pages(plan) < 10, plan
    [summary] = store.scan(history, kinds=(EpisodeKind.SUMMARY,), only_current=True)
    assert summary.text == "A summary of it all."
