"""Recall reuses the episodes it holds (Recaller.remember) and stays exact: a fold's
``superseded_by`` shows at once, an id forgotten and stored again shows its new text, and the
store is read only for what recall does not hold. Runs on both stores."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from memstrata.adapters.postgres import PostgresEpisodeStore
from memstrata.ports import EpisodeStore
from memstrata.recall import Recaller
from memstrata.schemas import Episode, EpisodeKind, Scope
from memstrata.testing import HashingEmbedder, InMemoryEpisodeStore

DIM = 64
EMBED = HashingEmbedder(DIM)
T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
TEXTS = [
    "Caroline adopted a grey kitten named Pepper.",
    "Melanie ran the city marathon in four hours.",
    "Caroline's kitten Pepper loves the garden.",
    "Melanie painted a lake at sunrise.",
]


class CountingStore:
    """The real store, counting the episodes read back by id (instrumentation, not a mock)."""

    def __init__(self, inner: EpisodeStore) -> None:
        self.inner = inner
        self.read: list[uuid.UUID] = []

    def get(self, scope: Scope, ids: Sequence[uuid.UUID]) -> list[Episode]:
        self.read += list(ids)
        return self.inner.get(scope, ids)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture(params=["memory", "postgres"])
def store(request: pytest.FixtureRequest) -> Iterator[EpisodeStore]:
    if request.param == "memory":
        yield InMemoryEpisodeStore(DIM)
        return
    dsn = request.getfixturevalue("postgres_dsn")
    with PostgresEpisodeStore.from_conn_string(dsn, dimensions=DIM, schema="memstrata_held") as pg:
        pg.setup()
        yield pg


def stored(
    store: EpisodeStore, scope: Scope, texts: Sequence[str], ids: Sequence[uuid.UUID] | None = None
) -> list[Episode]:
    episodes = [
        Episode(
            id=ids[i] if ids else uuid.uuid4(),
            scope=scope,
            text=t,
            role="user",
            speaker="Caroline" if "Caroline" in t else "Melanie",
            occurred_at=T0 + timedelta(minutes=i),
        )
        for i, t in enumerate(texts)
    ]
    return store.put(episodes, EMBED.embed(texts))


def test_held_episodes_are_not_read_back_and_a_fold_shows_at_once(store: EpisodeStore) -> None:
    scope = Scope(user_id=f"held-{uuid.uuid4()}", session_id="s1")
    counting = CountingStore(store)
    recaller = Recaller(counting, EMBED)
    turns = stored(store, scope, TEXTS)
    recaller.remember(turns)
    hits = recaller.recall("Pepper the kitten", scope=scope)
    assert {h.episode.id for h in hits} >= {turns[0].id, turns[2].id}
    assert counting.read == []  # every winner was held
    assert [h.episode for h in hits] == [next(t for t in turns if t.id == h.episode.id) for h in hits]

    summary = Episode(
        scope=scope,
        kind=EpisodeKind.SUMMARY,
        level=1,
        text="Caroline adopted the kitten Pepper, who loves the garden.",
        occurred_at=T0 + timedelta(minutes=2),
        covers=(turns[0].id, turns[2].id),
    )
    folded = store.fold(summary, EMBED.embed([summary.text])[0])
    after = {h.episode.id: h.episode for h in recaller.recall("Pepper the kitten", scope=scope)}
    assert after[turns[0].id].superseded_by == folded.id  # patched from the rank row
    assert after[turns[2].id].superseded_by == folded.id
    assert after[turns[0].id] == store.get(scope, [turns[0].id])[0]
    assert counting.read == [folded.id]  # only the summary, which recall did not hold


def test_an_id_forgotten_and_stored_again_shows_its_new_text(store: EpisodeStore) -> None:
    scope = Scope(user_id=f"held-{uuid.uuid4()}", session_id="s1")
    recaller = Recaller(store, EMBED)
    reused = uuid.uuid4()
    recaller.remember(stored(store, scope, ["Melanie painted a lake at sunrise."], ids=[reused]))
    assert [h.episode.text for h in recaller.recall("lake sunrise", scope=scope)] == [
        "Melanie painted a lake at sunrise."
    ]
    store.forget(scope, [reused])
    stored(store, scope, ["Melanie painted a lake at sunset, not sunrise."], ids=[reused])  # not remembered
    assert [h.episode.text for h in recaller.recall("lake sunrise", scope=scope)] == [
        "Melanie painted a lake at sunset, not sunrise."
    ]


def test_held_episodes_never_reach_another_scope(store: EpisodeStore) -> None:
    mine = Scope(user_id=f"held-{uuid.uuid4()}", session_id="s1")
    theirs = Scope(user_id=f"held-{uuid.uuid4()}", session_id="s1")
    recaller = Recaller(store, EMBED)
    recaller.remember(stored(store, mine, TEXTS))
    stored(store, theirs, ["Nothing about kittens here, only trains."])
    hits = recaller.recall("Pepper the kitten", scope=theirs)
    assert {h.episode.scope.user_id for h in hits} <= {theirs.user_id}


def test_memory_forget_lets_go_of_held_episodes(store: EpisodeStore) -> None:
    from memstrata import Memory
    from memstrata.schemas.config import MemoryConfig
    from memstrata.testing import WordTokenCounter

    memory = Memory(store, EMBED, token_counter=WordTokenCounter(), config=MemoryConfig(context_window=4096))
    mine = Scope(user_id=f"held-{uuid.uuid4()}", session_id="s1")
    other = Scope(user_id=f"held-{uuid.uuid4()}", session_id="s1")
    kept = memory.add([{"role": "user", "content": t} for t in TEXTS[:2]], scope=other)
    stored = memory.add([{"role": "user", "content": t} for t in TEXTS], scope=mine)
    memory.forget(scope=mine, ids=[stored[0].id])
    held = {e.id for e in memory.recaller._held.values()}
    assert stored[0].id not in held and {e.id for e in stored[1:]} <= held
    memory.forget(scope=mine)
    held = {e.id for e in memory.recaller._held.values()}
    assert held.isdisjoint(e.id for e in stored) and {e.id for e in kept} <= held
