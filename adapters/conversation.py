"""Memory in front of a chat model, for adapters that receive whole message lists.

Agent frameworks and OpenAI-style clients send the conversation as a message list each time.
memstrata keeps the conversation itself, so an adapter only needs what is *new* in that list:

- :func:`split_exchange` finds it: everything after the last finished assistant answer (one without
  tool calls). The latest user message there is the query; messages after it are the tool calls
  and results of an answer in progress; messages before it (several user messages sent at once)
  are kept in order. System messages anywhere become the system prompt. Earlier messages are
  taken from memory, not from the list.
- :func:`build_prompt` asks :meth:`memstrata.Memory.context` (the one assembly path) for the
  budgeted prompt around it, with the caller's system prompt and in-flight messages.

Pure logic over a :class:`~memstrata.Memory`; no framework is imported here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from memstrata.errors import InvalidInput
from memstrata.memory import Memory
from memstrata.ports import TokenCounter
from memstrata.schemas import ChatMessage, Scope
from memstrata.schemas.plan import BudgetPlan

__all__ = ["Exchange", "Prompt", "abuild_prompt", "build_prompt", "split_exchange"]


@dataclass(frozen=True)
class Exchange:
    """A message list split the way memory uses it.

    Attributes:
        system: the caller's system prompt (every system message, joined), or None.
        query: the text of the latest user message: what memory is recalled for.
        lead: new messages before the query (other user messages sent in the same request).
        tail: messages after the query: tool calls and tool results of the answer in progress.
        new_indices: positions (in the list given to :func:`split_exchange`) of the new
            non-system messages, oldest first: what to record once the answer is final.
    """

    system: str | None
    query: str
    lead: tuple[ChatMessage, ...]
    tail: tuple[ChatMessage, ...]
    new_indices: tuple[int, ...]


@dataclass(frozen=True)
class Prompt:
    """The messages to send, and the plan behind them.

    Attributes:
        messages: system prompt, remembered context, the new messages; ready for the model.
        plan: the budget plan (what memory was recalled, what was left out).
        prompt_tokens: the final messages' count, by the measure :func:`build_prompt` was given.
        available: the tokens the prompt may use (window minus the answer's reserve).
    """

    messages: tuple[ChatMessage, ...]
    plan: BudgetPlan
    prompt_tokens: int
    available: int


def split_exchange(messages: Sequence[ChatMessage]) -> Exchange:
    """Split a conversation into what memory already knows and what is new.

    Args:
        messages: the conversation, oldest first (OpenAI roles).

    Returns:
        The exchange: system prompt, query, and the new messages around it.

    Raises:
        InvalidInput: there is no user message after the last finished assistant answer
            (nothing to answer).
    """
    system_parts = [m.content for m in messages if m.role == "system" and m.content.strip()]
    start = 0
    for index, message in enumerate(messages):
        if message.role == "assistant" and not message.tool_calls:
            start = index + 1
    new = [i for i in range(start, len(messages)) if messages[i].role != "system"]
    users = [i for i in new if messages[i].role == "user"]
    if not users:
        raise InvalidInput(
            "the messages end without a new user message (the last message must be the user's, "
            "or tool results answering the assistant's tool calls)"
        )
    last = users[-1]
    return Exchange(
        system="\n\n".join(system_parts) or None,
        query=messages[last].content,
        lead=tuple(messages[i] for i in new if i < last),
        tail=tuple(messages[i] for i in new if i > last),
        new_indices=tuple(new),
    )


def build_prompt(
    memory: Memory,
    exchange: Exchange,
    *,
    scope: Scope,
    counter: TokenCounter | None = None,
    window: int | None = None,
    reserve: int | None = None,
    measure: Callable[[Sequence[ChatMessage]], int] | None = None,
    now: datetime | None = None,
) -> Prompt:
    """The budgeted prompt for an exchange, from the one assembly path (:meth:`Memory.context`),
    with the caller's system prompt and in-flight messages.

    Args:
        memory: where the conversation and the recalled episodes come from.
        exchange: the new part of the conversation (:func:`split_exchange`).
        scope: whose memory; ``scope.session_id`` is the conversation.
        counter: the answering model's counter; default the memory's.
        window: the answering model's window; default the memory's.
        reserve: tokens kept for the answer; default the memory's planner setting.
        measure: counts the final messages as the model will see them (e.g. with tool
            definitions); default ``counter.count_prompt``.
        now: the time recall scores recency against.

    Returns:
        The prompt, never longer than ``window - reserve`` by ``measure``.

    Raises:
        PromptTooLong: the new messages do not fit even with no memory at all.
        StoreUnavailable: the store failed.
    """
    arguments = _context_arguments(exchange, scope, counter, window, reserve, measure, now)
    return _prompt(memory.context(exchange.query, **arguments))


async def abuild_prompt(
    memory: Memory,
    exchange: Exchange,
    *,
    scope: Scope,
    counter: TokenCounter | None = None,
    window: int | None = None,
    reserve: int | None = None,
    measure: Callable[[Sequence[ChatMessage]], int] | None = None,
    now: datetime | None = None,
) -> Prompt:
    """:func:`build_prompt` on ``Memory``'s async face (:meth:`Memory.acontext`): the same prompt."""
    arguments = _context_arguments(exchange, scope, counter, window, reserve, measure, now)
    return _prompt(await memory.acontext(exchange.query, **arguments))


def _context_arguments(
    exchange: Exchange,
    scope: Scope,
    counter: TokenCounter | None,
    window: int | None,
    reserve: int | None,
    measure: Callable[[Sequence[ChatMessage]], int] | None,
    now: datetime | None,
) -> dict[str, Any]:
    return {
        "scope": scope,
        "now": now,
        "reserve": reserve,
        "system": exchange.system,
        "lead": exchange.lead,
        "tail": exchange.tail,
        "counter": counter,
        "window": window,
        "measure": measure,
    }


def _prompt(plan: BudgetPlan) -> Prompt:
    return Prompt(
        messages=plan.messages, plan=plan, prompt_tokens=plan.prompt_tokens, available=plan.available
    )
