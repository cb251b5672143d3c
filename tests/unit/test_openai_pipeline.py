"""``split_exchange``/``build_prompt`` and ``with_memory`` on the shipped test doubles (no I/O)."""

from __future__ import annotations

from typing import Any

import pytest
from memstrata import Memory, MemoryConfig, PlannerConfig, Scope
from memstrata.adapters.conversation import build_prompt, split_exchange
from memstrata.adapters.openai_pipeline import as_chat_messages, assistant_message, with_memory
from memstrata.errors import InvalidInput, ModelError, PromptTooLong
from memstrata.schemas import ChatMessage, EpisodeKind
from memstrata.testing import HashingEmbedder, InMemoryEpisodeStore, ScriptedChatModel


def memory(window: int = 512) -> Memory:
    model = ScriptedChatModel(["unused"], context_window=window)
    return Memory(
        InMemoryEpisodeStore(64),
        HashingEmbedder(64),
        model=model,
        config=MemoryConfig(planner=PlannerConfig(reserve_tokens=32)),
    )


def test_split_exchange_finds_the_new_part() -> None:
    messages = as_chat_messages(
        [
            {"role": "system", "content": "be kind"},
            {"role": "user", "content": "old question"},
            {"role": "assistant", "content": "old answer"},
            {"role": "user", "content": "first"},
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "content": "sunny", "tool_call_id": "c1"},
        ]
    )
    exchange = split_exchange(messages)
    assert exchange.system == "be kind"
    assert exchange.query == "weather?"
    assert [m.content for m in exchange.lead] == ["first"]
    assert [m.role for m in exchange.tail] == ["assistant", "tool"]
    assert exchange.new_indices == (3, 4, 5, 6)
    with pytest.raises(InvalidInput):
        split_exchange(messages[:3])  # ends with a finished answer: nothing to answer


def test_build_prompt_uses_the_callers_system_prompt_and_keeps_the_tail() -> None:
    mem = memory()
    scope = Scope(user_id="u", session_id="s")
    mem.add(
        [{"role": "user", "content": "my bike is red"}, {"role": "assistant", "content": "noted"}],
        scope=scope,
    )
    exchange = split_exchange(
        as_chat_messages(
            [
                {"role": "system", "content": "You are Bob."},
                {"role": "user", "content": "what colour is my bike?"},
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [{"id": "c", "name": "look", "arguments": "{}"}],
                },
                {"role": "tool", "content": "garage", "tool_call_id": "c"},
            ]
        )
    )
    prompt = build_prompt(mem, exchange, scope=scope)
    roles = [m.role for m in prompt.messages]
    assert prompt.messages[0] == ChatMessage(role="system", content="You are Bob.")
    assert roles[-3:] == ["user", "assistant", "tool"]
    assert "what colour is my bike?" in prompt.messages[-3].content
    assert any("my bike is red" in m.content for m in prompt.messages[1:-3])
    assert prompt.prompt_tokens == mem.counter.count_prompt(prompt.messages) <= prompt.available


def test_build_prompt_shrinks_memory_to_fit_then_refuses() -> None:
    mem = memory(window=200)
    scope = Scope(user_id="u2")
    mem.add([{"role": "user", "content": f"fact number {i} about apples"} for i in range(40)], scope=scope)
    exchange = split_exchange(as_chat_messages([{"role": "user", "content": "apples?"}]))
    tail = 60  # pretend the tools and in-flight messages cost this much more than the counter sees
    prompt = build_prompt(mem, exchange, scope=scope, measure=lambda m: mem.counter.count_prompt(m) + tail)
    assert prompt.prompt_tokens <= prompt.available
    with pytest.raises(PromptTooLong):
        build_prompt(mem, exchange, scope=scope, measure=lambda m: mem.counter.count_prompt(m) + 1000)


def test_with_memory_records_final_answers_only() -> None:
    mem = memory()
    scope = Scope(user_id="u3", session_id="web")
    seen: list[list[dict[str, Any]]] = []

    def call_model(messages: list[dict[str, Any]]) -> Any:
        seen.append(messages)
        if messages[-1]["role"] == "user" and "weather" in messages[-1]["content"]:
            return {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c9", "type": "function", "function": {"name": "weather", "arguments": "{}"}}
                ],
            }
        return {"choices": [{"message": {"role": "assistant", "content": "It is sunny."}}]}

    chat = with_memory(call_model, mem, scope)
    history = [{"role": "user", "content": "I live in Porto. What's the weather?"}]
    reply = chat(history)
    assert reply["tool_calls"][0]["function"]["name"] == "weather"
    assert mem.recent(scope=scope) == []  # in progress: nothing recorded yet
    history += [reply, {"role": "tool", "content": "sunny", "tool_call_id": "c9"}]
    assert chat(history) == {"role": "assistant", "content": "It is sunny."}
    stored = mem.recent(scope=scope)
    assert [(e.role, e.text) for e in stored] == [
        ("user", "I live in Porto. What's the weather?"),
        ("assistant", "(calls weather)"),
        ("tool", "sunny"),
        ("assistant", "It is sunny."),
    ]
    assert all(e.kind is EpisodeKind.TURN for e in stored)
    assert chat.last_plan is not None


def test_with_memory_failure_records_nothing() -> None:
    mem = memory()
    scope = Scope(user_id="u4")

    def broken(_: list[dict[str, Any]]) -> str:
        raise ConnectionError("upstream down")

    with pytest.raises(ModelError, match="upstream down"):
        with_memory(broken, mem, scope)([{"role": "user", "content": "hello"}])
    with pytest.raises(ModelError):
        with_memory(lambda _: 42, mem, scope)([{"role": "user", "content": "hello"}])
    assert mem.store.scan(scope) == []
    with pytest.raises(InvalidInput):
        with_memory(lambda _: "x", mem, scope)([{"role": "robot", "content": "beep"}])


def test_assistant_message_shapes() -> None:
    assert assistant_message("hi") == ChatMessage(role="assistant", content="hi")
    assert assistant_message({"content": "yo"}).content == "yo"
    with pytest.raises(ModelError):
        assistant_message({"choices": []})


def test_an_assistant_message_echoed_back_from_the_openai_client_is_accepted() -> None:
    """``response.choices[0].message.model_dump()`` carries null response-only fields."""
    from openai.types.chat import ChatCompletionMessage

    echoed = ChatCompletionMessage(role="assistant", content="It is on Thursday.").model_dump()
    assert "refusal" in echoed and echoed["refusal"] is None
    refused = ChatCompletionMessage(role="assistant", content=None, refusal="I can't help with that.")
    messages = as_chat_messages(
        [{"role": "user", "content": "When is pottery?"}, echoed, {"role": "user", "content": "Thanks"}]
    )
    assert [(m.role, m.content) for m in messages] == [
        ("user", "When is pottery?"),
        ("assistant", "It is on Thursday."),
        ("user", "Thanks"),
    ]
    [refusal] = as_chat_messages([refused.model_dump()])
    assert refusal.content == "I can't help with that."
    with pytest.raises(InvalidInput, match="audio"):
        as_chat_messages([{**echoed, "audio": {"id": "a1", "data": "..."}}])
