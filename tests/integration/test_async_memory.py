"""Drift between ``Memory``'s two faces: the same operations, run once through the sync face and
once through the async face (on ``AsyncPostgresEpisodeStore``), each in a user of its own on the
same Postgres schema, must return the same results: stored episodes, recall hits and their order
and scores, context plans and messages, compression reports, streamed replies, forget counts.

Ids, ``seq`` and ``created_at`` differ by nature; ids and ``seq`` are compared by the order in
which they first appear, so lineage (``covers``, ``superseded_by``, a plan's ids) is compared too.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from memstrata import Memory
from memstrata.adapters.postgres import AsyncPostgresEpisodeStore, PostgresEpisodeStore
from memstrata.ports import AsyncEpisodeStore, EpisodeStore
from memstrata.schemas import ChatMessage, EpisodeKind, Scope, SearchFilters
from memstrata.schemas.config import CompressionConfig, MemoryConfig, RecallConfig
from memstrata.testing import HashingEmbedder, InMemoryEpisodeStore, ScriptedChatModel, WordTokenCounter
from pydantic import BaseModel

pytestmark = pytest.mark.postgres

DIM = 48
SCHEMA = "memstrata_async_drift"
EMBED = HashingEmbedder(DIM)
T0 = datetime(2031, 3, 2, 9, 0, tzinfo=UTC)  # after the wall clock: a reply's time is its question's
SAID = [
    ("user", "Caroline went to the LGBTQ support group on Tuesday."),
    ("assistant", "That sounds like a supportive place."),
    ("user", "Melanie painted a sunrise over the lake last weekend."),
    ("assistant", "A sunrise over the lake, lovely."),
    ("user", "My cabin wifi password is maple-7731."),
    ("assistant", "Noted, the cabin wifi password."),
    ("user", "We adopted a dog called Biscuit in April."),
    ("assistant", "Biscuit is a fine name for a dog."),
]


def _turns(start: datetime) -> list[dict[str, Any]]:
    return [
        {"role": role, "content": text, "occurred_at": start + i * timedelta(minutes=3)}
        for i, (role, text) in enumerate(SAID)
    ]


def _reply(messages: Sequence[ChatMessage]) -> str:
    """A deterministic model: summaries name the words they were given, answers echo the query."""
    last = messages[-1].content
    words = re.findall(r"[A-Z][a-z]+", last)
    if "short sentences" in last:
        return f"They spoke about {', '.join(dict.fromkeys(words[:6]))}."
    return f"From memory: {' '.join(last.split()[-6:])}"


Step = tuple[str, Callable[[list[Any]], dict[str, Any]]]
STEPS: list[Step] = [
    ("add", lambda _: {"turns": _turns(T0)}),
    ("add", lambda _: {"turns": _turns(T0 + timedelta(days=1))[:4], "session_id": "week-2"}),
    ("recall", lambda _: {"query": "What is the cabin wifi password?"}),
    (
        "recall",
        lambda _: {"query": "Who painted?", "k": 3, "filters": SearchFilters(kinds=(EpisodeKind.TURN,))},
    ),
    (
        "context",
        lambda _: {"query": "What did Melanie paint?", "now": T0 + timedelta(days=2), "session_id": "week-3"},
    ),
    (
        "chat",
        lambda _: {
            "user_text": "What is the dog called?",
            "occurred_at": T0 + timedelta(days=3),
            "session_id": "week-3",
        },
    ),
    (
        "chat",
        lambda _: {
            "user_text": "And the wifi password?",
            "occurred_at": T0 + timedelta(days=3, minutes=1),
            "idempotency_key": "retry-1",
        },
    ),
    (
        "chat",  # the retry: the same turns come back, nothing is written twice
        lambda _: {
            "user_text": "And the wifi password?",
            "occurred_at": T0 + timedelta(days=3, minutes=1),
            "idempotency_key": "retry-1",
        },
    ),
    ("compress", lambda _: {"force": True}),
    ("summaries", lambda _: {}),
    ("recent", lambda _: {"limit": 4}),
    ("stream", lambda _: {"user_text": "Where did Caroline go?", "occurred_at": T0 + timedelta(days=4)}),
    (
        "context",
        lambda _: {"query": "Where did Caroline go?", "now": T0 + timedelta(days=5), "session_id": "week-4"},
    ),
    ("forget", lambda results: {"ids": [results[0][2].id]}),
    ("recall", lambda _: {"query": "Melanie painted a sunrise"}),
    ("forget", lambda _: {}),
    ("recent", lambda _: {}),
]


def _arguments(step: Step, results: list[Any], scope: Scope) -> dict[str, Any]:
    """A step's arguments, its scope in the session it names (else the scope's)."""
    arguments = step[1](results)
    session = arguments.pop("session_id", scope.session_id)
    return {**arguments, "scope": scope.model_copy(update={"session_id": session})}


def run_sync(memory: Memory, scope: Scope) -> list[Any]:
    results: list[Any] = []
    for step in STEPS:
        result = getattr(memory, step[0])(**_arguments(step, results, scope))
        results.append(list(result) if step[0] == "stream" else result)
    return results


async def run_async(memory: Memory, scope: Scope) -> list[Any]:
    results: list[Any] = []
    for step in STEPS:
        method = getattr(memory, "a" + step[0])
        if step[0] == "stream":
            results.append([piece async for piece in method(**_arguments(step, results, scope))])
        else:
            results.append(await method(**_arguments(step, results, scope)))
    return results


class Canonical:
    """Results as plain data, with ids and ``seq`` numbered by first appearance."""

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        self.labels: dict[str, str] = {}

    def label(self, kind: str, value: Any) -> str:
        return self.labels.setdefault(f"{kind}:{value}", f"{kind}#{len(self.labels)}")

    def __call__(self, value: Any) -> Any:
        if isinstance(value, BaseModel):
            return self(value.model_dump(mode="json"))
        if is_dataclass(value) and not isinstance(value, type):
            return self(asdict(value))
        if isinstance(value, dict):
            return {key: self.field(key, item) for key, item in value.items() if key != "created_at"}
        if isinstance(value, list | tuple):
            return [self(item) for item in value]
        if isinstance(value, uuid.UUID) or (isinstance(value, str) and _is_uuid(value)):
            return self.label("id", value)
        if value == self.user_id:
            return "USER"
        return value

    def field(self, key: str, item: Any) -> Any:
        return self.label("seq", item) if key == "seq" and item is not None else self(item)


def _same(a: Any, b: Any) -> bool:
    """Equal, but for what a reply's measured duration moves: a reply is dated its question's time
    plus the time the exchange took (so a time within a few seconds, and recency-weighted scores
    within a relative 1e-6, count as the same)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12)
    if isinstance(a, str) and isinstance(b, str) and a != b and _TIME.fullmatch(a) and _TIME.fullmatch(b):
        return abs((datetime.fromisoformat(a) - datetime.fromisoformat(b)).total_seconds()) < 5
    return bool(a == b)


