"""The SQL of the Postgres store's search: pure builders returning ``(sql, params)``.

The vector retriever (HNSW, cosine) and the full-text retriever (GIN, ``ts_rank``) each take the
top candidates of the searched scope; reciprocal-rank fusion and recency weighting follow in the
same statement (or, for rank-only legs, in :mod:`.hybrid`). Every table access is filtered by
``user_id`` and ``agent_id``; row-level security enforces the same scope (see :mod:`.security`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from memstrata.adapters.postgres.tables import (
    READ_COLUMNS,
    TS_CONFIG,
    Statement,
    Tables,
    column_list,
    owner_params,
)
from memstrata.adapters.postgres.word_counts import (
    PARTIAL_MATCH_ROWS,
    SCOPE_COUNT_CAP,
    WORD_SAMPLE_ROWS,
    PrunedQuery,
)
from memstrata.fusion import SECONDS_PER_DAY
from memstrata.schemas import SearchQuery

__all__ = [
    "DEFAULT_MAX_TERM_SHARE",
    "DEFAULT_TEXT_SCAN_LIMIT",
    "RANK",
    "WORD_SAMPLE_ROWS",
    "leg",
    "pruned_tsquery",
    "search",
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


_LOOKUP = """
     LATERAL (SELECT * FROM {episodes} e WHERE e.user_id = %(user_id)s AND e.id = f.id OFFSET 0) e,"""

# A lexeme quoted for tsquery input: backslashes and single quotes doubled.
_QUOTED_LEXEME = "'''' || replace(replace(w.lexeme, '\\', '\\\\'), '''', '''''') || ''''"


def pruned_tsquery(t: Tables, where: Sequence[str]) -> str:
    """SQL for the text side's tsqueries: ``q`` (any kept word), ``q_all`` (every kept word),
    ``q_fallback`` (the least common dropped word) and ``q_some`` (the kept words partial matches
    are searched among: see :data:`.word_counts.PARTIAL_MATCH_ROWS`), plus ``words`` (how many
    were kept).

    A natural-language question shares some word with a large share of any conversation (a
    name, "go", "really"): ranking every such match costs time in proportion and ranks by words
    that say little. Words are taken rarest first, by the share of the searched rows that hold
    each (``where``: the user's and agent's episodes after the filters, alias ``e``), while their
    summed share stays within ``%(max_term_share)s``. This is a cheap inverse document frequency
    measured where the search happens: a name rare in the table can be in a third of one user's
    turns. (Table-wide ``pg_stats`` frequencies, used before, depended on every other user's rows
    and on when autovacuum last ran: on LoCoMo one conversation's evidence recall moved from
    0.80 to 0.60 between two runs of the same code.) Words are counted in one pass over the
    lexemes of the scope's newest ``%(word_sample_rows)s`` rows (:data:`WORD_SAMPLE_ROWS`). When
    the kept words match nothing, the search falls back to ``q_fallback``. Parameters: ``text``,
    ``max_term_share``, ``word_sample_rows``, ``scope_count_cap``, ``partial_match_rows`` and the
    filters' own.
    """
    kept = "FILTER (WHERE w.cum <= %(max_term_share)s)"
    some = (
        "FILTER (WHERE w.cum <= %(max_term_share)s "
        "AND (w.before = 0 OR w.cum * sc.rows <= %(partial_match_rows)s))"
    )
    scope = " AND ".join(where)
    lexemes = f"tsvector_to_array(to_tsvector('{TS_CONFIG}', %(text)s))"
    return f"""WITH ws AS MATERIALIZED (SELECT e.tsv FROM {t.episodes} e WHERE {scope}
                            ORDER BY e.seq DESC LIMIT %(word_sample_rows)s)
