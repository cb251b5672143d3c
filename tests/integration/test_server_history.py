"""History a client sends on first contact is stored, once: an unmodified OpenAI client, the
server's app on the real PostgreSQL store, an upstream that echoes its prompt (so what memory
put in the prompt shows in the answer)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence

import openai
import pytest
from memstrata import Memory, MemoryConfig
from memstrata.adapters.postgres import PostgresEpisodeStore
from memstrata.adapters.postgres.api_keys import ApiKeys
from memstrata.adapters.server import SESSION_HEADER, create_app
from memstrata.adapters.server.run import running_server
from memstrata.schemas import ChatMessage, Scope
from memstrata.schemas.config import CompressionConfig, PlannerConfig, RecallConfig
from memstrata.testing import HashingEmbedder, ScriptedChatModel
from openai.types.chat import ChatCompletionMessageParam

pytestmark = pytest.mark.postgres

DIMENSIONS = 64
CONFIG = MemoryConfig(
    planner=PlannerConfig(reserve_tokens=32, memory_budget=400),
    recall=RecallConfig(k=5),
    compression=CompressionConfig(enabled=False),
)


def echo(messages: Sequence[ChatMessage]) -> str:
    # One line: a reply ends at a stop string such as "\nNotes from", as a real model's does.
    return " | ".join(m.content.replace("\n", " / ") for m in messages)


@pytest.fixture(scope="module")
def memory(postgres_dsn: str) -> Iterator[Memory]:
    schema = "server_history"
    with PostgresEpisodeStore.from_conn_string(postgres_dsn, dimensions=DIMENSIONS, schema=schema) as store:
        store.setup()
        model = ScriptedChatModel(echo, context_window=8192)
        yield Memory(store, HashingEmbedder(DIMENSIONS), model=model, config=CONFIG)


@pytest.fixture(scope="module")
def server(memory: Memory) -> Iterator[tuple[str, ApiKeys]]:
    store = memory.store
    assert isinstance(store, PostgresEpisodeStore)
    with running_server(create_app(memory)) as url:
        yield url, ApiKeys(store.pool, schema=store.schema)


def history(turns: int) -> list[ChatCompletionMessageParam]:
    """``turns`` messages alternating user / assistant; the car's colour is said in the first."""
    said: list[ChatCompletionMessageParam] = [{"role": "user", "content": "My car is a red Volvo with a dented door."}]
    said.append({"role": "assistant", "content": "Noted, a red Volvo."})
    for n in range(2, turns, 2):
        said.append({"role": "user", "content": f"Note {n}: the plant on shelf {n} needs water weekly."})
        said.append({"role": "assistant", "content": f"Noted, shelf {n}."})
    return said[:turns]


def client_for(server: tuple[str, ApiKeys], user: str) -> openai.OpenAI:
    url, keys = server
    _, secret = keys.create(user_id=user)
    return openai.OpenAI(base_url=f"{url}/v1", api_key=secret, max_retries=0)


def turns(memory: Memory, user: str, session: str = "default") -> list[str]:
    return [e.text for e in memory.store.scan(Scope(user_id=user), session_id=session)]


def test_a_40_turn_history_is_stored_once_and_recalled(server: tuple[str, ApiKeys], memory: Memory) -> None:
    user = f"hist-{uuid.uuid4().hex[:8]}"
    client = client_for(server, user)
    earlier = history(40)
    question: ChatCompletionMessageParam = {"role": "user", "content": "What colour is my car, the Volvo?"}
    first = client.chat.completions.create(model="m", max_tokens=4000, messages=[{"role": "system", "content": "Be brief."},
                                                                *earlier, question])  # fmt: skip
    assert (first.model_extra or {})["memstrata"]["history_stored"] == 40
    assert "Note 38: the plant on shelf 38" in (first.choices[0].message.content or "")  # already in the prompt
    stored = turns(memory, user)
    assert stored[:40] == [m["content"] for m in earlier]
    assert stored[40] == question["content"] and len(stored) == 42

    answer = first.choices[0].message.content or ""
    again: list[ChatCompletionMessageParam] = [*earlier, question, {"role": "assistant", "content": answer}]
    resent = client.chat.completions.create(
        model="m", messages=[*again, {"role": "user", "content": "Thanks."}]
    )
    assert (resent.model_extra or {})["memstrata"]["history_stored"] == 0
    assert len(turns(memory, user)) == 44  # the new question and its answer only

    # a later session recalls the migrated history
    later = client.chat.completions.create(
        model="m",
        max_tokens=4000,
        messages=[{"role": "user", "content": "Which car do I drive, the Volvo?"}],
        extra_headers={SESSION_HEADER: "later"},
    )
    assert "red Volvo with a dented door" in (later.choices[0].message.content or "")
    texts = [e.text for e in memory.store.scan(Scope(user_id=user))]
    assert len(texts) == 46 and len(set(texts[:40])) == 40


def test_resending_the_same_first_contact_stores_nothing_twice(
    server: tuple[str, ApiKeys], memory: Memory
) -> None:
    user = f"hist-{uuid.uuid4().hex[:8]}"
    client = client_for(server, user)
    messages: list[ChatCompletionMessageParam] = [*history(6), {"role": "user", "content": "And the plant?"}]
    for _ in range(3):  # a client retrying after lost replies
        client.chat.completions.create(model="m", max_tokens=4000, messages=messages)
    stored = turns(memory, user)
    assert stored[:6] == [m["content"] for m in history(6)]
    assert stored.count("My car is a red Volvo with a dented door.") == 1
    # each retry records its own new question and answer, as a retry without history would
    assert stored.count("And the plant?") == 3


def test_a_sliding_window_client_stores_no_history(server: tuple[str, ApiKeys], memory: Memory) -> None:
    user = f"hist-{uuid.uuid4().hex[:8]}"
    client = client_for(server, user)
    said: list[ChatCompletionMessageParam] = []
    for n in range(5):
        said.append({"role": "user", "content": f"Message {n} about topic {n}."})
        reply = client.chat.completions.create(model="m", max_tokens=4000, messages=said[-4:])
        assert (reply.model_extra or {})["memstrata"]["history_stored"] == 0
        said.append({"role": "assistant", "content": reply.choices[0].message.content or ""})
    assert len(turns(memory, user)) == 10
