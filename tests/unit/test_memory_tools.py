"""The framework-free memory tools: JSON schemas, argument checks, and a scope no argument can change."""

from __future__ import annotations

import json
import re

import pytest
from memstrata import Memory, MemoryConfig, Scope
from memstrata.errors import InvalidInput
from memstrata.memory_tools import SAVED_KEY, MemoryTool, memory_tools
from memstrata.testing import HashingEmbedder, InMemoryEpisodeStore, WordTokenCounter

ALICE = Scope(user_id="alice", session_id="monday")
BOB = Scope(user_id="bob", session_id="monday")


def make_memory() -> Memory:
    return Memory(
        InMemoryEpisodeStore(64),
        HashingEmbedder(64),
        token_counter=WordTokenCounter(),
        config=MemoryConfig(context_window=2000),
    )


def by_name(tools: list[MemoryTool]) -> dict[str, MemoryTool]:
    return {t.name: t for t in tools}


def test_default_tools_are_search_and_save_with_json_schemas() -> None:
    tools = memory_tools(make_memory(), scope=ALICE)
    assert [t.name for t in tools] == ["search_memory", "save_memory"]
    search = tools[0].openai_tool()
    assert search["type"] == "function"
    parameters = search["function"]["parameters"]
    assert parameters["required"] == ["query"]
    assert set(parameters["properties"]) == {"query", "k"}
    assert parameters["additionalProperties"] is False
    # No tool takes a user, agent or session: the scope is bound, never an argument.
    every = memory_tools(
        make_memory(), scope=ALICE, tools=["search_memory", "save_memory", "recent_memory", "forget_memory"]
    )
    for tool in every:
        assert not set(tool.parameters["properties"]) & {"user_id", "user", "scope", "agent_id", "session_id"}
    json.dumps([t.openai_tool() for t in every])  # plain JSON, for any framework


def test_saved_fact_is_found_again_in_a_later_session() -> None:
    memory = make_memory()
    saved = by_name(memory_tools(memory, scope=ALICE))["save_memory"](
        text="Alice's cabin wifi password is maple-7731."
    )
    assert re.fullmatch(r"Saved memory [0-9a-f-]{36}\.", saved)
    stored = memory.recent(scope=ALICE)
    assert stored[-1].metadata[SAVED_KEY] == "save_memory"

    later = Scope(user_id="alice", session_id="friday")
    found = by_name(memory_tools(memory, scope=later))["search_memory"].call(
        '{"query": "cabin wifi password"}'
    )
    assert "maple-7731" in found
    assert saved.removeprefix("Saved memory ").rstrip(".") in found  # the id, for forget_memory


def test_another_users_tools_never_see_the_fact_nor_forget_it() -> None:
    memory = make_memory()
    alice = by_name(
        memory_tools(memory, scope=ALICE, tools=["search_memory", "save_memory", "forget_memory"])
    )
    alice["save_memory"](text="Alice's cabin wifi password is maple-7731.")
    fact_id = memory.recent(scope=ALICE)[-1].id

    bob = by_name(memory_tools(memory, scope=BOB, tools=["search_memory", "forget_memory"]))
    assert "maple" not in bob["search_memory"](query="cabin wifi password maple-7731")
    # Arguments naming another user are refused, not obeyed.
    with pytest.raises(InvalidInput, match="user_id"):
        bob["search_memory"].call({"query": "wifi", "user_id": "alice"})
    # Bob's forget with Alice's id deletes nothing.
    assert bob["forget_memory"](ids=[str(fact_id)]) == "Forgot 0 memories."
    assert "maple-7731" in alice["search_memory"](query="cabin wifi password")

    assert alice["forget_memory"](ids=[str(fact_id)]) == "Forgot 1 memory."
    assert alice["search_memory"](query="cabin wifi password") == "No memories match."


def test_forget_is_only_built_when_named() -> None:
    assert "forget_memory" not in by_name(memory_tools(make_memory(), scope=ALICE))
    with pytest.raises(InvalidInput, match="unknown memory tools"):
        memory_tools(make_memory(), scope=ALICE, tools=["drop_everything"])  # type: ignore[list-item]  # the bad value under test


@pytest.mark.parametrize(
    ("name", "arguments", "problem"),
    [
        ("search_memory", "{not json", "not JSON"),
        ("search_memory", "[1, 2]", "JSON object"),
        ("search_memory", {"query": ""}, "query"),
        ("search_memory", {"query": "x", "k": 0}, "k"),
        ("save_memory", {}, "text"),
        ("forget_memory", {"ids": ["not-a-uuid"]}, "ids"),
        ("forget_memory", {"ids": []}, "ids"),
        ("recent_memory", {"limit": 1000}, "limit"),
    ],
)
def test_bad_arguments_are_a_typed_error_and_change_nothing(
    name: str, arguments: dict[str, object] | str, problem: str
) -> None:
    memory = make_memory()
    every = by_name(
        memory_tools(
            memory, scope=ALICE, tools=["search_memory", "save_memory", "recent_memory", "forget_memory"]
        )
    )
    every["save_memory"](text="Something to keep.")
    with pytest.raises(InvalidInput, match=problem):
        every[name].call(arguments)
    assert [e.text for e in memory.recent(scope=ALICE)] == ["Something to keep."]


def test_recent_lists_the_sessions_latest_turns() -> None:
    memory = make_memory()
    memory.add(
        [{"role": "user", "content": "first"}, {"role": "assistant", "content": "second"}], scope=ALICE
    )
    recent = by_name(memory_tools(memory, scope=ALICE, tools=["recent_memory"]))["recent_memory"]
    lines = recent(limit=1).splitlines()
    assert len(lines) == 1 and lines[0].endswith("assistant: second")
    assert (
        by_name(memory_tools(memory, scope=BOB, tools=["recent_memory"]))["recent_memory"]()
        == "No turns yet."
    )