SELECT coalesce(CAST(string_agg({_QUOTED_LEXEME}, ' | ') {kept} AS tsquery), CAST('' AS tsquery)) AS q,
       coalesce(CAST(string_agg({_QUOTED_LEXEME}, ' & ') {kept} AS tsquery), CAST('' AS tsquery)) AS q_all,
       count(*) {kept} AS words,
       coalesce(CAST((array_agg({_QUOTED_LEXEME} ORDER BY w.n) FILTER (WHERE w.cum > %(max_term_share)s))[1]
                     AS tsquery), CAST('' AS tsquery)) AS q_fallback,
       coalesce(CAST(string_agg({_QUOTED_LEXEME}, ' | ') {some} AS tsquery), CAST('' AS tsquery)) AS q_some
    FROM (SELECT count(*) AS rows FROM (SELECT 1 FROM {t.episodes} e WHERE {scope}
                                        LIMIT %(scope_count_cap)s) s) sc,
         (SELECT w.lexeme,
                 sum(w.freq) OVER (ORDER BY w.freq, w.lexeme) AS cum,
                 coalesce(sum(w.freq) OVER (ORDER BY w.freq, w.lexeme ROWS BETWEEN UNBOUNDED PRECEDING
                                            AND 1 PRECEDING), 0) AS before,
                 row_number() OVER (ORDER BY w.freq, w.lexeme) AS n
          FROM (SELECT w.lexeme, coalesce(c.n, 0)::float8 / greatest(1, size.rows) AS freq
                FROM unnest({lexemes}) AS w(lexeme)
                CROSS JOIN (SELECT count(*) AS rows FROM ws) size
                LEFT JOIN (SELECT l.lexeme, count(*) AS n FROM ws, unnest(tsvector_to_array(ws.tsv)) AS l(lexeme)
                           WHERE l.lexeme = ANY({lexemes}) GROUP BY l.lexeme) c ON c.lexeme = w.lexeme
               ) w
         ) w"""


def search(
    t: Tables,
    query: SearchQuery,
    vector: Any,
    *,
    now: datetime,
    exact: bool = False,
    max_term_share: float = DEFAULT_MAX_TERM_SHARE,
    text_scan_limit: int = DEFAULT_TEXT_SCAN_LIMIT,
    pruned: PrunedQuery | None = None,
) -> Statement:
    """Hybrid search: the top ``query.candidates`` of each retriever, fused by reciprocal rank.

    Vector side: ordered by cosine distance (``<=>``) so the HNSW index serves it; iterative
    scans keep filling the limit when the scope filter drops rows. ``exact=True`` orders by an
    expression the index cannot serve: the exact ranking, for recall measurements.

    Text side: the query's words, the most common in the searched rows dropped
    (:func:`pruned_tsquery`, or ``pruned`` when the caller pruned them already from cached word
    counts: see :mod:`.word_counts`), ORed; the matching rows are ranked by ``ts_rank``. Up to
    ``text_scan_limit`` rows matching every kept word are ranked; when fewer than ``candidates``
    do, so are up to ``text_scan_limit`` rows matching some of them (among the rarest kept words
    in a large scope: ``q_some``), in storage order (this bounds the cost when a word is common).

    The candidates are fused and scored from what the retrievers read (ranks, write order,
    ``occurred_at``); only the top ``k`` are then read whole, one primary-key lookup each (the
    ``OFFSET 0`` fence keeps the planner from scanning the whole scope instead, which it prefers
    when a new user's rows are not in the table's statistics yet: measured 43 ms vs 10 ms on 419
    turns). Reading every candidate before the limit cost ~1.3 ms at 100k episodes.

    Ties break by write order. The score is ``(1/(rrf_k + vector_rank) + 1/(rrf_k + text_rank))
    * recency``, with recency as in :func:`memstrata.fusion.recency_weight`.

    Rows: ``READ_COLUMNS`` then ``vector_rank, vector_distance, text_rank, recency, score``.
    (One retriever's rank-only candidates, what recall and the hybrid store search fuse, come from
    :func:`leg`.)
    """
    where, params = search_filters(query, "e")
    params.update(candidates=query.candidates, rrf_k=query.rrf_k, k=query.k)
    ctes = []
    if vector is not None:
        params["vector"] = vector
        distance = "(e.embedding <=> %(vector)s)"
        order = f"{distance} + 0" if exact else distance
        ctes.append(
            f"v AS MATERIALIZED (SELECT e.id, e.seq, e.occurred_at, {distance} AS distance FROM {t.episodes} e "
            f"WHERE {' AND '.join(where)} ORDER BY {order} LIMIT %(candidates)s)"
        )
        ctes.append(
            "vr AS (SELECT id, seq, occurred_at, distance, row_number() OVER (ORDER BY distance, seq) AS rank "
            "FROM v)"
        )
    if query.text.strip():
        params["text_scan_limit"] = text_scan_limit
        if pruned is None:
            params.update(
                text=query.text,
                max_term_share=max_term_share,
                word_sample_rows=WORD_SAMPLE_ROWS,
                scope_count_cap=SCOPE_COUNT_CAP,
                partial_match_rows=PARTIAL_MATCH_ROWS,
            )
            ctes.extend(_text_ctes(t, where))
        else:
            params.update(pruned.params())
            ctes.extend(_pruned_text_ctes(t, where, pruned.words, fallback=not pruned.seen))
        ctes.append(
            "tr AS (SELECT id, seq, occurred_at, row_number() OVER (ORDER BY r DESC, seq) AS rank FROM t)"
        )
    if query.recency_half_life_days is None:
        recency = "1.0::float8"
    else:
        params.update(now=now, half_life_days=float(query.recency_half_life_days))
        age_days = f"greatest(0, extract(epoch FROM (%(now)s::timestamptz - f.occurred_at))::float8 / {SECONDS_PER_DAY})"
        recency = f"(0.5 + 0.5 * power(2.0::float8, -{age_days} / %(half_life_days)s::float8))"
    ctes.append(f"f AS MATERIALIZED ({_fused(vector is not None, bool(query.text.strip()))})")
    ctes.append(
        f"""top AS MATERIALIZED (SELECT f.*, s.recency,
       (coalesce(1.0::float8 / (%(rrf_k)s + f.vector_rank), 0) + coalesce(1.0::float8 / (%(rrf_k)s + f.text_rank), 0))
         * s.recency AS score
    FROM f, LATERAL (SELECT {recency} AS recency) s ORDER BY score DESC, f.seq DESC LIMIT %(k)s)"""
    )
    sql = f"""
