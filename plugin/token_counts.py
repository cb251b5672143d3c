"""What the planner counts with: token counts of texts kept across plans, and exact prompt counts of
the last few prompts (so a plan's fixed parts can be counted ahead, while recall runs)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from memstrata.caches import make_room
from memstrata.ports import TokenCounter
from memstrata.schemas import ChatMessage

__all__ = ["PromptCounts", "TextCounts"]


class TextCounts:
    """Token counts of texts, kept across plans (the oldest half is dropped when full).

    Args:
        counter: the model's counter.
        max_entries: texts kept.
    """

    def __init__(self, counter: TokenCounter, *, max_entries: int = 16_384) -> None:
        self._counter = counter
        self._max_entries = max_entries
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()  # one planner serves concurrent requests (memstrata serve)

    def count(self, text: str) -> int:
        """Tokens of ``text`` (counted once)."""
        cached = self._counts.get(text)
        if cached is None:
            cached = self._counter.count(text)
            with self._lock:
                make_room(self._counts, 1, self._max_entries)
                self._counts[text] = cached
        return cached

    def count_all(self, texts: Sequence[str]) -> None:
        """Count the texts not cached yet in one call to the counter (one tokenizer call for a
        llama.cpp counter, instead of ~0.1 ms of fixed cost per text)."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._counts]
        if not missing:
            return
        counted = self._counter.count_many(missing)
        with self._lock:
            make_room(self._counts, len(missing), self._max_entries)
            self._counts.update(zip(missing, counted, strict=True))


class PromptCounts:
    """Exact prompt counts (``counter.count_prompt``) of the last few prompts counted.

    What lets a plan's fixed parts be counted ahead (:meth:`memstrata.planner.TokenBudgetPlanner.prepare`,
    while recall runs) and found here by the plan. Keyed by the messages themselves (frozen).
    """

    def __init__(self, counter: TokenCounter, *, max_entries: int = 256) -> None:
        self._counter = counter
        self._max_entries = max_entries
        self._counts: dict[tuple[ChatMessage, ...], int] = {}

    def count_prompt(self, messages: Sequence[ChatMessage]) -> int:
        key = tuple(messages)
        cached = self._counts.get(key)
        if cached is None:
            cached = self._counter.count_prompt(messages)
            if len(self._counts) >= self._max_entries:
                self._counts.clear()
            self._counts[key] = cached
        return cached
