"""Neighbour expansion: a recalled turn brings the turns around it in its session.

The turn that matches a question best is often not the one that answers it: "Where did you go
last weekend?" matches, "Hiking in the Rockies" (the reply) answers. So each of the best hits
brings its neighbours in its session (the turns just after it, then just before it) into the
ranking, each scored as its anchor times a weight below 1: a neighbour follows its anchor when
the anchor is strong, and never displaces a direct match stronger than the anchor's weighed
score. The planner places the hits by rank as usual, so neighbours take budget only when the
budget reaches them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence

from memstrata.schemas import Episode, EpisodeKind, RecallHit
from memstrata.schemas.trusted import construct

__all__ = ["NeighbourWindow", "expand", "merge_neighbours", "neighbour_anchors"]

SessionTurns = Callable[[Sequence[Episode]], dict[tuple[str, str, str], list[Episode]]]
"""Reads, for anchor episodes, the turns of each of their sessions in write order, keyed by
``(user_id, agent_id, session_id)``."""


def session_key(episode: Episode) -> tuple[str, str, str]:
    scope = episode.scope
    return (scope.user_id, scope.agent_id, scope.session_id)


class NeighbourWindow:
    """Which turns around an anchor count as its neighbours, and how much they weigh.

    Args:
        anchors: how many of the best hits bring neighbours.
        after: turns after an anchor (its replies).
        before: turns before an anchor (what it replies to).
        weight: a neighbour's score as a share of its anchor's; each further step multiplies again.
    """

    __slots__ = ("after", "anchors", "before", "weight")

    def __init__(self, *, anchors: int, after: int, before: int, weight: float) -> None:
        self.anchors, self.after, self.before, self.weight = anchors, after, before, weight

    def around(self, turns: Sequence[Episode], position: int) -> list[tuple[Episode, int]]:
        """The neighbours of ``turns[position]`` with their distance in turns, nearest first and
        replies before what the anchor replies to."""
        found: list[tuple[Episode, int]] = []
        for step in range(1, max(self.after, self.before) + 1):
            if step <= self.after and position + step < len(turns):
                found.append((turns[position + step], step))
            if step <= self.before and position - step >= 0:
                found.append((turns[position - step], step))
        return found


def expand(
    hits: Sequence[RecallHit], window: NeighbourWindow, read_sessions: SessionTurns
) -> list[RecallHit]:
    """``hits`` with the neighbours of the first ``window.anchors`` turns merged in by score.

    A neighbour that is itself a hit keeps the better of its two scores; ties keep the earlier
    place (an anchor stays before its neighbours).

    Args:
        hits: ranked hits, best first.
        window: the neighbourhood and its weight.
        read_sessions: reads the turns of the anchors' sessions (see :data:`SessionTurns`).

    Returns:
        The hits and neighbours, best first.
    """
    anchors = neighbour_anchors(hits, window)
    if not anchors:
        return list(hits)
    return merge_neighbours(hits, anchors, read_sessions([h.episode for h in anchors]), window)


def neighbour_anchors(hits: Sequence[RecallHit], window: NeighbourWindow) -> list[RecallHit]:
    """The hits that bring neighbours: the turns among the first ``window.anchors`` (none when
    the window brings nothing)."""
    if window.weight <= 0 or not (window.after or window.before):
        return []
    return [h for h in hits[: window.anchors] if h.episode.kind is EpisodeKind.TURN]


def merge_neighbours(
    hits: Sequence[RecallHit],
    anchors: Sequence[RecallHit],
    sessions: dict[tuple[str, str, str], list[Episode]],
    window: NeighbourWindow,
) -> list[RecallHit]:
    """``hits`` with the neighbours of ``anchors`` merged in by score, given the turns of the
    anchors' sessions (see :func:`expand`)."""
    best: dict[uuid.UUID, tuple[float, int, RecallHit]] = {
        h.episode.id: (h.score, index, h) for index, h in enumerate(hits)
    }
    order = len(hits)
    for anchor in anchors:
        turns = sessions.get(session_key(anchor.episode), [])
        position = next((i for i, t in enumerate(turns) if t.id == anchor.episode.id), None)
        if position is None:
            continue
        for turn, distance in window.around(turns, position):
            score = anchor.score * window.weight**distance
            seen = best.get(turn.id)
            if seen is not None and seen[0] >= score:
                continue
            if seen is None:
                best[turn.id] = (score, order, _neighbour_hit(turn))
                order += 1
            else:
                best[turn.id] = (score, seen[1], seen[2])
    ranked = sorted(best.values(), key=lambda entry: (-entry[0], entry[1]))
    return [
        hit if hit.score == score else hit.model_copy(update={"score": score}) for score, _, hit in ranked
    ]


def _neighbour_hit(turn: Episode) -> RecallHit:
    """A hit for a turn neither retriever ranked (its score is set by :func:`expand`)."""
    return construct(
        RecallHit,
        {
            "episode": turn,
            "score": 0.0,
            "vector_rank": None,
            "text_rank": None,
            "vector_distance": None,
            "recency": 1.0,
        },
    )
