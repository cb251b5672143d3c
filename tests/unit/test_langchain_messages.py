"""Conversions between LangChain messages and memstrata's, and the text tool-call format."""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import AIMessage, FunctionMessage, HumanMessage, SystemMessage, ToolMessage
from memstrata.adapters.langchain import from_chat_message, to_chat_message, to_chat_messages, to_turn
from memstrata.adapters.langchain.tool_prompt import (
    forced_tool,
    parse_tool_calls,
    render_messages,
    tool_call_schema,
    tool_instructions,
)
from memstrata.errors import InvalidInput
from memstrata.schemas import ChatMessage, ToolCall

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def test_roles_and_tool_calls_round_trip() -> None:
    messages = [
        SystemMessage("be brief"),
        HumanMessage("weather in Porto?", name="ana"),
        AIMessage("", tool_calls=[{"name": "get_weather", "args": {"city": "Porto"}, "id": "c1"}]),
        ToolMessage("sunny", tool_call_id="c1"),
        AIMessage("It is sunny in Porto."),
    ]
    chat = to_chat_messages(messages)
    assert [m.role for m in chat] == ["system", "user", "assistant", "tool", "assistant"]
    assert chat[1].name == "ana"
    assert chat[2].tool_calls == (ToolCall(id="c1", name="get_weather", arguments='{"city": "Porto"}'),)
    assert chat[3].tool_call_id == "c1"
    back = [from_chat_message(m) for m in chat]
    assert [type(m) for m in back] == [type(m) for m in messages]
    asked, answered = back[2], back[3]
    assert isinstance(asked, AIMessage) and isinstance(answered, ToolMessage)
    assert asked.tool_calls == [{"name": "get_weather", "args": {"city": "Porto"}, "id": "c1", "type": "tool_call"}]
    assert answered.tool_call_id == "c1"


def test_content_blocks_keep_their_text() -> None:
    message = HumanMessage(
        content=[
            {"type": "text", "text": "look at "},
            {"type": "image_url", "image_url": {"url": "x"}},
            "this",
        ]
    )
    assert to_chat_message(message).content == "look at this"


def test_to_turn_keys_and_placeholders() -> None:
    turn = to_turn(AIMessage("", id="m1"), idempotency_key="k1")
    assert (turn.role, turn.content, turn.idempotency_key) == ("assistant", "(no answer)", "k1")
    assert to_turn(ToolMessage("", tool_call_id="c")).content == "(empty result)"
    calls = to_turn(AIMessage("", tool_calls=[{"name": "f", "args": {}, "id": "c"}]))
    assert calls.content == "" and calls.tool_calls[0].name == "f"
    with pytest.raises(InvalidInput):
        to_turn(SystemMessage("config"))
    with pytest.raises(InvalidInput):
        to_chat_message(FunctionMessage(content="x", name="f"))


def test_render_messages_describes_tools_and_writes_calls_as_json() -> None:
    messages = [
        ChatMessage(role="system", content="be brief"),
        ChatMessage(role="user", content="weather?"),
        ChatMessage(
            role="assistant",
            content="",
            tool_calls=(ToolCall(id="c1", name="get_weather", arguments='{"city": "Porto"}'),),
        ),
        ChatMessage(role="tool", content="sunny", tool_call_id="c1"),
    ]
    rendered = render_messages(messages, [WEATHER])
    assert rendered[0].content.startswith("be brief\n\nTools you may call:")
    assert "- get_weather(city: string): Weather in a city." in rendered[0].content
    assert json.loads(rendered[2].content) == {"name": "get_weather", "arguments": {"city": "Porto"}}
    assert rendered[2].tool_calls == ()
    assert render_messages(messages[1:2], [WEATHER])[0].content == tool_instructions([WEATHER])
    assert render_messages(messages[1:2]) == messages[1:2]


def test_parse_tool_calls() -> None:
    text = 'Sure.\n```json\n{"name": "get_weather", "arguments": {"city": "Lisbon"}}\n```'
    rest, calls = parse_tool_calls(text, ["get_weather"])
    assert rest == "Sure."
    assert [(c["name"], c["args"]) for c in calls] == [("get_weather", {"city": "Lisbon"})]
    assert calls[0]["id"].startswith("call_")
    assert parse_tool_calls('{"name": "other", "arguments": {}}', ["get_weather"]) == (
        '{"name": "other", "arguments": {}}',
        [],
    )
    assert parse_tool_calls("no { json here", ["get_weather"]) == ("no { json here", [])
    _, calls = parse_tool_calls(
        '{"name": "get_weather", "parameters": "{\\"city\\": \\"Rome\\"}"}', ["get_weather"]
    )
    assert calls[0]["args"] == {"city": "Rome"}


def test_forced_tool_and_schema() -> None:
    assert forced_tool("auto", [WEATHER]) is False
    assert forced_tool(None, [WEATHER]) is False
    assert forced_tool("any", []) is False
    assert forced_tool("required", [WEATHER]) is True
    assert forced_tool("get_weather", [WEATHER]) == "get_weather"
    assert forced_tool({"type": "function", "function": {"name": "get_weather"}}, [WEATHER]) == "get_weather"
    schema = tool_call_schema([WEATHER], "get_weather")
    assert schema["properties"]["name"]["enum"] == ["get_weather"]
    assert schema["properties"]["arguments"]["required"] == ["city"]
    # "any" with one tool is a call to that tool, arguments and all.
    assert tool_call_schema([WEATHER], True) == schema
    no_args = {"type": "function", "function": {"name": "ping", "parameters": {"type": "object", "properties": {}}}}
    both = tool_call_schema([WEATHER, no_args], True)["anyOf"]
    assert [v["properties"]["name"]["enum"] for v in both] == [["get_weather"], ["ping"]]
    assert both[1]["properties"]["arguments"] == {"type": "object", "properties": {}}
    # Large bounds are left to the tool: llama.cpp's grammar for maxLength 4000 crashed the process.
    note = {
        "type": "function",
        "function": {
            "name": "note",
            "parameters": {
                "type": "object",
                "properties": {
                    "text": {"type": "string", "minLength": 1, "maxLength": 4000},
                    "tags": {"type": "array", "items": {"type": "string", "maxLength": 20}, "maxItems": 500},
                    "k": {"type": "integer", "minimum": 1, "maximum": 3, "default": 2},
                    "n": {"type": "integer", "minimum": 0, "maximum": 1000},
                },
            },
        },
    }
    arguments = tool_call_schema([note], "note")["properties"]["arguments"]["properties"]
    assert arguments["text"] == {"type": "string", "minLength": 1}
    assert arguments["tags"] == {"type": "array", "items": {"type": "string", "maxLength": 20}}
    # The grammar ignores minimum/maximum: a small integer range becomes an enum.
    assert arguments["k"] == {"default": 2, "enum": [1, 2, 3]}
    assert arguments["n"] == {"type": "integer", "minimum": 0, "maximum": 1000}
