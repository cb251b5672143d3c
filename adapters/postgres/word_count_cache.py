"""The full-text side's words for one search: the query's lexemes, pruned with the scope's word
counts from the store's cache (counted in the search's transaction when stale; see
:mod:`.word_counts`)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import psycopg
from memstrata.adapters.postgres.search_sql import search_filters
from memstrata.adapters.postgres.tables import Tables
from memstrata.adapters.postgres.word_counts import (
    SCOPE_COUNT_CAP,
    WORD_SAMPLE_ROWS,
    PrunedQuery,
    WordCountCache,
    prune_words,
    query_lexemes,
    sample_word_counts,
)
from memstrata.schemas import SearchQuery

__all__ = ["cached_scope_rows", "pruned_query_words"]


def _filters_key(params: dict[str, Any]) -> Hashable:
    return tuple(
        (name, tuple(value) if isinstance(value, list) else value)
        for name, value in sorted(params.items())
        if name not in ("user_id", "agent_id")
    )


def pruned_query_words(
    conn: psycopg.Connection[Any],
    cache: WordCountCache,
    t: Tables,
    query: SearchQuery,
    *,
    max_term_share: float,
    lexemes: Sequence[str] | None = None,
) -> PrunedQuery:
    """The tsqueries of ``query``'s text side (see :func:`.word_counts.prune_words`).

    Args:
        conn: a connection inside the transaction of ``query``'s scope (row-level security on).
        cache: the store's word counts.
        t: the store's tables.
        query: a search with a text.
        max_term_share: see :class:`~memstrata.adapters.postgres.store.PostgresEpisodeStore`.
        lexemes: the text's lexemes if the caller has them already (:func:`.word_counts.query_lexemes`);
            else they are computed here (one more round trip).
    """
    where, params = search_filters(query, "e")
    owner = (query.scope.user_id, query.scope.agent_id)
    filters = _filters_key(params)
    if lexemes is None:
        row = conn.execute(query_lexemes(), {"text": query.text}).fetchone()
        lexemes = row[0] if row else []
    counts = cache.get(owner, filters)
    if counts is None:
        tally = cache.tally(owner)  # before the statement's snapshot (read committed)
        sample = conn.execute(
            sample_word_counts(t, where),
            {**params, "word_sample_rows": WORD_SAMPLE_ROWS, "scope_count_cap": SCOPE_COUNT_CAP},
        ).fetchone()
        rows, words, numbers, scope_rows = sample if sample else (0, [], [], 0)
        counts = cache.keep(
            owner, filters, tally, int(rows), dict(zip(words, numbers, strict=True)), int(scope_rows)
        )
    return prune_words(lexemes, counts, max_term_share)


def cached_scope_rows(cache: WordCountCache, query: SearchQuery) -> int | None:
    """The rows of ``query``'s scope under its filters, as last counted with their words (up to
    :data:`.word_counts.SCOPE_COUNT_CAP`); None if they are not counted or their counts are stale."""
    _, params = search_filters(query, "e")
    counts = cache.get((query.scope.user_id, query.scope.agent_id), _filters_key(params))
    return None if counts is None else counts.scope_rows
