"""Which recalled episodes become notes in the prompt, and how each is shown.

Recall ranks many candidates; a small model answers best from a few. So a note must clear a
relevance floor relative to the best hit (the budget is a ceiling, not a target), and a line said
many times (a daily "remind me to buy milk") appears once, with its count and last date, instead
of crowding out the one line that answers the question.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from memstrata.rendering import render_episode, repeated_line
from memstrata.replies import REPLY_FLAG_KEY
from memstrata.schemas import EpisodeKind, RecallHit

__all__ = ["Note", "select_notes"]

_WORD = re.compile(r"\w+")
FLAGGED_REPLY_WEIGHT = 0.5
"""Weight of a flagged reply's score among the notes."""
SUMMARY_WEIGHT = 0.5
"""Weight of a summary's score among the notes: its turns are kept verbatim, and a small model
copies a summary's sentences instead of answering from the line that holds the answer."""
_SAME = 0.8
"""Word-set overlap (Jaccard) from which two lines count as one said again."""


@dataclass(frozen=True)
class Note:
    """A recalled episode as one line of the prompt.

    Attributes:
        hit: the best-ranked of the line's occurrences.
        times: how many recalled episodes said (nearly) the same thing.
        first, last: when the earliest and the latest of them were said.
    """

    hit: RecallHit
    times: int = 1
    first: datetime | None = None
    last: datetime | None = None

    @property
    def line(self) -> str:
        """The line as the prompt shows it (without the newline)."""
        if self.times > 1 and self.first is not None and self.last is not None:
            return repeated_line(self.hit.episode, times=self.times, first=self.first, last=self.last)
        return render_episode(self.hit.episode)


@dataclass(frozen=True)
class Selection:
    """The notes worth showing, best first, and what was set aside (with the reason)."""

    notes: tuple[Note, ...]
    below_floor: tuple[RecallHit, ...]
    repeats: tuple[RecallHit, ...]


def select_notes(hits: Sequence[RecallHit], *, floor: float) -> Selection:
    """Keep the hits scoring at least ``floor`` times the best score, and fold near-duplicates
    into the best-ranked of them.

    Args:
        hits: recalled episodes, best first.
        floor: share of the best hit's score a hit needs (0 keeps every hit).
    """
    if not hits:
        return Selection((), (), ())
    hits = sorted((_discounted(h) for h in hits), key=lambda h: -h.score)
    best = max(h.score for h in hits)
    kept = [h for h in hits if h.score >= floor * best]
    below = tuple(h for h in hits if h.score < floor * best)
    groups: list[list[RecallHit]] = []
    words: list[frozenset[str]] = []
    for hit in kept:
        own = frozenset(_WORD.findall(hit.episode.text.lower()))
        match = next((i for i, other in enumerate(words) if _alike(own, other)), None)
        if match is None:
            groups.append([hit])
            words.append(own)
        else:
            groups[match].append(hit)
    notes = tuple(
        Note(g[0], len(g), min(h.episode.occurred_at for h in g), max(h.episode.occurred_at for h in g))
        if len(g) > 1
        else Note(g[0])
        for g in groups
    )
    repeats = tuple(h for g in groups for h in g[1:])
    return Selection(notes, below, repeats)


def _discounted(hit: RecallHit) -> RecallHit:
    """A reply stored flagged (cut at its cap, or looping) counts for half: it may be rambling;
    so does a summary: a paraphrase of turns that recall can show verbatim."""
    weight = FLAGGED_REPLY_WEIGHT if hit.episode.metadata.get(REPLY_FLAG_KEY) else 1.0
    if hit.episode.kind is EpisodeKind.SUMMARY:
        weight *= SUMMARY_WEIGHT
    return hit if weight == 1.0 else hit.model_copy(update={"score": hit.score * weight})


def _alike(a: frozenset[str], b: frozenset[str]) -> bool:
    if a == b:
        return True
    if len(a) < 4 or len(b) < 4:
        return False
    return len(a & b) / len(a | b) >= _SAME
