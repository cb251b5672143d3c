"""The statements of the store's two retrievers, one leg each: pure builders of ``(sql, params)``.

The vector retriever (HNSW, cosine) and the full-text retriever (GIN, ``ts_rank``) each take the
top candidates of the searched scope; ranking, recency and fusion happen in the core
(:mod:`memstrata.fusion`). Every table access is filtered by ``user_id`` and ``agent_id``;
row-level security enforces the same scope (see :mod:`.security`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from memstrata.adapters.postgres.fulltext import PrunedQuery
from memstrata.adapters.postgres.tables import Statement, Tables, owner_params
from memstrata.schemas import SearchQuery

__all__ = [
    "DEFAULT_MAX_TERM_SHARE",
    "DEFAULT_TEXT_SCAN_LIMIT",
    "RANK",
    "leg",
    "search_filters",
]

DEFAULT_MAX_TERM_SHARE = 0.1
"""Query words are used rarest first while their summed frequency stays within this share of the
searched rows (one user's and agent's). On LoCoMo dev3 (3 conversations) 0.05 to 0.2 gave hybrid
evidence recall within 3 points of each other on every conversation; 0.02 cost 4 points."""
DEFAULT_TEXT_SCAN_LIMIT = 100
"""Most full-text matches ranked per scan (ranking costs ~5-10 us a row). A LoCoMo conversation's
kept words match fewer (at most ``max_term_share`` of its ~700 turns). At 100k episodes a
question's words match thousands of rows, of which a capped scan ranks the first in storage
order: ranking 100 rather than 300 took a hybrid search from 10.8 to 9.2 ms (p50)."""

RANK = "ts_rank"
"""Full-text ranking function. ``ts_rank`` rather than ``ts_rank_cd``: on LoCoMo it found as much
evidence (text recall@10 0.61 vs 0.60) at about half the CPU per ranked row."""

_TEXT_COLUMNS = "e.id, e.seq, e.occurred_at, e.speaker, e.superseded_by"
"""What the text side carries to rank, score and fuse its candidates."""


def search_filters(query: SearchQuery, alias: str) -> tuple[list[str], dict[str, Any]]:
    """The scope and filter conditions of a search on ``alias``, and their parameters."""
    f = query.filters
    a = alias + "."
    where = [f"{a}user_id = %(user_id)s", f"{a}agent_id = %(agent_id)s"]
    params = owner_params(query.scope)
    if f.kinds:
        where.append(f"{a}kind = ANY(%(kinds)s)")
        params["kinds"] = [k.value for k in f.kinds]
    if f.session_id is not None:
        where.append(f"{a}session_id = %(session_id)s")
        params["session_id"] = f.session_id
    if f.occurred_after is not None:
        where.append(f"{a}occurred_at >= %(occurred_after)s")
        params["occurred_after"] = f.occurred_after
    if f.occurred_before is not None:
        where.append(f"{a}occurred_at < %(occurred_before)s")
        params["occurred_before"] = f.occurred_before
    if not f.include_superseded:
        where.append(f"{a}superseded_by IS NULL")
    return where, params


def leg(
    t: Tables,
    query: SearchQuery,
    vector: Any,
    *,
    exact: bool = False,
    text_scan_limit: int = DEFAULT_TEXT_SCAN_LIMIT,
    pruned: PrunedQuery | None = None,
) -> Statement:
    """One retriever alone, as lean as it gets: its top ``query.candidates`` rows of ``(id, seq,
    measure, speaker, occurred_at, superseded_by)``, where the measure is the cosine distance
    (``vector`` given; rows in no set order) or the ``ts_rank`` score (``pruned`` given; rows best
    first, ties by write order). The caller ranks and scores them
    (:func:`memstrata.fusion.leg_ranks`): ranking, recency and fusion cost more to plan in SQL than
    to run in Python on a small scope."""
    where, params = search_filters(query, "e")
    params["candidates"] = query.candidates
    columns = "e.speaker, e.occurred_at, e.superseded_by"
    if vector is not None:
        params["vector"] = vector
        distance = "(e.embedding <=> %(vector)s)"
        order = f"{distance} + 0" if exact else distance
        sql = (
            f"SELECT e.id, e.seq, {distance}, {columns} FROM {t.episodes} e "
            f"WHERE {' AND '.join(where)} ORDER BY {order} LIMIT %(candidates)s"
        )
        return sql, params
    if pruned is None:
        raise ValueError("a text leg needs its pruned words")
    params.update(text_scan_limit=text_scan_limit, **pruned.params())
    ctes = _pruned_text_ctes(t, where, pruned.words, fallback=not pruned.seen)
    sql = f"WITH {', '.join(ctes)} SELECT id, seq, r, speaker, occurred_at, superseded_by FROM t ORDER BY r DESC, seq"
    return sql, params


def _matches(t: Tables, where: Sequence[str], q: str, rank_by: str, condition: str = "") -> str:
    """At most ``%(text_scan_limit)s`` rows matching tsquery ``q``, ranked by ``rank_by``."""
    return (
        f"SELECT * FROM (SELECT {_TEXT_COLUMNS}, {RANK}(e.tsv, {rank_by}) AS r "
        f"FROM {t.episodes} e WHERE {' AND '.join(where)}{condition} AND e.tsv @@ {q} "
        "LIMIT %(text_scan_limit)s)"
    )


_ANY_WORD_NEEDED = "(SELECT count(*) FROM ta) < %(candidates)s"
"""Rows matching only some kept words are ranked only when fewer than ``candidates`` rows match
every kept word: at 100k episodes a question's words all co-occur in hundreds of rows, and
ranking a second capped scan of partial matches doubled the text side's cost for rows that
rank below them anyway. (``ta`` is then complete: it is capped at ``text_scan_limit`` rows, at
least ``candidates``, so the partial scan leaves out the rows ``ta`` holds by their words
rather than by a ``UNION`` over whole rows.)"""


def _pruned_text_ctes(t: Tables, where: Sequence[str], words: int, *, fallback: bool = True) -> list[str]:
    """The text side with its words pruned already (parameters ``q``, ``q_all``, ``q_some``,
    ``q_fallback``; see :func:`.fulltext.prune_words`): rows matching every kept word, then
    (when fewer than ``candidates``) rows matching some, then (when none) rows matching the
    fallback word, each scan capped at ``text_scan_limit`` rows in storage order (this bounds the
    cost when a word is common). Each tsquery is a constant the planner sees. ``fallback=False`` leaves out the fallback's scan: the
    same rows whenever the kept words match something (see :attr:`.fulltext.PrunedQuery.seen`)."""
    q, q_all, q_some, q_fallback = (
        f"CAST(%({name})s AS tsquery)" for name in ("q", "q_all", "q_some", "q_fallback")
    )

    def matches(query: str, condition: str = "") -> str:
        return _matches(t, where, query, q if query in (q_all, q_some) else query, condition)

    ctes = []
    if words > 1:  # rows with every kept word first, so a capped scan never misses them
        ctes.append(f"ta AS MATERIALIZED ({matches(q_all)} a)")
        partial = f" AND {_ANY_WORD_NEEDED} AND NOT e.tsv @@ {q_all}"
        ctes.append(
            f"t0 AS MATERIALIZED (SELECT * FROM ta UNION ALL {matches(q_some, partial)} b "
            "ORDER BY r DESC, seq LIMIT %(candidates)s)"
        )
    elif words == 1:
        ctes.append(f"t0 AS MATERIALIZED ({matches(q)} b ORDER BY r DESC, seq LIMIT %(candidates)s)")
    if words > 0 and not fallback:
        ctes.append("t AS MATERIALIZED (SELECT * FROM t0)")
    elif words > 0:
        scan = matches(q_fallback, " AND NOT EXISTS (SELECT 1 FROM t0)")
        ctes.append(
            f"t AS MATERIALIZED (SELECT * FROM t0 UNION ALL {scan} c ORDER BY r DESC, seq LIMIT %(candidates)s)"
        )
    else:
        ctes.append(f"t AS MATERIALIZED ({matches(q_fallback)} c ORDER BY r DESC, seq LIMIT %(candidates)s)")
    return ctes
