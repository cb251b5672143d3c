"""The LangChain adapters on the real default model and the embedded PostgreSQL: an agent built
with ``create_agent(model, tools, middleware=[MemstrataMiddleware(memory)])`` that recalls a fact
from another session 50+ turns back, records tool calls once, and fails cleanly; and
``ChatMemstrataLlamaCpp``'s exact counts, streaming and constrained tool calls."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from memstrata import CompressionConfig, Memory, MemoryConfig, PlannerConfig, RecallConfig, Scope
from memstrata.adapters.defaults import open_memory
from memstrata.adapters.langchain import ChatMemstrataLlamaCpp, MemstrataMiddleware
from memstrata.adapters.postgres import AsyncPostgresEpisodeStore, PostgresEpisodeStore
from memstrata.errors import InvalidInput, PromptTooLong
from memstrata.rendering import TOOL_CALLS_KEY

pytestmark = [pytest.mark.postgres, pytest.mark.model]

CONFIG = MemoryConfig(
    planner=PlannerConfig(reserve_tokens=24, memory_budget=400),
    recall=RecallConfig(k=6),
    compression=CompressionConfig(threshold=1.0),
)


@tool
def days_until_weekend(today: str) -> str:
    """How many days are left until Saturday, given today's weekday name."""
    order = ["monday", "tuesday", "wednesday", "thursday", "friday"]
    return str(5 - order.index(today.lower())) if today.lower() in order else "0"


class Prompts(BaseCallbackHandler):
    def __init__(self) -> None:
        self.seen: list[list[BaseMessage]] = []

    def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[BaseMessage]], **_: Any
    ) -> None:
        self.seen.extend(messages)


class ForceToolThenAnswer(AgentMiddleware):
    """Makes the run deterministic for a 135M model: a (grammar-constrained) tool call after the
    user's message, a plain answer after the tool's result."""

    def wrap_model_call(
        self, request: ModelRequest[Any], handler: Callable[[ModelRequest[Any]], ModelResponse[Any]]
    ) -> ModelResponse[Any] | AIMessage:
        last = request.messages[-1]
        return handler(request.override(tool_choice="none" if isinstance(last, ToolMessage) else "any"))


@pytest.fixture(scope="module")
def model() -> Iterator[ChatMemstrataLlamaCpp]:
    chat = ChatMemstrataLlamaCpp(n_ctx=2048, n_threads=1, max_tokens=24)
    yield chat
    assert chat.llm is not None
    chat.llm.close()


@pytest.fixture(scope="module")
def memory(postgres_dsn: str, model: ChatMemstrataLlamaCpp) -> Iterator[Memory]:
    with open_memory(dsn=postgres_dsn, model=model.llm, config=CONFIG) as opened:
        yield opened


def config(user: str, thread: str, **extra: Any) -> Any:
    return {"configurable": {"user_id": user, "thread_id": thread}, **extra}


def test_agent_answers_from_a_fact_50_turns_back_in_another_session(
    model: ChatMemstrataLlamaCpp, memory: Memory
) -> None:
    user = f"lc-{uuid.uuid4().hex[:8]}"
    middleware = MemstrataMiddleware(memory)
    agent = create_agent(model, [days_until_weekend], middleware=[middleware])
    agent.invoke(
        {"messages": [{"role": "user", "content": "My gym locker code is 4417."}]}, config(user, "monday")
    )
    filler = []
    for i in range(26):
        filler += [
            {"role": "user", "content": f"Give me trivia number {i} about rivers."},
            {"role": "assistant", "content": f"River fact {i}: the Nile is long."},
        ]
    memory.add(filler, scope=Scope(user_id=user, session_id="monday"))
    prompts = Prompts()
    result = agent.invoke(
        {"messages": [{"role": "user", "content": "What is my gym locker code?"}]},
        config(user, "friday", callbacks=[prompts]),
    )
    context = "\n".join(m.text for m in prompts.seen[0])
    assert "4417" in context  # recalled from Monday's session, 52 turns earlier
    assert "<memory>" in prompts.seen[0][-1].text  # as quoted data in the latest user message
    assert isinstance(prompts.seen[0][0], SystemMessage)
    assert middleware.last_plan is not None and middleware.last_plan.prompt_tokens <= 2048 - 24
    print("agent answered:", result["messages"][-1].text)  # a 135M model's answer: shown, not judged
    friday = memory.store.scan(Scope(user_id=user), session_id="friday")
    assert [e.role for e in friday] == ["user", "assistant"]


def test_tool_calls_are_recorded_once_even_when_rerun(model: ChatMemstrataLlamaCpp, memory: Memory) -> None:
    user = f"lc-{uuid.uuid4().hex[:8]}"
    agent = create_agent(
        model, [days_until_weekend], middleware=[MemstrataMiddleware(memory), ForceToolThenAnswer()]
    )
    run = config(user, "s1")
    out = agent.invoke(
        {"messages": [HumanMessage("How many days until the weekend? Today is Tuesday.")]}, run
    )
    roles = [m.type for m in out["messages"]]
    assert roles == ["human", "ai", "tool", "ai"]
    assert out["messages"][1].tool_calls[0]["name"] == "days_until_weekend"
    stored = memory.store.scan(Scope(user_id=user), session_id="s1")
    assert [e.role for e in stored] == ["user", "assistant", "tool", "assistant"]
    assert stored[1].metadata[TOOL_CALLS_KEY][0]["name"] == "days_until_weekend"
    assert stored[2].text == out["messages"][2].text
    # Re-run the last model call (same state up to the tool's result): nothing is stored twice.
    agent.invoke({"messages": out["messages"][:-1]}, run)
    assert len(memory.store.scan(Scope(user_id=user), session_id="s1")) == 4


