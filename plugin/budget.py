"""How each section of the memory budget is filled, by its own priority: recent turns newest
first (older ones leaving in chunks), notes by relevance, summaries in stack order. Pure data and
arithmetic; the planner (:mod:`memstrata.planner`) decides the rooms, counts and renders.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from memstrata.notes import Note, select_notes
from memstrata.rendering import TOOL_CALL_ID_KEY, TOOL_CALLS_KEY
from memstrata.schemas import Episode, RecallHit
from memstrata.schemas.config import BudgetShares
from memstrata.schemas.plan import Omission, SectionName

__all__ = ["Draft", "Rooms", "fresh_notes", "tool_groups"]


@dataclass(frozen=True)
class Rooms:
    """The memory budget's split, which never looks at the query: the summaries get their share;
    the recent turns what is left once the recalled share is set aside (all of it when nothing is
    recalled); the notes whatever the two leave."""

    budget: int
    shares: BudgetShares

    def _part(self, share: float) -> int:
        s = self.shares
        return int(self.budget * share / (s.summary + s.recalled + s.recent))

    @property
    def summary(self) -> int:
        return self._part(self.shares.summary)

    def recent(self, summary_used: int, *, recalled: bool) -> int:
        if self.shares.recent <= 0:
            return 0
        set_aside = self._part(self.shares.recalled) if recalled else 0
        return max(0, self.budget - summary_used - set_aside)


def tool_groups(turns: Sequence[Episode]) -> tuple[list[list[Episode]], list[Episode]]:
    """Group turns so that an assistant's tool calls and their results stay together.

    Returns the groups (oldest first) and orphaned tool results whose call is not in ``turns``.
    """
    groups: list[list[Episode]] = []
    orphans: list[Episode] = []
    open_calls: dict[str, list[Episode]] = {}
    for e in turns:
        call_id = e.metadata.get(TOOL_CALL_ID_KEY)
        if e.role == "tool" and isinstance(call_id, str):
            group = open_calls.get(call_id)
            if group is None:
                orphans.append(e)
            else:
                group.append(e)
            continue
        group = [e]
        groups.append(group)
        calls = e.metadata.get(TOOL_CALLS_KEY)
        if isinstance(calls, list):
            for c in calls:
                if isinstance(c, dict) and isinstance(c.get("id"), str):
                    open_calls[c["id"]] = group
    return groups, orphans


@dataclass
class Draft:
    """A plan being filled: what each section holds so far, and what was left out.

    ``recent_groups`` is the newest run of the conversation's groups, oldest first; ``skipped``
    counts the older groups left out ahead of it (a multiple of the chunk while the run fits).
    """

    summaries: list[Episode] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)  # best first
    recent_groups: list[list[Episode]] = field(default_factory=list)
    left_out: list[Omission] = field(default_factory=list)
    allotted: dict[str, int] = field(default_factory=dict)

    def recent(self) -> list[Episode]:
        return [e for group in self.recent_groups for e in group]

    def omit(self, section: SectionName, reason: str, episodes: Sequence[Episode], tokens: int = 0) -> None:
        """Record ``episodes`` as left out of ``section`` (``tokens`` on the first only)."""
        self.left_out += [
            Omission(section=section, reason=reason, tokens=tokens if i == 0 else 0, episode_id=e.id)
            for i, e in enumerate(episodes)
        ]

    def drop_one(self) -> str | None:
        """Drop the lowest-priority item: the least relevant note, then the oldest recent group,
        then the oldest summary. Returns the section dropped from, or None when all are empty."""
        reason = "did not fit after exact counting"
        if self.notes:
            self.omit("recalled", reason, [self.notes.pop().hit.episode])
            return "recalled"
        if self.recent_groups:
            self.omit("recent", reason, self.recent_groups.pop(0))
            return "recent"
        if self.summaries:
            self.omit("summary", reason, [self.summaries.pop(0)])
            return "summary"
        return None


def recent_window(recent: Sequence[Episode], limit: int, chunk: int) -> list[Episode]:
    """The newest ``limit`` turns at most, the older ones leaving ``chunk`` at a time so the
    window's first turn stays put between chunks (0 means no recent turns)."""
    if not limit:
        return []
    over = max(0, len(recent) - limit)
    start = min(len(recent), -(-over // chunk) * chunk) if over else 0
    return list(recent[start:])


def take_recent(
    draft: Draft, groups: Sequence[list[Episode]], costs: Sequence[int], room: int, *, chunk: int
) -> int:
    """Fill the recent section with the newest groups that fit ``room``; when older ones must go,
    they go in runs of ``chunk`` groups counted from the oldest, so the section's first message
    (and the prompt prefix before it) stays put for ``chunk`` turns. Returns the tokens used."""
    newest, used = 0, 0
    for cost in reversed(costs):
        if used + cost > room:
            break
        newest += 1
        used += cost
    skipped = len(groups) - newest
    if skipped and chunk > 1:
        skipped = min(len(groups), -(-skipped // chunk) * chunk)
    kept = list(groups[skipped:])
    draft.recent_groups = kept
    for group, cost in zip(groups[:skipped], costs[:skipped], strict=True):
        draft.omit("recent", "older than what fits the recent share", group[:1], cost)
    return sum(costs[skipped:])


def take_notes(
    draft: Draft, notes: Sequence[Note], room: int, cost: Callable[[Note], int], shown: set[str]
) -> int:
    """Add notes by relevance while they fit ``room`` (a note the recent turns already show is
    left out). Returns the tokens used."""
    used = 0
    chosen = {id(n) for n in draft.notes}
    for note in notes:
        if id(note) in chosen:
            continue
        e = note.hit.episode
        if str(e.id) in shown or e.text in shown:
            draft.omit("recalled", "already in the recent turns", [e])
            chosen.add(id(note))
            continue
        price = cost(note)
        if used + price <= room:
            draft.notes.append(note)
            chosen.add(id(note))
            used += price
    order = {id(n): i for i, n in enumerate(notes)}
    draft.notes.sort(key=lambda n: order[id(n)])
    return used


def take_summaries(
    draft: Draft, summaries: Sequence[Episode], room: int, cost: Callable[[Episode], int]
) -> int:
    """Add summaries newest first while they fit ``room`` (the newest continues the recent turns;
    older periods are also reachable through recall), kept in stack order. Returns the tokens used."""
    used = 0
    have = {e.id for e in draft.summaries}
    for e in reversed(summaries):
        if e.id in have:
            continue
        price = cost(e)
        if used + price <= room:
            draft.summaries.append(e)
            have.add(e.id)
            used += price
    order = {e.id: i for i, e in enumerate(summaries)}
    draft.summaries.sort(key=lambda e: order[e.id])
    return used


def omit_unplaced(
    draft: Draft, notes: Sequence[Note], summaries: Sequence[Episode], cost: Callable[[Note], int]
) -> None:
    """Record the notes and summaries that found no room."""
    placed = {id(n) for n in draft.notes}
    handled = {o.episode_id for o in draft.left_out}
    for note in notes:
        e = note.hit.episode
        if id(note) not in placed and e.id not in handled:
            draft.omit("recalled", "did not fit the memory budget", [e], cost(note))
    have = {e.id for e in draft.summaries}
    draft.omit("summary", "did not fit the memory budget", [e for e in summaries if e.id not in have])


def recent_ids(draft: Draft) -> set[uuid.UUID]:
    return {e.id for e in draft.recent()}


def fresh_notes(draft: Draft, recalled: Sequence[RecallHit], *, floor: float) -> list[Note]:
    """The recalled hits worth a line: not a summary or a recent turn the draft already shows,
    above the relevance floor, one per repeated line (best first)."""
    in_summary = {e.id for e in draft.summaries}
    recent = draft.recent()
    in_recent = {e.id for e in recent} | {e.text for e in recent}
    seen: set[object] = set()
    fresh: list[RecallHit] = []
    for hit in recalled:
        if hit.episode.id in in_summary:
            draft.omit("recalled", "already in the summary section", [hit.episode])
        elif hit.episode.id in in_recent or hit.episode.text in in_recent:
            draft.omit("recalled", "already in the recent turns", [hit.episode])
        elif hit.episode.id not in seen:
            seen.add(hit.episode.id)
            fresh.append(hit)
    chosen = select_notes(fresh, floor=floor)
    draft.omit("recalled", "below the relevance floor", [h.episode for h in chosen.below_floor])
    draft.omit("recalled", "said again: shown once with its count", [h.episode for h in chosen.repeats])
    return list(chosen.notes)
