"""The planner's working state: section allotments (water-filling), tool-call units, and the draft
a plan is filled into and trimmed from. Pure data and arithmetic; see :mod:`memstrata.planner`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from memstrata.rendering import TOOL_CALL_ID_KEY, TOOL_CALLS_KEY
from memstrata.schemas import Episode, RecallHit
from memstrata.schemas.plan import Omission

__all__ = ["Draft", "tool_groups", "waterfill"]


def waterfill(budget: int, demand: dict[str, int], shares: dict[str, float]) -> dict[str, int]:
    """Split ``budget`` by ``shares``; sections needing less than their part give the rest away.

    Returns allotments that never exceed a section's demand unless every demand is met, and sum
    to at most ``budget``.
    """
    allot = {name: 0 for name in demand}
    active = {n for n in demand if demand[n] > 0 and shares.get(n, 0) > 0}
    left = budget
    while active and left > 0:
        total = sum(shares[n] for n in active)
        portions = {n: left * shares[n] / total for n in active}
        satisfied = {n for n in active if demand[n] - allot[n] <= portions[n]}
        if not satisfied:
            for n in active:
                allot[n] += int(portions[n])
            break
        for n in satisfied:
            left -= demand[n] - allot[n]
            allot[n] = demand[n]
        active -= satisfied
    return allot


@dataclass
class Draft:
    """A plan being filled: what each section holds so far, and what was left out."""

    summaries: list[Episode] = field(default_factory=list)
    recalled: list[RecallHit] = field(default_factory=list)
    recent_groups: list[list[Episode]] = field(default_factory=list)  # newest group first
    left_out: list[Omission] = field(default_factory=list)
    allotted: dict[str, int] = field(default_factory=dict)
    groups: set[str] = field(default_factory=set)
    # Per-plan memos: rendering a line (quoting, dates) costs more than looking its count up.
    line_costs: dict[uuid.UUID, int] = field(default_factory=dict)

    def recent(self) -> list[Episode]:
        return [e for group in reversed(self.recent_groups) for e in group]

    def drop_one(self) -> str | None:
        """Drop the lowest-priority item: recalled by rank, then the oldest recent group, then the
        last summary. Returns the section dropped from, or None when all are empty."""
        if self.recalled:
            hit = self.recalled.pop()
            self.left_out.append(
                Omission(
                    section="recalled",
                    reason="did not fit after exact counting",
                    tokens=0,
                    episode_id=hit.episode.id,
                )
            )
            return "recalled"
        if self.recent_groups:
            group = self.recent_groups.pop()
            self.left_out += [
                Omission(
                    section="recent", reason="did not fit after exact counting", tokens=0, episode_id=e.id
                )
                for e in group
            ]
            return "recent"
        if self.summaries:
            e = self.summaries.pop()
            self.left_out.append(
                Omission(
                    section="summary", reason="did not fit after exact counting", tokens=0, episode_id=e.id
                )
            )
            return "summary"
        return None


def tool_groups(turns: list[Episode]) -> tuple[list[list[Episode]], list[Episode]]:
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
