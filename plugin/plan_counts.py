"""What the planner counts: a cache of text counts shared across plans, and how the exact prompt
count is split into sections. See :mod:`memstrata.planner`."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from memstrata.caches import make_room
from memstrata.plan_draft import Draft
from memstrata.ports import TokenCounter
from memstrata.rendering import (
    episode_message,
    group_header,
    query_message,
    render_episode,
    render_memory_block,
)
from memstrata.schemas import ChatMessage, Episode

__all__ = ["PromptCounts", "TextCounts", "group_line", "memory_line", "section_tokens", "summaries_prompt"]


def memory_line(episode: Episode) -> str:
    """An episode's memory line as the prompt holds it (newline included: the exact llama.cpp
    counter caches the same string when it counts the prompt)."""
    return render_episode(episode) + "\n"


def group_line(episode: Episode) -> str:
    """The date-and-session header line of an episode's group, newline included."""
    return group_header(episode) + "\n"


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


def summaries_prompt(system: ChatMessage, query: str, summaries: Sequence[Episode]) -> list[ChatMessage]:
    """The system prompt, the summaries alone and the query: what the summary section is counted on."""
    return [system, query_message(query, render_memory_block(summaries, []))]


def section_tokens(
    counter: TokenCounter | PromptCounts,
    system: ChatMessage,
    query: str,
    *,
    base: int,
    total: int,
    system_tokens: int,
    draft: Draft,
) -> dict[str, int]:
    """Each section's share of the exact ``total``, by the tokens it adds to the prompt.

    Only the summary and recent sections are counted on prompts of their own (each is the
    system prompt, that section, and the query: short); the recalled section, the largest, is
    what remains of the total, so the sections always add up to exactly what is sent and the
    whole prompt is tokenized once. (Counting every prefix of the full prompt cost three more
    full tokenizations per plan: about 20 ms of a 30 ms context-assembly budget.)
    """
    summary = 0
    if draft.summaries:
        summary = counter.count_prompt(summaries_prompt(system, query, draft.summaries)) - base
    recent = 0
    if draft.recent_groups:
        only_recent = [system, *(episode_message(e) for e in draft.recent()), query_message(query, "")]
        recent = counter.count_prompt(only_recent) - base
    recalled = total - base - summary - recent
    if not draft.recalled:  # nothing recalled: what the others share with the block is theirs
        if draft.summaries:
            summary += recalled
        else:
            recent += recalled
        recalled = 0
    return {
        "system": system_tokens,
        "query": base - system_tokens,
        "summary": summary,
        "recalled": recalled,
        "recent": recent,
    }