def test_bad_runs_raise_typed_errors_and_record_nothing(model: ChatMemstrataLlamaCpp, memory: Memory) -> None:
    agent = create_agent(model, [], middleware=[MemstrataMiddleware(memory)])
    with pytest.raises(InvalidInput, match="user_id"):
        agent.invoke({"messages": [{"role": "user", "content": "hi"}]}, {"configurable": {"thread_id": "t"}})
    user = f"lc-{uuid.uuid4().hex[:8]}"
    with pytest.raises(PromptTooLong):
        agent.invoke({"messages": [{"role": "user", "content": "blah " * 2500}]}, config(user, "t"))
    assert memory.store.scan(Scope(user_id=user)) == []


def test_chat_model_counts_exactly_and_streams(model: ChatMemstrataLlamaCpp) -> None:
    messages: list[BaseMessage] = [
        SystemMessage("Answer briefly."),
        HumanMessage("Name a colour of the sky."),
    ]
    bound = model.bind_tools([days_until_weekend])
    answer = bound.invoke(messages)
    assert isinstance(answer, AIMessage) and answer.usage_metadata is not None
    assert (
        model.get_num_tokens_from_messages(messages, tools=[days_until_weekend])
        == answer.usage_metadata["input_tokens"]
    )
    plain = model.invoke(messages)
    assert plain.usage_metadata is not None
    assert model.get_num_tokens_from_messages(messages) == plain.usage_metadata["input_tokens"]
    # Streamed text can differ from the invoke's: llama.cpp reuses the cached prompt prefix, and
    # a differently batched evaluation may tip a greedy choice. The accounting must not differ.
    streamed = list(model.stream(messages))
    text = "".join(str(c.content) for c in streamed)
    assert text.strip()
    usage = streamed[-1].usage_metadata
    assert usage is not None and usage["input_tokens"] == plain.usage_metadata["input_tokens"]
    assert usage["output_tokens"] == model.get_num_tokens(text)
    assert "sky" not in str(model.invoke(messages, stop=["sky"]).content)
    assert model.get_num_tokens("sky") == len(model.get_token_ids("sky")) > 0


def test_forced_tool_call_is_valid(model: ChatMemstrataLlamaCpp) -> None:
    forced = model.bind_tools([days_until_weekend], tool_choice="days_until_weekend")
    message = forced.invoke([HumanMessage("Today is Wednesday: how long until the weekend?")])
    assert isinstance(message, AIMessage)
    assert [c["name"] for c in message.tool_calls] == ["days_until_weekend"]
    assert isinstance(message.tool_calls[0]["args"].get("today"), str)


def test_async_agent_reads_the_runtime_context(model: ChatMemstrataLlamaCpp, memory: Memory) -> None:
    """``ainvoke`` takes the async hook; the user comes from the runtime context here."""
    user = f"lc-{uuid.uuid4().hex[:8]}"
    agent = create_agent(model, [], middleware=[MemstrataMiddleware(memory)], context_schema=dict)
    asyncio.run(
        agent.ainvoke(
            {"messages": [{"role": "user", "content": "Note: the plumber comes at nine."}]},
            {"configurable": {"thread_id": "async-1"}},
            context={"user_id": user},
        )
    )
    stored = memory.store.scan(Scope(user_id=user), session_id="async-1")
    assert [e.role for e in stored] == ["user", "assistant"]
    assert stored[0].text == "Note: the plumber comes at nine."


def test_async_agent_runs_on_the_async_store(
    postgres_dsn: str, model: ChatMemstrataLlamaCpp, memory: Memory
) -> None:
    """With an ``AsyncPostgresEpisodeStore``, the async hook plans and records on Memory's async
    face (psycopg's async pool): the sync face then reads what it stored."""
    user = f"lc-{uuid.uuid4().hex[:8]}"
    sync_store = memory.store
    assert isinstance(sync_store, PostgresEpisodeStore)

    async def run() -> None:
        async with AsyncPostgresEpisodeStore.from_conn_string(
            postgres_dsn, dimensions=sync_store.dimensions, schema=sync_store.schema
        ) as store:
            on_async = Memory(
                memory.store, memory.embedder, model=memory.model, config=CONFIG, async_store=store
            )
            agent = create_agent(model, [], middleware=[MemstrataMiddleware(on_async)])
            await agent.ainvoke(
                {"messages": [{"role": "user", "content": "Note: the piano tuner comes on Friday."}]},
                config(user, "async-2"),
            )

    asyncio.run(run())
    stored = memory.store.scan(Scope(user_id=user), session_id="async-2")
    assert [e.role for e in stored] == ["user", "assistant"]
    assert stored[0].text == "Note: the piano tuner comes on Friday."
