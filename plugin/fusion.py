"""Score fusion shared by every store: reciprocal rank fusion and the recency weight.

The Postgres store computes the same formulas in SQL; these are the reference.
"""

from __future__ import annotations

import math
from datetime import datetime

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
