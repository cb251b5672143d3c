"""Hybrid search, fused in one place: reciprocal rank fusion and the recency weight.

A store offers one retriever at a time (:meth:`~memstrata.ports.EpisodeStore.rank`: a vector leg
or a full-text leg, ids and ranks only) and reads episodes by id (``get``). :func:`hybrid_ranks`
runs both legs at once and fuses them; :func:`hybrid_search` then reads the winners. Recall, the
LangGraph store and the store benchmark all search through these two functions.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import wait
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from memstrata import port_calls
from memstrata.concurrency import background
from memstrata.port_calls import Plan, Ports, run
from memstrata.schemas import Episode, RecallHit, Scope, SearchQuery, utc_now
from memstrata.schemas.trusted import construct

__all__ = [
    "Ranked",
    "RankedLegs",
    "ahybrid_ranks",
    "fuse_more",
    "fuse_ranks",
    "fused_score",
    "hybrid_ranks",
    "hybrid_search",
    "hybrid_search_calls",
    "leg_ranks",
    "ranked_hit",
    "recency_weight",
    "rrf",
]

SECONDS_PER_DAY = 86_400.0


def rrf(rank: int | None, k: int) -> float:
    """Reciprocal-rank contribution of a 1-based rank; 0 when the item was not ranked."""
    return 0.0 if rank is None else 1.0 / (k + rank)


def recency_weight(occurred_at: datetime, now: datetime, half_life_days: float | None) -> float:
    """Weight in (0.5, 1] that halves its distance to 0.5 every half-life.

    ``0.5 + 0.5 * 2 ** (-age / half_life)``: recent items weigh up to twice as much as very old
    ones, so recency breaks ties between similar matches but never buries a strong old match.
    Future timestamps count as age 0. Without a half-life the weight is 1.
    """
    if half_life_days is None:
        return 1.0
    age_days = max(0.0, (now - occurred_at).total_seconds() / SECONDS_PER_DAY)
    return 0.5 + 0.5 * math.pow(2.0, -age_days / half_life_days)


def fused_score(
    vector_rank: int | None,
    text_rank: int | None,
    *,
    k: int,
    recency: float = 1.0,
) -> float:
    """The fused score of one candidate."""
    return (rrf(vector_rank, k) + rrf(text_rank, k)) * recency


class Ranked(NamedTuple):
    """One candidate as a rank-only search returns it (no episode attached)."""

    id: uuid.UUID
    seq: int
    vector_rank: int | None
    distance: float | None
    text_rank: int | None
    recency: float
    score: float
    speaker: str | None = None  # what recall's query cues weigh (memstrata.cues)
    occurred_at: datetime | None = None
    superseded_by: uuid.UUID | None = None  # the only column a fold changes


def fuse_ranks(
    vector_rows: Sequence[Sequence[Any]], text_rows: Sequence[Sequence[Any]], *, k: int, rrf_k: int
) -> list[Ranked]:
    """Fuse rank-only rows ``(id, seq, vector_rank, distance, text_rank, recency[, score, speaker,
    occurred_at, superseded_by])`` of a vector-only and a text-only search: the top ``k`` by :func:`fused_score`,
    ties broken by newer write first."""
    # Plain lists until the top k are known: building a Ranked per candidate cost ~3x the rest.
    merged: dict[uuid.UUID, list[Any]] = {}
    for row in vector_rows:
        merged[row[0]] = [row[0], int(row[1]), int(row[2]), float(row[3]), None, float(row[5]), row]
    for row in text_rows:
        seen = merged.get(row[0])
        if seen is None:
            merged[row[0]] = [row[0], int(row[1]), None, None, int(row[4]), float(row[5]), row]
        else:
            seen[4] = int(row[4])
    scored = [(fused_score(m[2], m[4], k=rrf_k, recency=m[5]), m) for m in merged.values()]
    scored.sort(key=lambda pair: (-pair[0], -pair[1][1]))
    return [Ranked(m[0], m[1], m[2], m[3], m[4], m[5], score, *m[6][7:10]) for score, m in scored[:k]]


def leg_ranks(
    rows: Sequence[Sequence[Any]],
    *,
    vector: bool,
    k: int,
    rrf_k: int,
    now: datetime,
    half_life_days: float | None,
) -> list[tuple[Any, ...]]:
    """Rank-only rows, as :func:`fuse_ranks` takes them and best first (top ``k``), of one
    retriever's candidates ``(id, seq, measure, speaker, occurred_at, superseded_by)``: a cosine
    distance (``vector``: ranked by distance, then write order) or a full-text score (ranked as
    given). The score is :func:`fused_score` of the one rank, with :func:`recency_weight`."""
    if vector:
        rows = sorted(rows, key=lambda r: (r[2], r[1]))
    ranked: list[tuple[Any, ...]] = []
    for rank, (episode_id, seq, measure, speaker, occurred_at, superseded_by) in enumerate(rows, start=1):
        recency = recency_weight(occurred_at, now, half_life_days)
        ranks = (rank, float(measure), None) if vector else (None, None, rank)
        score = rrf(rank, rrf_k) * recency
        ranked.append((episode_id, seq, *ranks, recency, score, speaker, occurred_at, superseded_by))
    ranked.sort(key=lambda r: (-r[6], -r[1]))
    return ranked[:k]


def ranked_hit(ranked: Ranked, episode: Episode) -> RecallHit:
    """The recall hit of a fused candidate, with its episode attached."""
    return construct(
        RecallHit,
        {
            "episode": episode,
            "score": ranked.score,
            "vector_rank": ranked.vector_rank,
            "text_rank": ranked.text_rank,
            "vector_distance": ranked.distance,
            "recency": ranked.recency,
        },
    )


def fuse_more(
    fused: Sequence[Ranked], legs: Sequence[Sequence[Ranked]], *, weight: float, rrf_k: int, k: int
) -> list[Ranked]:
    """``fused`` with the reciprocal ranks of further single-retriever ``legs`` added, each
    counted ``weight`` times (times the candidate's recency), best first, top ``k``.

    A candidate only a further leg found joins with that leg's share alone; its ranks stay those
    of the main legs (None)."""
    merged: dict[uuid.UUID, Ranked] = {r.id: r for r in fused}
    extra: dict[uuid.UUID, float] = {}
    for rows in legs:
        for rank, row in enumerate(rows, start=1):
            extra[row.id] = extra.get(row.id, 0.0) + weight * rrf(rank, rrf_k) * row.recency
            if row.id not in merged:
                merged[row.id] = Ranked(
                    row.id,
                    row.seq,
                    None,
                    None,
                    None,
                    row.recency,
                    0.0,
                    row.speaker,
                    row.occurred_at,
                    row.superseded_by,
                )
    scored = [r._replace(score=r.score + extra.get(r.id, 0.0)) for r in merged.values()]
    scored.sort(key=lambda r: (-r.score, -r.seq))
    return scored[:k]


class RankedLegs(Protocol):
    """What a hybrid search needs of a store: its ranked legs and its reads by id (every
    :class:`~memstrata.ports.EpisodeStore` has both)."""

    def rank(self, query: SearchQuery) -> list[Ranked]: ...

    def get(self, scope: Scope, ids: Sequence[uuid.UUID]) -> list[Episode]: ...


def hybrid_ranks(
    store: RankedLegs,
    query: SearchQuery,
    *,
    vector: Callable[[], Sequence[float]] | None = None,
    k: int | None = None,
) -> list[Ranked]:
    """The fused candidates of ``query``'s two retrievers, best first: the top ``k`` (default
    ``query.k``) by :func:`fused_score`, ties broken by newer write first.

    Each retriever is one :meth:`~memstrata.ports.EpisodeStore.rank` leg taking
    ``query.candidates``. The text leg runs in the background while the vector leg runs, or while
    ``vector()`` computes the query's vector (recall embeds its query meanwhile); a query with only
    one of the two runs that leg alone.

    Args:
        store: the episode store.
        query: the search (its vector is used unless ``vector`` is given).
        vector: computes the query vector while the text leg runs.
        k: candidates to keep after fusion.

    Raises:
        InvalidInput: a bad scope, or a vector of the wrong dimension.
        StoreUnavailable: the store failed.
    """
    legs, text = _legs(query)
    text_leg = background(store.rank, text) if text is not None else None
    try:
        wanted = vector() if vector is not None else query.vector
        vector_rows = [] if wanted is None else store.rank(_vector_leg(legs, wanted))
    except BaseException:
        if text_leg is not None:
            wait([text_leg])  # never leave a search running on a connection the caller may close
        raise
    text_rows = [] if text_leg is None else text_leg.result()
    return fuse_ranks(vector_rows, text_rows, k=k or query.k, rrf_k=query.rrf_k)


def _legs(query: SearchQuery) -> tuple[SearchQuery, SearchQuery | None]:
    """Both legs' common search (each takes ``query.candidates``, one "now"), and the text leg
    (None without a text)."""
    legs = query.model_copy(update={"k": query.candidates, "now": query.now or utc_now()})
    return legs, legs.model_copy(update={"vector": None}) if query.text.strip() else None


def _vector_leg(legs: SearchQuery, vector: Sequence[float]) -> SearchQuery:
    return legs.model_copy(update={"vector": tuple(vector), "text": ""})


async def ahybrid_ranks(
    rank: Callable[[SearchQuery], Awaitable[list[Ranked]]],
    query: SearchQuery,
    *,
    vector: Awaitable[Sequence[float]] | None = None,
    k: int | None = None,
) -> list[Ranked]:
    """:func:`hybrid_ranks` on asyncio: ``rank`` awaits one leg, the text leg runs as a task
    while ``vector`` (or the vector leg) is awaited."""
    legs, text = _legs(query)
    text_leg = asyncio.ensure_future(rank(text)) if text is not None else None
    try:
        wanted = await vector if vector is not None else query.vector
        vector_rows = [] if wanted is None else await rank(_vector_leg(legs, wanted))
    except BaseException:
        if text_leg is not None:
            await asyncio.wait(
                [text_leg]
            )  # never leave a search running on a connection the caller may close
        raise
    text_rows = [] if text_leg is None else await text_leg
    return fuse_ranks(vector_rows, text_rows, k=k or query.k, rrf_k=query.rrf_k)


def hybrid_search(store: RankedLegs, query: SearchQuery) -> list[RecallHit]:
    """Hybrid search (vector + full text, reciprocal-rank fused) within ``query.scope``'s user and
    agent, best first: :func:`hybrid_ranks`, then the winners read whole with one ``get``.

    Raises:
        InvalidInput: a bad scope, or a vector of the wrong dimension.
        StoreUnavailable: the store failed.
    """
    return run(hybrid_search_calls(query), Ports(store, None))


def hybrid_search_calls(query: SearchQuery) -> Plan[list[RecallHit]]:
    """:func:`hybrid_search` as a plan of store calls (:mod:`memstrata.port_calls`), for a caller
    with a sync and an async face (the LangGraph store): both legs at once, then one ``get``."""
    legs, text = _legs(query)
    vector = None if query.vector is None else port_calls.store("rank", _vector_leg(legs, query.vector))
    text_leg = None if text is None else port_calls.store("rank", text)
    if vector is not None and text_leg is not None:
        text_rows, vector_rows = yield port_calls.both(text_leg, vector)
    else:
        vector_rows = [] if vector is None else (yield vector)
        text_rows = [] if text_leg is None else (yield text_leg)
    top = fuse_ranks(vector_rows, text_rows, k=query.k, rrf_k=query.rrf_k)
    found: list[Episode] = (yield port_calls.store("get", query.scope, [t.id for t in top])) if top else []
    by_id = {e.id: e for e in found}
    return [ranked_hit(t, by_id[t.id]) for t in top if t.id in by_id]  # else forgotten meanwhile
