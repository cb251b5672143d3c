"""Cross-scope probes through every public method of ``Memory`` on the real Postgres store.

Bob's memories hold a secret word; nothing Alice's scope returns (plans, recall, exports, the
prompt the model receives, summaries, what ``forget`` deletes) may contain it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence

import pytest
from memstrata import Memory
from memstrata.adapters.postgres import PostgresEpisodeStore
from memstrata.schemas import ChatMessage, Scope
from memstrata.schemas.config import CompressionConfig, MemoryConfig
from memstrata.testing import HashingEmbedder, ScriptedChatModel, WordTokenCounter

pytestmark = pytest.mark.postgres

SECRET = "zanzibar"
EMBED = HashingEmbedder(32)


@pytest.fixture(scope="module")
def store(postgres_dsn: str) -> Iterator[PostgresEpisodeStore]:
    with PostgresEpisodeStore.from_conn_string(
        postgres_dsn, dimensions=32, schema="memstrata_isolation"
    ) as s:
        s.setup()
        yield s


@pytest.fixture
def scopes() -> tuple[Scope, Scope]:
    run = uuid.uuid4().hex[:8]
    return Scope(user_id=f"alice-{run}", agent_id="helper"), Scope(user_id=f"bob-{run}", agent_id="helper")


def _memory(store: PostgresEpisodeStore, prompts: list[Sequence[ChatMessage]]) -> Memory:
    def reply(messages: Sequence[ChatMessage]) -> str:
        prompts.append(list(messages))
        return "Noted. The summary: things were said about trips and plans."

    counter = WordTokenCounter()
    model = ScriptedChatModel(reply, context_window=600, token_counter=counter)
    config = MemoryConfig(compression=CompressionConfig(threshold=0.2))
    return Memory(store, EMBED, model=model, config=config)


def test_nothing_of_bobs_reaches_alice_through_any_method(
    store: PostgresEpisodeStore, scopes: tuple[Scope, Scope]
) -> None:
    alice, bob = scopes
    prompts: list[Sequence[ChatMessage]] = []
    memory = _memory(store, prompts)
    bob_turns = memory.add(
        [{"role": "user", "content": f"My vault password is {SECRET}, about my trip plans."}] * 3, scope=bob
    )
    memory.add(
        [{"role": "user", "content": f"I plan trip number {i} to the coast."} for i in range(40)], scope=alice
    )

    outputs: list[str] = []
    plan = memory.context(f"What is the vault password {SECRET}? trip plans", scope=alice)
    outputs += [m.content or "" for m in plan.messages]
    hits = memory.recall(f"{SECRET} vault password trip", scope=alice)
    assert hits, "the probe must cover recall"
    outputs += [h.episode.text for h in hits]
    reply = memory.chat(f"Tell me the {SECRET} vault password of my trip", scope=alice)
    outputs += [reply.text, *(m.content or "" for prompt in prompts for m in prompt)]
    memory.compress(scope=alice, force=True)
    summaries = memory.summaries(scope=alice)
    assert summaries, "the probe must cover summaries"
    outputs += [e.text for e in summaries]
    outputs += [e.text for e in memory.recent(scope=alice)]
    outputs += list(memory.export(scope=alice))

    assert memory.forget(scope=alice, ids=[e.id for e in bob_turns]) == 0
    leaked = [text for text in outputs if SECRET in text and "password is" in text]
    assert leaked == [], leaked
    # Only Alice's question (her own words) carries the word; Bob's turns are all still there.
    assert len(list(memory.export(scope=bob))) == 3
    assert all("password is" in e.text for e in store.scan(bob))
