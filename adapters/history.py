"""History a client sends that memory never stored: stored before answering, never twice.

OpenAI-style clients send the whole conversation each time; memstrata answers from what it
stored. A chatbot moved onto memstrata mid-conversation (or one that talked to another backend
for a while) sends turns the session never saw. The rule, applied by ``memstrata serve`` and
:func:`~memstrata.adapters.openai_pipeline.with_memory` before the prompt is built:

- the *history* is every non-system message before the new part of the request (the new part is
  what :func:`~memstrata.adapters.conversation.split_exchange` finds, recorded after the answer);
- the history is known if it appears whole among the session's latest stored turns (role and
  text, surrounding spaces ignored; a request resent late); otherwise its longest start that
  equals the end of the session's stored turns is known, and the rest of the history is stored,
  in order, now, so the answer can already use it;
- each turn stored this way carries an idempotency key made of the session, its position in the
  history and a hash of the history up to it: resending the same history (or two identical
  requests at once) stores nothing twice.

A client that sends only its latest message has no history and stores none. A client that sends
a sliding window of its last messages matches the end of the session and stores nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from memstrata import port_calls
from memstrata.memory import Memory
from memstrata.port_calls import Plan
from memstrata.schemas import ChatMessage, Episode, EpisodeKind, Scope
from memstrata.turns import to_turn, turn_episode

__all__ = ["aremember_history", "remember_history", "remember_history_calls", "stored_turn", "unknown_start"]

_KEY_PREFIX = "history"
_RESEND_SLACK = 64
"""Stored turns read beyond the history's length: a request resent after up to 32 later
exchanges of the session still finds its history stored."""


def stored_turn(message: ChatMessage) -> dict[str, Any]:
    """The turn a message is stored as (an empty text becomes "(no answer)" / "(empty result)":
    episodes need text)."""
    content = message.content
    if not content.strip() and not message.tool_calls:
        content = "(empty result)" if message.role == "tool" else "(no answer)"
    return {
        "role": message.role,
        "content": content,
        "tool_calls": [c.model_dump() for c in message.tool_calls],
        "tool_call_id": message.tool_call_id,
        "speaker": message.name,
    }


def _identity(message: ChatMessage, scope: Scope) -> tuple[str, str]:
    episode = turn_episode(to_turn(stored_turn(message)), scope)
    return str(episode.role), episode.text.strip()


def unknown_start(history: Sequence[tuple[str, str]], stored: Sequence[tuple[str, str]]) -> int:
    """How many leading items of ``history`` are known: ``len(history)`` if the whole history is
    a run of ``stored``, else the largest ``m`` with ``history[:m] == stored[-m:]`` (0 if none)."""
    n, wanted = len(history), list(history)
    for j in range(len(stored) - n, -1, -1):  # the whole history, latest occurrence first
        if stored[j] == wanted[0] and list(stored[j : j + n]) == wanted:
            return n
    for m in range(min(n, len(stored)), 0, -1):
        if wanted[:m] == list(stored[len(stored) - m :]):
            return m
    return 0


def _keys(identities: Sequence[tuple[str, str]], session: str) -> list[str]:
    chain = hashlib.sha256(session.encode("utf-8", "surrogatepass"))
    keys = []
    for position, (role, text) in enumerate(identities):
        chain.update(b"\x00" + role.encode() + b"\x00" + text.encode("utf-8", "surrogatepass"))
        keys.append(f"{_KEY_PREFIX}:{session}:{position}:{chain.copy().hexdigest()[:32]}")
    return keys


def remember_history(
    memory: Memory, messages: Sequence[ChatMessage], new_indices: Sequence[int], *, scope: Scope
) -> int:
    """Store the history turns of ``messages`` the session has not stored (see the module doc).

    Args:
        memory: the memory to read and write.
        messages: the request's conversation, oldest first.
        new_indices: the positions of the new part (``Exchange.new_indices``).
        scope: whose memory; ``scope.session_id`` is the conversation.

    Returns:
        How many history turns the session lacked, stored now (0 when it knew them all); a
        concurrent identical request may have stored them first, never twice.

    Raises:
        InvalidEpisode: a history message cannot be stored (nothing is stored).
        StoreUnavailable: the store failed (nothing is stored).
    """
    return memory.run_calls(remember_history_calls(memory, messages, new_indices, scope=scope))


async def aremember_history(
    memory: Memory, messages: Sequence[ChatMessage], new_indices: Sequence[int], *, scope: Scope
) -> int:
    """:func:`remember_history` on ``Memory``'s async face."""
    return await memory.arun_calls(remember_history_calls(memory, messages, new_indices, scope=scope))


def remember_history_calls(
    memory: Memory, messages: Sequence[ChatMessage], new_indices: Sequence[int], *, scope: Scope
) -> Plan[int]:
    """:func:`remember_history` as a plan of port calls (:mod:`memstrata.port_calls`)."""
    first_new = new_indices[0] if new_indices else len(messages)
    history = [m for m in messages[:first_new] if m.role != "system"]
    if not history:
        return 0
    identities = [_identity(m, scope) for m in history]
    latest: list[Episode] = yield port_calls.store(
        "scan",
        scope,
        kinds=(EpisodeKind.TURN,),
        session_id=scope.session_id,
        order="newest",
        limit=len(history) + _RESEND_SLACK,
    )
    known = unknown_start(identities, [(str(e.role), e.text.strip()) for e in reversed(latest)])
    if known == len(history):
        return 0
    keys = _keys(identities, scope.session_id)
    turns = [{**stored_turn(history[i]), "idempotency_key": keys[i]} for i in range(known, len(history))]
    yield from memory.add_calls(turns, scope)
    return len(turns)
