"""Erasing a user leaves no trace: after ``forget_user``, no row of any table in the database
(found through information_schema, so new tables are covered) mentions the user's id, while
another user's rows are all still there."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from memstrata import Memory, MemoryConfig, Scope
from memstrata.adapters.langgraph import MemstrataStore
from memstrata.adapters.openai_pipeline import with_memory
from memstrata.adapters.postgres import PostgresEpisodeStore
from memstrata.adapters.postgres.api_keys import ApiKeys
from memstrata.schemas import Episode, EpisodeKind
from memstrata.schemas.config import CompressionConfig
from memstrata.testing import HashingEmbedder, ScriptedChatModel
from psycopg import sql

pytestmark = pytest.mark.postgres

DIMENSIONS = 32


@pytest.fixture(scope="module")
def store(postgres_dsn: str) -> Iterator[PostgresEpisodeStore]:
    with PostgresEpisodeStore.from_conn_string(postgres_dsn, dimensions=DIMENSIONS, schema="erasure") as s:
        s.setup()
        yield s


def leave_traces(store: PostgresEpisodeStore, user: str) -> None:
    """Everything a user can leave: turns in two agents, a summary, history idempotency keys,
    word counts, LangGraph items and their catalog entries, API keys."""
    embedder = HashingEmbedder(DIMENSIONS)
    config = MemoryConfig(compression=CompressionConfig(enabled=False))
    memory = Memory(store, embedder, model=ScriptedChatModel(lambda _: "ok"), config=config)
    for agent in ("a1", "a2"):
        scope = Scope(user_id=user, agent_id=agent, session_id=f"{user}-session")
        memory.add([{"role": "user", "content": f"I am {user}, my code is 7731."}], scope=scope)
        memory.recall(f"what is {user} code", scope=scope)  # word counts cached for the scope
    chat = with_memory(lambda _: f"hello {user}", memory, Scope(user_id=user, agent_id="a1"))
    chat([{"role": "user", "content": f"hi, {user} here"}, {"role": "assistant", "content": "hey"},
          {"role": "user", "content": "again"}])  # fmt: skip
    turns = store.scan(Scope(user_id=user, agent_id="a1"), kinds=(EpisodeKind.TURN,))
    summary = Episode(
        scope=Scope(user_id=user, agent_id="a1"),
        kind=EpisodeKind.SUMMARY,
        text=f"{user} said a code.",
        covers=tuple(t.id for t in turns[:2]),
        metadata={"about": user},
        idempotency_key=f"fold:{user}",
    )
    store.fold(summary, embedder.embed([summary.text])[0])
    graph = MemstrataStore(store, embedder)
    graph.put(("memories", user), "prefs", {"text": f"{user} likes tea"})
    graph.put(("memories", user, "deep"), "k", {"text": "nested"})
    keys = ApiKeys(store.pool, schema=store.schema)
    keys.create(user_id=user, name=f"laptop of {user}")


def mentions(dsn: str, needle: str) -> dict[str, int]:
    """Rows mentioning ``needle`` in any column, per table of any user schema (as the superuser,
    so row-level security hides nothing)."""
    found: dict[str, int] = {}
    with psycopg.connect(dsn) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
            "AND table_schema NOT IN ('pg_catalog', 'information_schema') AND table_schema NOT LIKE 'pg_toast%'"
        ).fetchall()
        for schema, table in tables:
            query = sql.SQL("SELECT count(*) FROM {}.{} AS t WHERE strpos(t::text, %s) > 0").format(
                sql.Identifier(schema), sql.Identifier(table)
            )
            row: Any = conn.execute(query, (needle,)).fetchone()
            if row[0]:
                found[f"{schema}.{table}"] = int(row[0])
    return found


def test_forgetting_a_user_leaves_no_row_mentioning_them(
    postgres_dsn: str, store: PostgresEpisodeStore
) -> None:
    gone, kept = f"erase-{uuid.uuid4().hex[:10]}", f"keep-{uuid.uuid4().hex[:10]}"
    leave_traces(store, gone)
    leave_traces(store, kept)
    before = mentions(postgres_dsn, gone)
    assert {"erasure.episodes", "erasure.api_keys"} <= set(before)  # the scan sees every kind of trace
    assert before == mentions(postgres_dsn, kept)
    assert any(owner[0] == gone for owner in store._word_counts._scopes)

    deleted = MemstrataStore(store, HashingEmbedder(DIMENSIONS)).forget_user(gone)

    assert deleted >= 8
    assert mentions(postgres_dsn, gone) == {}
    assert mentions(postgres_dsn, kept) == before  # nobody else's rows were touched
    assert not any(owner[0] == gone for owner in store._word_counts._scopes)


def test_erasure_reaches_every_agent_and_nobody_else(store: PostgresEpisodeStore) -> None:
    user, other = f"erase-{uuid.uuid4().hex[:10]}", f"keep-{uuid.uuid4().hex[:10]}"
    embedder = HashingEmbedder(DIMENSIONS)
    for who in (user, other):
        for agent in ("x", "y", "z"):
            memory = Memory(store, embedder, model=ScriptedChatModel(["unused"]))
            memory.add([{"role": "user", "content": "hello"}], scope=Scope(user_id=who, agent_id=agent))
    assert store.forget_user(user) == 3
    assert store.forget_user(user) == 0
    for agent in ("x", "y", "z"):
        assert store.scan(Scope(user_id=user, agent_id=agent)) == []
        assert len(store.scan(Scope(user_id=other, agent_id=agent))) == 1
