"""A large scope's searches are planned once per connection, not once per search.

Every connection of the store plans each statement for its own parameters
(``plan_cache_mode = force_custom_plan``, set in :meth:`.store.PostgresEpisodeStore._prepare`): a
generic plan of a prepared statement cannot tell one user's 300 rows from another's 100,000, and
picks the same scan for both (in a table of 301 users and 190k rows, a generic plan ranked the
largest user's 100k rows exactly: 180 ms a search). Yet planning costs about as much as a hybrid
search's text scans: 0.95 ms (p50, ``EXPLAIN``) at 100k episodes, on every search.

A search in a large scope (:data:`LARGE_SCOPE_ROWS`) whose only filters are the scope, its kinds
and whether superseded rows count is planned once instead: the scope, the kinds and the limits
are written into the statement's text as SQL literals (:func:`scope_statement`), the statement is
prepared, and it runs with a generic plan (:data:`GENERIC_PLAN`). The planner then sees the
scope's own statistics, as in a custom plan; what it does not see are the query's vector and its
tsqueries, which at that size leave the plan as it is (an HNSW scan, and a GIN bitmap scan per
text scan). The text is the scope's own, so each large scope has its prepared statements (psycopg
keeps up to 100 per connection, least recently used dropped), and the plan is rebuilt whenever
the table's statistics change (``ANALYZE``).

Measured at 100k episodes of one user (embedded server), 600 searches each, the two ways
alternating: hybrid p50/p95 8.35/11.0 ms planned per search, 7.02/9.59 planned once; vector only
4.63/6.65 vs 4.02/5.76; text only 4.82/6.34 vs 3.97/5.47; the same hits in 100 of 100 searches of
each kind. In a table of 301 users whose largest holds 100k of 190k rows, for the largest: 14.6/24.5
vs 8.44/12.2 ms (planned per search, its partial matches were read by a sequential scan, whose
start point varies: which capped rows it ranked differed in 50 of 100 searches).
"""

from __future__ import annotations

from memstrata.adapters.postgres.fulltext import SCOPE_COUNT_CAP
from memstrata.adapters.postgres.retriever_statements import search_filters
from memstrata.adapters.postgres.tables import Statement
from memstrata.schemas import SearchQuery
from psycopg import sql

__all__ = ["GENERIC_PLAN", "LARGE_SCOPE_ROWS", "planned_once", "scope_statement"]

LARGE_SCOPE_ROWS = SCOPE_COUNT_CAP
"""A scope whose counted rows reach this many (under the search's filters) is large."""

GENERIC_PLAN = "SELECT set_config('plan_cache_mode', 'force_generic_plan', true)"
"""Run in the search's transaction, before its statement: plan it once (transaction-local)."""

_WRITTEN_IN = ("user_id", "agent_id", "kinds", "candidates", "k", "text_scan_limit")
"""The parameters a plan depends on: the scope (its statistics), the kinds, the limits."""


def planned_once(query: SearchQuery, scope_rows: int | None) -> bool:
    """Whether ``query`` is searched with its scope's plan, planned once (see the module doc):
    its scope is large (``scope_rows``: counted under its filters, None if unknown) and each of its
    filters' values is written in (a session or a time filter is not: its value would change the
    plan but not the statement's text)."""
    if scope_rows is None or scope_rows < LARGE_SCOPE_ROWS:
        return False
    _, params = search_filters(query, "e")
    return all(name in _WRITTEN_IN for name in params)


def scope_statement(statement: Statement) -> Statement:
    """``statement`` with the scope, kinds and limits written into its text as SQL literals
    (quoted by psycopg, as ``E'...'`` when they hold a backslash, so whatever the server's
    ``standard_conforming_strings``; a ``%`` doubled, as psycopg's placeholder syntax requires),
    and without those parameters."""
    text, params = statement
    for name in _WRITTEN_IN:
        if name in params:
            literal = sql.Literal(params[name]).as_string().strip().replace("%", "%%")
            text = text.replace(f"%({name})s", literal)
    return text, {name: value for name, value in params.items() if name not in _WRITTEN_IN}
