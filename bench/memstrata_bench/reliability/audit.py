"""Audits of what one scope holds after crashes or concurrent writers.

Pure functions over the episodes ``store.scan(scope)`` returns (one user and agent, in write
order), so they are tested without a database. The lineage rules are those of
:mod:`memstrata.compression`:

- a level-1 summary covers turns; a level-n summary covers summaries of level n-1;
- each covered episode is stored in the same user and agent and marked ``superseded_by`` that
  summary; nothing is marked superseded by an episode that does not cover it;
- a fold takes the oldest current episodes of one level in write order, so what a summary
  covers is a contiguous run of that level (by ``seq``), listed in order, written before it;
  the turns under a summary (its leaves) are a contiguous run of the scope's turns;
- the summary's time and session are its last covered episode's, its ``period_start`` and
  ``period_end`` metadata the first and last covered episode's times;
- current summaries never share a turn and together hold every superseded turn; with one
  writer per scope the superseded turns are the oldest ones (a prefix, ``require_prefix``).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from memstrata.schemas import Episode, EpisodeKind

__all__ = ["ScopeAudit", "audit_lineage", "audit_scope", "audit_turns", "batch_state", "leaves"]

_MAX_PROBLEMS = 20


@dataclass
class ScopeAudit:
    """What is wrong in one scope (all zeros when nothing is).

    Attributes:
        turns: turns stored.
        lost: intended turns (by idempotency key) not stored.
        duplicated: extra copies of an intended turn (same key, or same text under another key).
        unexpected: stored turns nobody intended.
        altered: intended turns stored with another text.
        summaries: summaries stored.
        bad_summaries: summaries breaking a lineage rule.
        orphans: episodes marked superseded by something that does not cover them, and
            superseded turns no current summary holds.
        problems: the first few findings, readable.
    """

    turns: int = 0
    lost: int = 0
    duplicated: int = 0
    unexpected: int = 0
    altered: int = 0
    summaries: int = 0
    bad_summaries: int = 0
    orphans: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.duplicated
            or self.unexpected
            or self.altered
            or self.bad_summaries
            or self.orphans
        )

    def note(self, problem: str) -> None:
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(problem)


def batch_state(stored_keys: Collection[str], keys: Sequence[str]) -> Literal["none", "all", "partial"]:
    """Whether none, all or only part of a batch's idempotency keys are stored."""
    present = sum(1 for k in keys if k in stored_keys)
    return "none" if present == 0 else "all" if present == len(keys) else "partial"


def audit_turns(episodes: Iterable[Episode], expected: Mapping[str, str], audit: ScopeAudit) -> None:
    """Count lost, duplicated, unexpected and altered turns against ``expected`` (key -> text)."""
    turns = [e for e in episodes if e.kind is EpisodeKind.TURN]
    audit.turns = len(turns)
    by_key = Counter(e.idempotency_key for e in turns if e.idempotency_key is not None)
    intended_texts = set(expected.values())
    for key in expected:
        if key not in by_key:
            audit.lost += 1
            audit.note(f"turn {key!r} is lost")
    for key, count in by_key.items():
        if count > 1:
            audit.duplicated += count - 1
            audit.note(f"turn {key!r} is stored {count} times")
    for e in turns:
        stored_key = e.idempotency_key
        if stored_key is not None and stored_key in expected:
            if e.text != expected[stored_key]:
                audit.altered += 1
                audit.note(f"turn {stored_key!r} is stored as {e.text[:60]!r}")
        elif e.text in intended_texts:
            audit.duplicated += 1
            audit.note(f"turn {e.id} (key {stored_key!r}) repeats an intended turn: {e.text[:60]!r}")
        else:
            audit.unexpected += 1
            audit.note(f"turn {e.id} (key {stored_key!r}) was never intended: {e.text[:60]!r}")


def leaves(summary: Episode, by_id: Mapping[uuid.UUID, Episode]) -> list[uuid.UUID]:
    """The turns under a summary, through every level (ids missing from ``by_id`` skipped)."""
    found: list[uuid.UUID] = []
    stack, seen = [summary.id], set()
    while stack:
        current = by_id.get(stack.pop())
        if current is None or current.id in seen:
            continue
        seen.add(current.id)
        if current.kind is EpisodeKind.TURN:
            found.append(current.id)
        else:
            stack.extend(reversed(current.covers))
    return found


def _run(positions: Sequence[int]) -> bool:
    return list(positions) == list(range(positions[0], positions[0] + len(positions))) if positions else True


