"""History a client sends that memory never stored (``memstrata.adapters.history``), on the
shipped test doubles."""

from __future__ import annotations

from typing import Any

from memstrata import Memory, MemoryConfig, PlannerConfig, Scope
from memstrata.adapters.history import unknown_start
from memstrata.adapters.openai_pipeline import with_memory
from memstrata.testing import HashingEmbedder, InMemoryEpisodeStore, ScriptedChatModel


def test_unknown_start_is_the_overlap_of_the_history_start_with_the_stored_end() -> None:
    a, b, c, d = ("user", "a"), ("assistant", "b"), ("user", "c"), ("assistant", "d")
    assert unknown_start([a, b], []) == 0  # first contact: all unknown
    assert unknown_start([a, b, c, d], [a, b, c, d]) == 4  # the whole history is known
    assert unknown_start([c, d], [a, b, c, d]) == 2  # a sliding window
    assert unknown_start([a, b, c, d], [a, b]) == 2  # the session missed the end
    assert unknown_start([a, b], [c, d]) == 0
    assert unknown_start([a, a, a], [a]) == 1  # repeated text counts by position
    assert unknown_start([a, b], [a, b, c, d]) == 2  # resent after later turns


def test_with_memory_stores_a_history_begun_elsewhere_once() -> None:
    memory = Memory(
        InMemoryEpisodeStore(64),
        HashingEmbedder(64),
        model=ScriptedChatModel(["unused"]),
        config=MemoryConfig(planner=PlannerConfig(reserve_tokens=32)),
    )
    scope = Scope(user_id="u", session_id="web")
    prompts: list[list[dict[str, Any]]] = []

    def call_model(messages: list[dict[str, Any]]) -> str:
        prompts.append(messages)
        return "It is red."

    chat = with_memory(call_model, memory, scope)
    earlier = [
        {"role": "user", "content": "My car is a red Volvo."},
        {"role": "assistant", "content": "Noted."},
        {"role": "user", "content": ""},
        {"role": "assistant", "content": ""},
    ]
    question = {"role": "user", "content": "What colour is my car?"}
    chat([{"role": "system", "content": "brief"}, *earlier, question])
    assert chat.history_stored == 4
    assert any("red Volvo" in m["content"] for m in prompts[-1])  # the answer could use it
    texts = [e.text for e in memory.store.scan(scope)]
    assert texts == [
        "My car is a red Volvo.",
        "Noted.",
        "(no answer)",
        "(no answer)",
        question["content"],
        "It is red.",
    ]
    for _ in range(2):
        chat(
            [
                *earlier,
                question,
                {"role": "assistant", "content": " It is red. "},
                {"role": "user", "content": "ok"},
            ]
        )
        assert chat.history_stored == 0
    texts = [e.text for e in memory.store.scan(scope)]
    assert texts.count("My car is a red Volvo.") == 1
    assert texts.count("What colour is my car?") == 1
