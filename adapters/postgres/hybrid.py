"""A hybrid search as two rank-only searches run at once, fused, then one read of the winners.

The vector and the full-text retrievers cost about the same at scale (measured at 100k episodes:
~6 and ~8 ms of server CPU); one statement runs them one after the other, two connections run
them side by side. Each leg returns ids and ranks only, so only the top ``k`` episodes are built
(~15-30 us each in Python).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import wait
from typing import Any

from memstrata.concurrency import background
from memstrata.fusion import Ranked, fuse_ranks, ranked_hit
from memstrata.schemas import Episode, RecallHit, Scope, SearchQuery, utc_now

__all__ = ["fused_ranks", "hybrid_search"]


def fused_ranks(query: SearchQuery, ranks: Callable[[SearchQuery], Sequence[Sequence[Any]]]) -> list[Ranked]:
    """Run ``query``'s two legs through ``ranks`` (the text leg in the background) and fuse them.

    Args:
        query: a search with both a vector and a text.
        ranks: runs a single-retriever search, returning rank-only rows (see
            :func:`memstrata.fusion.fuse_ranks`).

    No thread holds a connection while it waits for another: with a pool of one connection the
    legs take turns, and concurrent searches cannot starve each other.
    """
    legs = query.model_copy(update={"k": query.candidates, "now": query.now or utc_now()})
    text_leg = background(ranks, legs.model_copy(update={"vector": None}))
    try:
        vector_rows = ranks(legs.model_copy(update={"text": ""}))
    except BaseException:
        wait([text_leg])
        raise
    return fuse_ranks(vector_rows, text_leg.result(), k=query.k, rrf_k=query.rrf_k)


def hybrid_search(
    query: SearchQuery,
    *,
    ranks: Callable[[SearchQuery], Sequence[Sequence[Any]]],
    get: Callable[[Scope, Sequence[uuid.UUID]], list[Episode]],
) -> list[RecallHit]:
    """:func:`fused_ranks`, then one read of the top ``k`` episodes by id."""
    top = fused_ranks(query, ranks)
    found = {e.id: e for e in get(query.scope, [t.id for t in top])}
    return [ranked_hit(t, found[t.id]) for t in top if t.id in found]  # else forgotten meanwhile
