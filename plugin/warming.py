"""Warming a model's prompt cache for the next turn, in the user's pause.

llama.cpp evaluates only what follows the longest prefix a prompt shares with the one before. The
next turn's prompt starts like this one up to this turn's user message: that message was sent with
its notes and comes back plain, followed by the reply. A fold changes more (the summaries in the
system message, and the recent turns, which lose the folded ones). After each turn's background
compression, the next prompt's start is planned here, by the one planner, and handed to a model that
can evaluate it ahead of the turn (:class:`~memstrata.ports.PrefixCachingChatModel`), so the turn
evaluates only its new message and the notes recalled for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from memstrata.ports import PrefixCachingChatModel
from memstrata.schemas import ChatMessage, Scope

if TYPE_CHECKING:
    from memstrata.memory import Memory

__all__ = ["next_prefix", "warm_next_turn"]


def next_prefix(memory: Memory, *, scope: Scope) -> list[ChatMessage]:
    """The messages ``scope``'s next turn will likely start with, before its question: the system
    message with the summaries, then the recent turns.

    Planned by :meth:`Memory.context` for the latest user message, so recall takes its share of the
    budget as it will in the next turn (what it finds goes in the question's message, left off here).
    """
    latest = next((e.text for e in reversed(memory.recent(scope=scope)) if e.role == "user"), "")
    if not latest.strip():
        return list(memory.planner.plan(memory.planner.frame("")).messages[:-1])
    return list(memory.context(latest, scope=scope).messages[:-1])


def warm_next_turn(memory: Memory, scope: Scope) -> int:
    """Hand ``memory``'s model the start of ``scope``'s next prompt, if it keeps a prompt cache and
    ``CompressionConfig.warm`` is on; returns the tokens it evaluated.

    Raises:
        ModelError: the model failed (only speed is lost).
    """
    model = memory.model
    if not memory.config.compression.warm or not isinstance(model, PrefixCachingChatModel):
        return 0
    return model.warm(next_prefix(memory, scope=scope))
