"""Turns as callers hand them in (``Turn`` objects or OpenAI-style message dicts, as the openai
client returns them) and the episodes they are stored as."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

from memstrata.errors import InvalidEpisode
from memstrata.rendering import TOOL_CALL_ID_KEY, TOOL_CALLS_KEY
from memstrata.schemas import Episode, EpisodeKind, Scope, Turn
from pydantic import ValidationError

__all__ = ["TurnLike", "to_turn", "turn_episode"]

TurnLike: TypeAlias = Turn | Mapping[str, Any]


_OPENAI_RESPONSE_FIELDS = ("refusal", "annotations", "audio", "function_call", "tool_calls", "name")
"""Fields of an OpenAI chat message that carry nothing when null or empty: dropped, so a message
echoed back from ``response.choices[0].message.model_dump()`` is accepted."""


def to_turn(item: TurnLike, index: int | None = None) -> Turn:
    """A :class:`Turn` from a Turn or an OpenAI-style message dict.

    Raises:
        InvalidEpisode: naming the item and the problem.
    """
    if isinstance(item, Turn):
        return item
    if not isinstance(item, Mapping):
        raise InvalidEpisode(f"expected a Turn or a message dict, got {type(item).__name__}", index=index)
    data: dict[str, Any] = dict(item)
    for key in _OPENAI_RESPONSE_FIELDS:  # as the openai client returns an assistant message
        if data.get(key) in (None, [], {}):
            data.pop(key, None)
    if data.get("content") is None and isinstance(data.get("refusal"), str):
        data["content"] = data.pop("refusal")
    if "speaker" not in data and "name" in data:
        data["speaker"] = data.pop("name")
    if data.get("content") is None and data.get("tool_calls"):
        data["content"] = ""
    calls = data.get("tool_calls")
    if isinstance(calls, list):
        data["tool_calls"] = [_flatten_call(c) for c in calls]
    try:
        return Turn.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or None
        raise InvalidEpisode(first["msg"], index=index, field=where) from exc


def _flatten_call(call: Any) -> Any:
    if isinstance(call, Mapping) and isinstance(call.get("function"), Mapping):
        return {
            "id": call.get("id"),
            "name": call["function"].get("name"),
            "arguments": call["function"].get("arguments", "{}"),
        }
    return call


def turn_episode(turn: Turn, scope: Scope) -> Episode:
    """The episode a turn is stored as (tool calls kept in reserved metadata keys)."""
    metadata = dict(turn.metadata)
    if turn.tool_calls:
        metadata[TOOL_CALLS_KEY] = [c.model_dump() for c in turn.tool_calls]
    if turn.tool_call_id:
        metadata[TOOL_CALL_ID_KEY] = turn.tool_call_id
    text = turn.content
    if not text.strip() and turn.tool_calls:
        text = "(calls " + ", ".join(c.name for c in turn.tool_calls) + ")"
    return Episode(
        scope=scope,
        kind=EpisodeKind.TURN,
        text=text,
        role=turn.role,
        speaker=turn.speaker,
        occurred_at=turn.occurred_at,
        metadata=metadata,
        idempotency_key=turn.idempotency_key,
    )
