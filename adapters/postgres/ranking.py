"""The Postgres store's ranked legs: :meth:`rank` (a mixin of
:class:`~memstrata.adapters.postgres.store.PostgresEpisodeStore`). Hybrid search fuses two of them
in the core (:func:`memstrata.fusion.hybrid_ranks`).

Each leg is one read transaction (:mod:`.read_transaction`): the scope and the text's lexemes in the first
round trip, the leg's statement and the commit in the second (plus the scope's word counts when
they are not cached: :mod:`.word_count_cache`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import psycopg
from memstrata.adapters.postgres import plan_cache, retriever_statements, security, statements
from memstrata.adapters.postgres.fulltext import PrunedQuery, query_lexemes
from memstrata.adapters.postgres.read_transaction import ReadTransaction, read_transaction
from memstrata.adapters.postgres.rows import as_array
from memstrata.adapters.postgres.word_count_cache import WordCountCache, cached_scope_rows, pruned_query_words
from memstrata.fusion import Ranked, leg_ranks
from memstrata.schemas import Episode, Scope, SearchQuery, utc_now
from memstrata.validation import check_leg, check_scope

__all__ = ["ExactRanking", "StoreRanking"]


class StoreRanking:
    """Rank on the store's tables, connections and word counts."""

    _dimensions: int
    _tables: statements.Tables
    _max_term_share: float
    _text_scan_limit: int
    _word_counts: WordCountCache
    _connection: Callable[[str], AbstractContextManager[psycopg.Connection[Any]]]
    _resolved_role: Callable[[psycopg.Connection[Any]], str | None]
    get: Callable[[Scope, Sequence[uuid.UUID]], list[Episode]]

    def rank(self, query: SearchQuery, *, exact: bool = False) -> list[Ranked]:
        """One retriever's candidates (see :meth:`memstrata.ports.EpisodeStore.rank`): ids, ranks
        and scores only, best first. ``exact=True`` bypasses the HNSW index (exact vector ranking,
        slow: for recall measurements)."""
        if not check_leg(query, dimensions=self._dimensions):
            return []
        return [Ranked(*row) for row in self._ranks(query, exact)]

    def _finish(
        self,
        tx: ReadTransaction,
        query: SearchQuery,
        statement: statements.Statement,
        pruned: PrunedQuery | None,
        exact: bool,
    ) -> list[tuple[Any, ...]]:
        """Run the search's ``statement`` and commit: with the scope's plan, planned once, when
        the scope is large (:mod:`.plan_cache`; never for the exact ranking, a measurement)."""
        scope_rows = cached_scope_rows(self._word_counts, query) if pruned is None else pruned.scope_rows
        if exact or not plan_cache.planned_once(query, scope_rows):
            return tx.finish(statement)
        return tx.finish(plan_cache.scope_statement(statement), generic_plan=True)

    @contextmanager
    def _reading(
        self, query: SearchQuery, *, lexemes: bool = True
    ) -> Iterator[tuple[ReadTransaction, list[str] | None]]:
        """A read transaction in ``query``'s scope, begun with the lexemes of its text (None
        without a text, or with ``lexemes=False``)."""
        check_scope(query.scope)
        text = query.text if lexemes and query.text.strip() else None
        with self._connection("search episodes") as conn, read_transaction(conn) as tx:
            statement, params = security.scope_statement(query.scope, self._resolved_role(conn))
            if text is not None:
                statement, params = f"{statement}, ({query_lexemes()})", {**params, "text": text}
            row = tx.begin((statement, params))
            yield tx, (list(row[-1]) if row else []) if text is not None else None

    def _pruned(
        self, conn: psycopg.Connection[Any], query: SearchQuery, lexemes: list[str] | None
    ) -> PrunedQuery | None:
        """The text side's words, pruned with cached word counts (None without a text)."""
        if not query.text.strip():
            return None
        return pruned_query_words(
            conn, self._word_counts, self._tables, query, max_term_share=self._max_term_share, lexemes=lexemes
        )

    def _ranks(self, query: SearchQuery, exact: bool) -> list[tuple[Any, ...]]:
        """One retriever's rank-only rows (``query`` has a vector or a text, not both)."""
        vector = query.vector is not None

        def leg(pruned: PrunedQuery | None) -> statements.Statement:
            return retriever_statements.leg(
                self._tables,
                query,
                as_array(query.vector) if query.vector is not None else None,
                exact=exact,
                text_scan_limit=self._text_scan_limit,
                pruned=pruned,
            )

        with self._reading(query) as (tx, lexemes):
            pruned = None if vector else self._pruned(tx.conn, query, lexemes)
            rows = self._finish(tx, query, leg(pruned), pruned, exact)
        if pruned is not None and pruned.fallback_missed(bool(rows)):
            with self._reading(query, lexemes=False) as (tx, _):
                pruned = pruned.with_fallback()
                rows = self._finish(tx, query, leg(pruned), pruned, exact)
        return leg_ranks(
            rows,
            vector=vector,
            k=query.k,
            rrf_k=query.rrf_k,
            now=query.now or utc_now(),
            half_life_days=query.recency_half_life_days,
        )


class ExactRanking:
    """A store's legs ranked exactly (HNSW bypassed), for :func:`memstrata.fusion.hybrid_search`:
    what a search would find without the index, to measure its recall against."""

    def __init__(self, store: StoreRanking) -> None:
        self.store = store

    def rank(self, query: SearchQuery) -> list[Ranked]:
        return self.store.rank(query, exact=True)

    def get(self, scope: Scope, ids: Sequence[uuid.UUID]) -> list[Episode]:
        return self.store.get(scope, ids)