WITH {("," + chr(10)).join(ctes)}
SELECT {column_list(READ_COLUMNS, "e.")}, f.vector_rank, f.distance, f.text_rank, f.recency, f.score
FROM top f,{_LOOKUP.format(episodes=t.episodes).rstrip(",")}
ORDER BY f.score DESC, f.seq DESC"""
    return sql.strip(), params


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
    first, ties by write order). The candidates :func:`search` takes from that retriever, without
    its ranking, recency and fusion steps, which cost more to plan than to run on a small scope:
    the caller ranks and scores them (:func:`memstrata.fusion.leg_ranks`)."""
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


def _matches(t: Tables, where: Sequence[str], q: str, rank_by: str, condition: str = "", tq: str = "") -> str:
    """At most ``%(text_scan_limit)s`` rows matching tsquery ``q``, ranked by ``rank_by``."""
    return (
        f"SELECT * FROM (SELECT {_TEXT_COLUMNS}, {RANK}(e.tsv, {rank_by}) AS r "
        f"FROM {t.episodes} e{tq} WHERE {' AND '.join(where)}{condition} AND e.tsv @@ {q} "
        "LIMIT %(text_scan_limit)s)"
    )


_ANY_WORD_NEEDED = "(SELECT count(*) FROM ta) < %(candidates)s"
"""Rows matching only some kept words are ranked only when fewer than ``candidates`` rows match
every kept word: at 100k episodes a question's words all co-occur in hundreds of rows, and
ranking a second capped scan of partial matches doubled the text side's cost for rows that
rank below them anyway. (``ta`` is then complete: it is capped at ``text_scan_limit`` rows, at
least ``candidates``, so the partial scan leaves out the rows ``ta`` holds by their words
rather than by a ``UNION`` over whole rows.)"""


def _text_ctes(t: Tables, where: Sequence[str]) -> list[str]:
    """The text side, its words pruned in SQL (:func:`pruned_tsquery`): CTEs ``tq``, ``t0``, ``t``."""

    def matches(q: str, condition: str, rank_by: str = "tq.q") -> str:
        return _matches(t, where, f"tq.{q}", rank_by, f" AND {condition}", tq=", tq")

    fallback = matches("q_fallback", "NOT EXISTS (SELECT 1 FROM t0)", rank_by="tq.q_fallback")
    partial = f"{_ANY_WORD_NEEDED} AND (tq.words < 2 OR NOT e.tsv @@ tq.q_all)"
    return [
        f"tq AS MATERIALIZED ({pruned_tsquery(t, where)})",
        # rows with every kept word first, so a capped scan never misses them
        f"ta AS MATERIALIZED ({matches('q_all', 'tq.words > 1')} a)",
        f"t0 AS MATERIALIZED (SELECT * FROM ta UNION ALL {matches('q_some', partial)} b "
        "ORDER BY r DESC, seq LIMIT %(candidates)s)",
        f"t AS MATERIALIZED (SELECT * FROM t0 UNION ALL {fallback} c ORDER BY r DESC, seq LIMIT %(candidates)s)",
    ]


def _pruned_text_ctes(t: Tables, where: Sequence[str], words: int, *, fallback: bool = True) -> list[str]:
    """The text side with its words pruned already (parameters ``q``, ``q_all``, ``q_fallback``):
    the rows :func:`_text_ctes` returns, from a statement with only the scans it would run (each
    tsquery a constant the planner sees). ``fallback=False`` leaves out the fallback's scan: the
    same rows whenever the kept words match something (see :attr:`.word_counts.PrunedQuery.seen`)."""
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


def _fused(vector: bool, text: bool) -> str:
    """Body of CTE ``f``: each candidate once, with its rank by each retriever that ran."""
    if vector and text:
        return (
            "SELECT coalesce(vr.id, tr.id) AS id, coalesce(vr.seq, tr.seq) AS seq, "
            "coalesce(vr.occurred_at, tr.occurred_at) AS occurred_at, "
            "vr.rank AS vector_rank, vr.distance, tr.rank AS text_rank FROM vr FULL JOIN tr ON vr.id = tr.id"
        )
    if vector:
        return "SELECT id, seq, occurred_at, rank AS vector_rank, distance, NULL::bigint AS text_rank FROM vr"
    if text:
        return (
            "SELECT id, seq, occurred_at, NULL::bigint AS vector_rank, NULL::float8 AS distance, "
            "rank AS text_rank FROM tr"
        )
    return (
        "SELECT NULL::uuid AS id, NULL::bigint AS seq, NULL::timestamptz AS occurred_at, "
        "NULL::bigint AS vector_rank, NULL::float8 AS distance, NULL::bigint AS text_rank WHERE false"
    )
