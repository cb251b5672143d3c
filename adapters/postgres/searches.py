"""The Postgres store's reads that rank: :meth:`search` and :meth:`rank` (a mixin of
:class:`~memstrata.adapters.postgres.store.PostgresEpisodeStore`).

Each is one read transaction (:mod:`.reads`): the scope and the text's lexemes in the first
round trip, the search statement and the commit in the second (plus the scope's word counts
when they are not cached: :mod:`.query_words`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import psycopg
from memstrata.adapters.postgres import plans, search_sql, security, sql
from memstrata.adapters.postgres.hybrid import fused_ranks
from memstrata.adapters.postgres.query_words import cached_scope_rows, pruned_query_words
from memstrata.adapters.postgres.reads import ReadTransaction, read_transaction
from memstrata.adapters.postgres.rows import as_array, hit_from_row
from memstrata.adapters.postgres.word_counts import PrunedQuery, WordCountCache, query_lexemes
from memstrata.fusion import Ranked, leg_ranks
from memstrata.schemas import RecallHit, SearchQuery, utc_now
from memstrata.validation import check_scope, check_vector

__all__ = ["StoreSearches"]

_TEXT_RANK = len(sql.READ_COLUMNS) + 2
"""Where a search row holds its text rank (after the read columns, vector rank and distance)."""


class StoreSearches:
    """Search and rank on the store's tables, connections and word counts."""

    _dimensions: int
    _tables: sql.Tables
    _max_term_share: float
    _text_scan_limit: int
    _word_counts: WordCountCache
    _connection: Callable[[str], AbstractContextManager[psycopg.Connection[Any]]]
    _resolved_role: Callable[[psycopg.Connection[Any]], str | None]

    def search(self, query: SearchQuery, *, exact: bool = False) -> list[RecallHit]:
        """Hybrid search (see :func:`.sql.search`): one statement, in a transaction whose first
        statement also sets the scope and reads the text's lexemes. ``exact=True`` bypasses the
        HNSW index (exact vector ranking, slow: for recall measurements).

        (Both retrievers run in that one statement. Running them at once on two connections, as
        recall's legs do, gained nothing on a 2-core machine and cost a second transaction and a
        read of the winners: 10.1 vs 10.1 ms p50 at 100k episodes, 15.4 vs 13.5 ms p95.)"""
        if query.vector is not None:
            check_vector(query.vector, dimensions=self._dimensions)
        elif not query.text.strip():
            return []
        with self._reading(query) as (tx, lexemes):
            pruned = self._pruned(tx.conn, query, lexemes)
            rows = self._finish(tx, query, self._statement(query, exact, pruned), pruned, exact)
        if pruned is not None and pruned.fallback_missed(any(row[_TEXT_RANK] is not None for row in rows)):
            with self._reading(query, lexemes=False) as (tx, _):
                pruned = pruned.with_fallback()
                rows = self._finish(tx, query, self._statement(query, exact, pruned), pruned, exact)
        return [hit_from_row(row) for row in rows]

    def _finish(
        self,
        tx: ReadTransaction,
        query: SearchQuery,
        statement: sql.Statement,
        pruned: PrunedQuery | None,
        exact: bool,
    ) -> list[tuple[Any, ...]]:
        """Run the search's ``statement`` and commit: with the scope's plan, planned once, when
        the scope is large (:mod:`.plans`; never for the exact ranking, a measurement)."""
        scope_rows = cached_scope_rows(self._word_counts, query) if pruned is None else pruned.scope_rows
        if exact or not plans.planned_once(query, scope_rows):
            return tx.finish(statement)
        return tx.finish(plans.scope_statement(statement), generic_plan=True)

    def rank(self, query: SearchQuery) -> list[Ranked]:
        """:meth:`search` as ids, ranks and scores only (nothing else is read), best first."""
        if query.vector is not None:
            check_vector(query.vector, dimensions=self._dimensions)
        elif not query.text.strip():
            return []
        if query.vector is None or not query.text.strip():
            return [Ranked(*row[:10]) for row in self._ranks(query, False)]
        return fused_ranks(query, lambda leg: self._ranks(leg, False))

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

    def _statement(self, query: SearchQuery, exact: bool, pruned: PrunedQuery | None) -> sql.Statement:
        return sql.search(
            self._tables,
            query,
            None if query.vector is None else as_array(query.vector),
            now=query.now or utc_now(),
            exact=exact,
            max_term_share=self._max_term_share,
            text_scan_limit=self._text_scan_limit,
            pruned=pruned,
        )

    def _ranks(self, query: SearchQuery, exact: bool) -> list[tuple[Any, ...]]:
        """One retriever's rank-only rows (``query`` has a vector or a text, not both)."""
        vector = query.vector is not None

        def leg(pruned: PrunedQuery | None) -> sql.Statement:
            return search_sql.leg(
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
