"""The Postgres store's ranked legs, as steps (:mod:`.steps`) both faces of the store run (a
mixin of the stores). Hybrid search fuses two of them in the core
(:func:`memstrata.fusion.hybrid_ranks`).

Each leg is one read transaction (:mod:`.read_transaction`): the scope and the text's lexemes in the first
round trip, the leg's statement and the commit in the second (plus the scope's word counts when
they are not cached: :mod:`.word_count_cache`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from memstrata.adapters.postgres import plan_cache, retriever_statements, security, statements
from memstrata.adapters.postgres.fulltext import PrunedQuery, query_lexemes
from memstrata.adapters.postgres.rows import as_array
from memstrata.adapters.postgres.steps import Begin, Finish, Steps
from memstrata.adapters.postgres.word_count_cache import WordCountCache, cached_scope_rows, pruned_words_steps
from memstrata.fusion import Ranked, leg_ranks
from memstrata.schemas import Episode, Scope, SearchQuery, utc_now
from memstrata.validation import check_leg

__all__ = ["ExactRanking", "RankSteps"]


class RankedStore(Protocol):
    """The sync store's two reads an :class:`ExactRanking` goes through."""

    def rank(self, query: SearchQuery, *, exact: bool = False) -> list[Ranked]: ...

    def get(self, scope: Scope, ids: Sequence[uuid.UUID]) -> list[Episode]: ...


class RankSteps:
    """A ranked leg as steps (:mod:`.steps`), on the store's tables, role and word counts."""

    _dimensions: int
    _tables: statements.Tables
    _max_term_share: float
    _text_scan_limit: int
    _word_counts: WordCountCache
    _role_steps: Callable[[], Steps[str | None]]

    def _rank_steps(self, query: SearchQuery, exact: bool) -> Steps[list[tuple[Any, ...]]] | None:
        """The steps of one retriever's rank-only rows (``query`` has a vector or a text, not
        both), run in one read transaction guard; None when the leg ranks nothing.

        Raises:
            InvalidInput: a bad leg (checked now, before any connection is borrowed).
        """
        if not check_leg(query, dimensions=self._dimensions):
            return None
        return self._ranked_rows(query, exact)

    def _ranked_rows(self, query: SearchQuery, exact: bool) -> Steps[list[tuple[Any, ...]]]:
        rows, pruned = yield from self._attempt(query, exact)
        if pruned is not None and pruned.fallback_missed(bool(rows)):
            rows, pruned = yield from self._attempt(query, exact, fallback=pruned.with_fallback())
        return leg_ranks(
            rows,
            vector=query.vector is not None,
            k=query.k,
            rrf_k=query.rrf_k,
            now=query.now or utc_now(),
            half_life_days=query.recency_half_life_days,
        )

    def _attempt(
        self, query: SearchQuery, exact: bool, *, fallback: PrunedQuery | None = None
    ) -> Steps[tuple[list[tuple[Any, ...]], PrunedQuery | None]]:
        """One read transaction: the scope (and the text's lexemes, unless this is the
        ``fallback``'s second try) in the first round trip, the leg and the commit in the second
        (plus the scope's word counts when they are not cached)."""
        text = query.text if fallback is None and query.text.strip() else None
        role = yield from self._role_steps()
        statement, params = security.scope_statement(query.scope, role)
        if text is not None:
            statement, params = f"{statement}, ({query_lexemes()})", {**params, "text": text}
        row = yield Begin((statement, params))
        pruned = fallback
        if text is not None:  # a text leg: its words, pruned with cached word counts
            pruned = yield from pruned_words_steps(
                self._word_counts,
                self._tables,
                query,
                max_term_share=self._max_term_share,
                lexemes=list(row[-1]) if row else [],
            )
        leg = retriever_statements.leg(
            self._tables,
            query,
            as_array(query.vector) if query.vector is not None else None,
            exact=exact,
            text_scan_limit=self._text_scan_limit,
            pruned=pruned,
        )
        # With the scope's plan, planned once, when the scope is large (.plan_cache; never for
        # the exact ranking, a measurement).
        scope_rows = cached_scope_rows(self._word_counts, query) if pruned is None else pruned.scope_rows
        if exact or not plan_cache.planned_once(query, scope_rows):
            rows = yield Finish(leg)
        else:
            rows = yield Finish(plan_cache.scope_statement(leg), generic_plan=True)
        return rows, pruned


class ExactRanking:
    """A store's legs ranked exactly (HNSW bypassed), for :func:`memstrata.fusion.hybrid_search`:
    what a search would find without the index, to measure its recall against."""

    def __init__(self, store: RankedStore) -> None:
        self.store = store

    def rank(self, query: SearchQuery) -> list[Ranked]:
        return self.store.rank(query, exact=True)

    def get(self, scope: Scope, ids: Sequence[uuid.UUID]) -> list[Episode]:
        return self.store.get(scope, ids)