_TIME = re.compile(r"\d{4}-\d\d-\d\dT[\d:.]+(Z|[+-]\d\d:\d\d)")


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return len(text) == 36


@pytest.fixture(scope="module")
def sync_store(postgres_dsn: str) -> Iterator[PostgresEpisodeStore]:
    with PostgresEpisodeStore.from_conn_string(postgres_dsn, dimensions=DIM, schema=SCHEMA) as store:
        store.setup()
        yield store


@pytest.fixture
async def async_store(
    postgres_dsn: str, sync_store: PostgresEpisodeStore
) -> AsyncIterator[AsyncPostgresEpisodeStore]:
    async with AsyncPostgresEpisodeStore.from_conn_string(
        postgres_dsn, dimensions=DIM, schema=SCHEMA
    ) as store:
        yield store


def _memory(store: EpisodeStore, async_store: AsyncEpisodeStore | None) -> Memory:
    counter = WordTokenCounter()
    model = ScriptedChatModel(_reply, context_window=700, token_counter=counter)
    config = MemoryConfig(  # recency, query parts and neighbours on: every recall path runs
        compression=CompressionConfig(threshold=0.25, background=False, keep_recent_turns=4),
        recall=RecallConfig(recency_half_life_days=1.0, part_weight=0.3, neighbour_anchors=2),
    )
    return Memory(store, EMBED, model=model, config=config, async_store=async_store)


async def test_the_async_face_returns_what_the_sync_face_returns(
    sync_store: PostgresEpisodeStore, async_store: AsyncPostgresEpisodeStore
) -> None:
    await _same_results(_memory(sync_store, async_store))


async def test_the_faces_agree_on_the_in_memory_store_too() -> None:
    """The in-memory double has no async face: the async methods run it in worker threads."""
    await _same_results(_memory(InMemoryEpisodeStore(DIM), None))


async def _same_results(memory: Memory) -> None:
    """The script through both faces, each for a user of its own, compared step by step."""
    run = uuid.uuid4().hex[:8]
    by_sync = Scope(user_id=f"sync-{run}", agent_id="helper", session_id="week-1")
    by_async = Scope(user_id=f"async-{run}", agent_id="helper", session_id="week-1")
    sync_results = run_sync(memory, by_sync)
    async_results = await run_async(memory, by_async)
    expected, got = Canonical(by_sync.user_id)(sync_results), Canonical(by_async.user_id)(async_results)
    for step, (want, have) in enumerate(zip(expected, got, strict=True)):
        assert _same(have, want), f"step {step}: {STEPS[step][0]}: {have} != {want}"
    # The script exercises what it claims to: hits, folds, a retried chat, a stream, forgets.
    assert "My cabin wifi password is maple-7731." in [h.episode.text for h in sync_results[2][:3]]
    assert sync_results[7].stored == sync_results[6].stored
    assert sync_results[8].folds or sync_results[5].compression.folds
    assert isinstance(sync_results[11][-1].text, str) and len(sync_results[11]) > 2
    assert sync_results[4].recalled and sync_results[12].recalled
    assert sync_results[13] >= 1 and sync_results[15] > 0 and sync_results[16] == []


async def test_the_async_face_without_an_async_store_runs_the_store_in_threads(
    sync_store: PostgresEpisodeStore,
) -> None:
    counter = WordTokenCounter()
    model = ScriptedChatModel(_reply, context_window=700, token_counter=counter)
    memory = Memory(sync_store, EMBED, model=model, config=MemoryConfig())
    scope = Scope(user_id=f"threads-{uuid.uuid4().hex[:8]}", session_id="s")
    stored = await memory.aadd(_turns(T0), scope=scope)
    hits = await memory.arecall("cabin wifi password", scope=scope)
    assert [e.text for e in stored] == [text for _, text in SAID]
    assert stored[4].id in [h.episode.id for h in hits[:3]]
    assert await memory.aforget(scope=scope) == len(SAID)
