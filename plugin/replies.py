"""What makes a reply end, and how a bad one is recognised before it is stored.

Small models loop ("The user asked when ... and the response is: The user asked when ...") and
run to their cap; a reply like that, stored as a clean answer, comes back later as a memory. So
each reply is checked: cut at its cap, or looping. Either is stored flagged, and recall discounts it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from memstrata.compression import CompressionReport
from memstrata.errors import ModelError
from memstrata.ports import ChatModel, StreamingChatModel
from memstrata.schemas import ChatResult, Episode, TokenUsage, Turn, check_text
from memstrata.schemas.plan import BudgetPlan

REPLY_FLAG_KEY = "memstrata.reply"
"""Metadata key of a stored assistant turn whose reply was ``"truncated"`` or ``"looping"``."""

REPLY_STOPS: tuple[str, ...] = ("\nQuestion:", "\nNotes from", "<|im_start|>", "<|im_end|>")
"""Stop strings for every reply: the model must not write the next question or a notes block."""

_WORD = re.compile(r"\w+")


def looping(text: str, *, n: int = 4, share: float = 0.3) -> bool:
    """Whether ``share`` or more of the text's word ``n``-grams are repeats of earlier ones."""
    words = _WORD.findall(text.lower())
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    if len(grams) < 8:
        return False
    return 1 - len(set(grams)) / len(grams) >= share


def reply_quality(text: str, finish_reason: str) -> str | None:
    """``"looping"``, ``"truncated"`` (cut at the cap) or None for a clean reply."""
    if looping(text):
        return "looping"
    if finish_reason == "length":
        return "truncated"
    return None


@dataclass(frozen=True)
class Reply:
    """What :meth:`Memory.chat` returns.

    Attributes:
        text: the model's answer.
        plan: the budget plan the answer was made from.
        usage: tokens the model evaluated and generated.
        stored: the user and assistant turns as stored.
        compression: what compression did after the turn (None if it did not run).
        truncated: the reply was cut at its token cap (it does not end where the model meant it to).
    """

    text: str
    plan: BudgetPlan
    usage: TokenUsage
    stored: tuple[Episode, ...]
    compression: CompressionReport | None
    truncated: bool = False


def generate(
    model: ChatModel, plan: BudgetPlan, *, cap: int, temperature: float, streamed: bool
) -> Iterator[str | ChatResult]:
    """The reply to a plan: its text (in pieces when ``streamed`` and the model streams), then
    the :class:`ChatResult`. Every reply has the same messages, stop strings and decoding."""
    if not streamed or not isinstance(model, StreamingChatModel):
        result = model.complete(
            list(plan.messages), max_tokens=cap, temperature=temperature, stop=REPLY_STOPS
        )
        yield result.text
        yield result
        return
    pieces: list[str] = []
    for piece in model.stream(list(plan.messages), max_tokens=cap, temperature=temperature, stop=REPLY_STOPS):
        pieces.append(piece)
        yield piece
    text = "".join(pieces)
    used = model.token_counter.count(text)
    yield ChatResult(
        text=text,
        usage=TokenUsage(prompt_tokens=plan.prompt_tokens, completion_tokens=used),
        finish_reason="length" if used >= cap else "stop",
    )


def exchange_turns(
    user_text: str, result: ChatResult, asked_at: datetime, took: timedelta, key: str | None
) -> list[Turn]:
    """The two turns of an exchange: the reply dated ``took`` after the question on the
    question's clock (a replayed past question is answered in the past), flagged when bad.

    Raises:
        ModelError: the reply cannot be stored (nothing is).
    """
    try:
        check_text(result.text)
    except ValueError as exc:
        raise ModelError(f"the model's answer cannot be stored: {exc} (nothing was stored)") from None
    quality = reply_quality(result.text, result.finish_reason)
    return [
        Turn(role="user", content=user_text, occurred_at=asked_at, idempotency_key=key and f"{key}:user"),
        Turn(
            role="assistant",
            content=result.text.strip() or "(no answer)",
            occurred_at=asked_at + took,
            idempotency_key=key and f"{key}:assistant",
            metadata={REPLY_FLAG_KEY: quality} if quality else {},
        ),
    ]