def _when(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _summary_problem(
    summary: Episode,
    by_id: Mapping[uuid.UUID, Episode],
    turn_pos: Mapping[uuid.UUID, int],
    level_pos: Mapping[int, Mapping[uuid.UUID, int]],
) -> str | None:
    if not summary.covers:
        return "covers nothing"
    if len(set(summary.covers)) != len(summary.covers):
        return "covers an episode twice"
    missing = [c for c in summary.covers if c not in by_id]
    if missing:
        return f"covers {missing[0]}, which is not stored in its user and agent"
    covered = [by_id[c] for c in summary.covers]
    for episode in covered:
        if episode.superseded_by != summary.id:
            return f"covers {episode.id}, which is marked superseded by {episode.superseded_by}"
        if (episode.seq or 0) >= (summary.seq or 0):
            return f"covers {episode.id}, written after it"
    if summary.level == 1:
        if any(e.kind is not EpisodeKind.TURN for e in covered):
            return "is level 1 but covers something other than turns"
        positions = [turn_pos[e.id] for e in covered]
    else:
        if any(e.kind is not EpisodeKind.SUMMARY or e.level != summary.level - 1 for e in covered):
            return f"is level {summary.level} but covers something other than level-{summary.level - 1} summaries"
        positions = [level_pos[summary.level - 1][e.id] for e in covered]
    if not _run(positions):
        return f"covers a non-contiguous or unordered run of its level (positions {positions[:8]})"
    under = sorted(turn_pos[t] for t in leaves(summary, by_id) if t in turn_pos)
    if not _run(under):
        return "the turns under it are not a contiguous run of the scope's turns"
    first, last = covered[0], covered[-1]
    if summary.occurred_at != last.occurred_at or summary.scope.session_id != last.scope.session_id:
        return "its time or session is not its last covered episode's"
    start, end = _when(summary.metadata.get("period_start")), _when(summary.metadata.get("period_end"))
    if start != first.occurred_at or end != last.occurred_at:
        return "its period_start/period_end do not match what it covers"
    return None


def audit_lineage(episodes: Sequence[Episode], audit: ScopeAudit, *, require_prefix: bool = True) -> None:
    """Check every summary against the lineage rules; count bad summaries and orphans."""
    by_id = {e.id: e for e in episodes}
    ordered = sorted(episodes, key=lambda e: e.seq or 0)
    turns = [e for e in ordered if e.kind is EpisodeKind.TURN]
    summaries = [e for e in ordered if e.kind is EpisodeKind.SUMMARY]
    audit.summaries = len(summaries)
    turn_pos = {e.id: i for i, e in enumerate(turns)}
    level_pos: dict[int, dict[uuid.UUID, int]] = {}
    for s in summaries:
        same = level_pos.setdefault(s.level, {})
        same[s.id] = len(same)
    bad: set[uuid.UUID] = set()
    for s in summaries:
        reason = _summary_problem(s, by_id, turn_pos, level_pos)
        if reason is not None:
            bad.add(s.id)
            audit.note(f"summary {s.id} (level {s.level}) {reason}")
    for e in ordered:
        if e.superseded_by is None:
            continue
        holder = by_id.get(e.superseded_by)
        if holder is None or e.id not in holder.covers:
            audit.orphans += 1
            audit.note(f"{e.kind.value} {e.id} is superseded by {e.superseded_by}, which does not cover it")
    held: dict[uuid.UUID, uuid.UUID] = {}
    for s in (s for s in summaries if s.superseded_by is None):
        for turn in leaves(s, by_id):
            if turn in held:
                bad.add(s.id)
                audit.note(f"current summaries {held[turn]} and {s.id} both hold turn {turn}")
            held[turn] = s.id
    superseded = [t for t in turns if t.superseded_by is not None]
    for t in superseded:
        if t.id not in held:
            audit.orphans += 1
            audit.note(f"turn {t.id} is superseded but no current summary holds it")
    if require_prefix:
        for t in superseded:
            if turn_pos[t.id] >= len(superseded) and t.id in held:
                bad.add(held[t.id])
                audit.note(f"summary {held[t.id]} folded turn {t.id} while older turns are unfolded")
    audit.bad_summaries = len(bad)


def audit_scope(
    episodes: Sequence[Episode], expected: Mapping[str, str], *, require_prefix: bool = True
) -> ScopeAudit:
    """Audit one scope's turns against ``expected`` (idempotency key -> text) and its lineage."""
    audit = ScopeAudit()
    audit_turns(episodes, expected, audit)
    audit_lineage(episodes, audit, require_prefix=require_prefix)
    return audit
