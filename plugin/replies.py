"""What makes a reply end, and how a bad one is recognised before it is stored.

Small models loop ("The user asked when ... and the response is: The user asked when ...") and
run to their cap; a reply like that, stored as a clean answer, comes back later as a memory. So
each reply is checked: cut at its cap, or looping. Either is stored flagged, and recall discounts it.
"""

from __future__ import annotations

import re

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
