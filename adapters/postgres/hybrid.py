"""A rank-only hybrid search as two single-retriever searches run at once, then fused.

:meth:`~memstrata.adapters.postgres.store.PostgresEpisodeStore.rank` with a vector and a text
runs its two legs here, as recall does (:mod:`memstrata.recall`): each leg returns ids and ranks
only. (:meth:`search` runs both retrievers in one statement instead: see :mod:`.searches`.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import wait
from typing import Any

from memstrata.concurrency import background
from memstrata.fusion import Ranked, fuse_ranks
from memstrata.schemas import SearchQuery, utc_now

__all__ = ["fused_ranks"]


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
