"""``Memory.forget_session`` deletes one session and what was made from it, and nothing else of
the user's: their other sessions, and the summaries of those, stay (on real PostgreSQL)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from memstrata import Memory
from memstrata.adapters.postgres import PostgresEpisodeStore
from memstrata.schemas import EpisodeKind, Scope
from memstrata.schemas.config import CompressionConfig, MemoryConfig
from memstrata.testing import HashingEmbedder, WordTokenCounter

DIM = 64


@pytest.fixture
def memory(postgres_dsn: str) -> Iterator[Memory]:
    with PostgresEpisodeStore.from_conn_string(
        postgres_dsn, dimensions=DIM, schema="memstrata_forget"
    ) as store:
        store.setup()
        config = MemoryConfig(
            context_window=400,
            compression=CompressionConfig(
                background=False, threshold=0.2, chunk_fraction=0.1, keep_recent_turns=2
            ),
        )
        yield Memory(store, HashingEmbedder(DIM), token_counter=WordTokenCounter(), config=config)


def said(memory: Memory, scope: Scope, topic: str) -> None:
    turns = [
        {
            "role": "user" if i % 2 == 0 else "assistant",
            "content": f"{topic} detail number {i} " + "word " * 12,
        }
        for i in range(16)
    ]
    memory.add(turns, scope=scope)
    memory.compress(scope=scope, force=True)


def test_forgetting_a_session_keeps_the_users_other_sessions(memory: Memory) -> None:
    user = f"forget-{uuid.uuid4()}"
    first, second = Scope(user_id=user, session_id="s1"), Scope(user_id=user, session_id="s2")
    said(memory, first, "pottery")
    said(memory, second, "marathon")
    before = memory.store.scan(second, session_id="s2")
    assert any(e.kind == EpisodeKind.SUMMARY for e in memory.store.scan(first, session_id="s1"))

    removed = memory.forget_session(scope=first)

    left = memory.store.scan(first)
    assert removed >= 16 and all("pottery" not in e.text for e in left)
    assert {e.id for e in left} == {e.id for e in before}  # every turn and summary of s2 is still there
    assert all(e.scope.session_id == "s2" for e in left)
    assert memory.forget_session(scope=first) == 0


def test_the_async_face_forgets_the_same_session(memory: Memory) -> None:
    user = f"forget-{uuid.uuid4()}"
    first, second = Scope(user_id=user, session_id="s1"), Scope(user_id=user, session_id="s2")
    said(memory, first, "pottery")
    said(memory, second, "marathon")
    kept = len(memory.store.scan(second, session_id="s2"))
    removed = asyncio.run(memory.aforget_session(scope=first))
    assert removed >= 16 and len(memory.store.scan(first)) == kept
