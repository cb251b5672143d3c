"""Conversions between LangChain messages and memstrata's :class:`ChatMessage` / :class:`Turn`.

Roles map one to one: ``HumanMessage`` <-> ``user``, ``AIMessage`` <-> ``assistant`` (tool calls
kept, arguments as JSON text), ``ToolMessage`` <-> ``tool`` (with its ``tool_call_id``),
``SystemMessage`` <-> ``system``. Content given as blocks keeps its text blocks only (images and
other blocks are dropped: memstrata stores text).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.messages import ChatMessage as LangChainChatMessage
from langchain_core.messages.tool import ToolCall as LangChainToolCall
from memstrata.errors import InvalidInput
from memstrata.schemas import ChatMessage, Role, ToolCall, Turn

__all__ = [
    "from_chat_message",
    "from_chat_messages",
    "message_text",
    "to_chat_message",
    "to_chat_messages",
    "to_turn",
]

_ROLES: dict[str, Role] = {
    "human": "user",
    "user": "user",
    "ai": "assistant",
    "assistant": "assistant",
    "tool": "tool",
    "system": "system",
    "developer": "system",
}


def message_text(message: BaseMessage) -> str:
    """The message's text (text blocks joined; other content blocks dropped)."""
    return str(message.text)


def _role(message: BaseMessage) -> Role:
    kind = message.role if isinstance(message, LangChainChatMessage) else message.type
    role = _ROLES.get(kind)
    if role is None:
        raise InvalidInput(f"memstrata cannot store a {type(message).__name__} of type {kind!r}")
    return role


def _tool_calls(message: BaseMessage) -> tuple[ToolCall, ...]:
    if not isinstance(message, AIMessage):
        return ()
    return tuple(
        ToolCall(
            id=call.get("id") or f"call_{index}",
            name=call["name"],
            arguments=json.dumps(call.get("args") or {}, ensure_ascii=False),
        )
        for index, call in enumerate(message.tool_calls)
    )


def to_chat_message(message: BaseMessage) -> ChatMessage:
    """A LangChain message as a memstrata chat message.

    Raises:
        InvalidInput: a message type memstrata has no role for (e.g. a ``FunctionMessage``).
    """
    role = _role(message)
    return ChatMessage(
        role=role,
        content=message_text(message),
        name=message.name or None,
        tool_calls=_tool_calls(message),
        tool_call_id=message.tool_call_id if isinstance(message, ToolMessage) else None,
    )


def to_chat_messages(messages: Sequence[BaseMessage]) -> list[ChatMessage]:
    """:func:`to_chat_message` over a list."""
    return [to_chat_message(m) for m in messages]


def _arguments(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError:
        return {"input": text}
    return value if isinstance(value, dict) else {"input": value}


def from_chat_message(message: ChatMessage) -> BaseMessage:
    """A memstrata chat message as the LangChain message of its role."""
    if message.role == "system":
        return SystemMessage(content=message.content)
    if message.role == "user":
        return HumanMessage(content=message.content, name=message.name)
    if message.role == "tool":
        return ToolMessage(content=message.content, tool_call_id=message.tool_call_id or "")
    calls = [
        LangChainToolCall(name=c.name, args=_arguments(c.arguments), id=c.id, type="tool_call")
        for c in message.tool_calls
    ]
    return AIMessage(content=message.content, tool_calls=calls, name=message.name)


def from_chat_messages(messages: Sequence[ChatMessage]) -> list[BaseMessage]:
    """:func:`from_chat_message` over a list."""
    return [from_chat_message(m) for m in messages]


def to_turn(message: BaseMessage, *, idempotency_key: str | None = None) -> Turn:
    """A LangChain message as a turn to store (system messages are not turns).

    An empty answer is stored as ``(no answer)`` and an empty tool result as ``(empty result)``,
    because stored episodes need text.

    Raises:
        InvalidInput: a system message, or a message type memstrata has no role for.
    """
    chat = to_chat_message(message)
    if chat.role == "system":
        raise InvalidInput("system messages are configuration, not turns: they are not stored")
    content = chat.content
    if not content.strip() and not chat.tool_calls:
        content = "(empty result)" if chat.role == "tool" else "(no answer)"
    return Turn(
        role=chat.role,
        content=content,
        speaker=chat.name,
        tool_calls=chat.tool_calls,
        tool_call_id=chat.tool_call_id,
        idempotency_key=idempotency_key,
    )
