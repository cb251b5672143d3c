"""Word counts cached per scope, and the pruned words of one search read through them.

Counting a scope's words inside every search cost more than the rest of the text search, yet
the counts barely move from one search to the next. So the store counts every word of the sample
once (:func:`.fulltext.sample_word_counts`), keeps the counts per scope and filters
(:class:`WordCountCache`), and prunes each query in Python (:func:`.fulltext.prune_words`).

Counts go stale only through writes. The store forgets a scope's counts when it writes to it
(every write while the scope's sample is not full, so a small scope's counts stay exact; past
:data:`STALE_WRITES` rows once it is full: a few new rows hardly move a thousand rows' counts),
and after :data:`MAX_AGE_S` seconds whatever happened (other processes write too). Staleness can
only change which words are dropped, never which scope is searched: the counts are read under the
scope's row-level security and kept under its key.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from memstrata.adapters.postgres.fulltext import (
    SCOPE_COUNT_CAP,
    WORD_SAMPLE_ROWS,
    PrunedQuery,
    WordCounts,
    prune_words,
    query_lexemes,
    sample_word_counts,
)
from memstrata.adapters.postgres.retriever_statements import search_filters
from memstrata.adapters.postgres.steps import Execute, Steps, drive
from memstrata.adapters.postgres.tables import Tables
from memstrata.schemas import SearchQuery

__all__ = [
    "MAX_AGE_S",
    "STALE_WRITES",
    "WordCountCache",
    "cached_scope_rows",
    "pruned_query_words",
    "pruned_words_steps",
]

STALE_WRITES = WORD_SAMPLE_ROWS // 100
"""Rows written to a scope whose sample is full before its cached counts are recounted (1%)."""

MAX_AGE_S = 60.0
"""Cached counts are recounted after this many seconds (bounds staleness from other writers)."""

MAX_SCOPES = 1024
"""Scopes whose counts one store keeps (least recently used dropped first)."""


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
    """:func:`pruned_words_steps` run on ``conn`` (a connection inside the transaction of
    ``query``'s scope, row-level security on)."""
    return drive(conn, pruned_words_steps(cache, t, query, max_term_share=max_term_share, lexemes=lexemes))


def pruned_words_steps(
    cache: WordCountCache,
    t: Tables,
    query: SearchQuery,
    *,
    max_term_share: float,
    lexemes: Sequence[str] | None = None,
) -> Steps[PrunedQuery]:
    """The tsqueries of ``query``'s text side (see :func:`.fulltext.prune_words`), as steps run
    inside the transaction of ``query``'s scope.

    Args:
        cache: the store's word counts.
        t: the store's tables.
        query: a search with a text.
        max_term_share: see :class:`~memstrata.adapters.postgres.store.PostgresEpisodeStore`.
        lexemes: the text's lexemes if the caller has them already (:func:`.fulltext.query_lexemes`);
            else they are computed here (one more round trip).
    """
    where, params = search_filters(query, "e")
    owner = (query.scope.user_id, query.scope.agent_id)
    filters = _filters_key(params)
    if lexemes is None:
        rows = yield Execute((query_lexemes(), {"text": query.text}))
        lexemes = rows[0][0] if rows else []
    counts = cache.get(owner, filters)
    if counts is None:
        tally = cache.tally(owner)  # before the statement's snapshot (read committed)
        rows = yield Execute(
            (
                sample_word_counts(t, where),
                {**params, "word_sample_rows": WORD_SAMPLE_ROWS, "scope_count_cap": SCOPE_COUNT_CAP},
            )
        )
        words_rows, words, numbers, scope_rows = rows[0] if rows else (0, [], [], 0)
        counts = cache.keep(
            owner, filters, tally, int(words_rows), dict(zip(words, numbers, strict=True)), int(scope_rows)
        )
    return prune_words(lexemes, counts, max_term_share)


def cached_scope_rows(cache: WordCountCache, query: SearchQuery) -> int | None:
    """The rows of ``query``'s scope under its filters, as last counted with their words (up to
    :data:`.fulltext.SCOPE_COUNT_CAP`); None if they are not counted or their counts are stale."""
    _, params = search_filters(query, "e")
    counts = cache.get((query.scope.user_id, query.scope.agent_id), _filters_key(params))
    return None if counts is None else counts.scope_rows


Owner = tuple[str, str]
"""``(user_id, agent_id)``: the unit that writes invalidate."""

_REWRITTEN = 1 << 40
"""What an update or a delete adds to a scope's tally of written rows: its counts are stale."""


@dataclass
class _Scope:
    written: int = 0
    """Rows written so far (the tally counted sections are measured against)."""
    sections: dict[Hashable, WordCounts] = field(default_factory=dict)


class WordCountCache:
    """Word counts per scope and search filters, shared by a store's threads.

    Args:
        max_age_s: counts older than this are recounted.
        stale_writes: rows written to a scope with a full sample before its counts are recounted.
        max_scopes: scopes kept (least recently used dropped first).
        clock: seconds, monotonic (injectable for tests).

    Counting is read under a snapshot: take :meth:`tally` before the transaction that counts, and
    hand it to :meth:`keep`, so that a write noted meanwhile (:meth:`wrote`) counts against them.
    """

    def __init__(
        self,
        *,
        max_age_s: float = MAX_AGE_S,
        stale_writes: int = STALE_WRITES,
        max_scopes: int = MAX_SCOPES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_age_s = max_age_s
        self._stale_writes = stale_writes
        self._max_scopes = max_scopes
        self._clock = clock
        self._lock = threading.Lock()
        self._scopes: OrderedDict[Owner, _Scope] = OrderedDict()

    def _scope(self, owner: Owner) -> _Scope:
        scope = self._scopes.get(owner)
        if scope is None:
            scope = self._scopes[owner] = _Scope()
            while len(self._scopes) > self._max_scopes:
                self._scopes.popitem(last=False)
        self._scopes.move_to_end(owner)
        return scope

    def get(self, owner: Owner, filters: Hashable) -> WordCounts | None:
        """The fresh counts of ``owner``'s rows under ``filters``, else None."""
        with self._lock:
            scope = self._scopes.get(owner)
            counts = None if scope is None else scope.sections.get(filters)
            if scope is None or counts is None:
                return None
            allowed = self._stale_writes if counts.full else 0
            if (
                self._clock() - counts.counted_at > self._max_age_s
                or scope.written - counts.written > allowed
            ):
                del scope.sections[filters]
                return None
            self._scopes.move_to_end(owner)
            return counts

    def tally(self, owner: Owner) -> int:
        """Rows written to ``owner``'s scope so far: take it before counting (see :meth:`keep`)."""
        with self._lock:
            return self._scope(owner).written

    def keep(
        self,
        owner: Owner,
        filters: Hashable,
        tally: int,
        rows: int,
        counts: Mapping[str, int],
        scope_rows: int = 0,
    ) -> WordCounts:
        """Keep counts read after :meth:`tally` returned ``tally``; returns them."""
        entry = WordCounts(
            rows=rows, counts=counts, counted_at=self._clock(), written=tally, scope_rows=scope_rows
        )
        with self._lock:
            scope = self._scope(owner)
            if scope.written >= tally:  # else the scope was dropped meanwhile: its writes are unknown
                scope.sections[filters] = entry
        return entry

    def wrote(self, owner: Owner, rows: int | None = None) -> None:
        """Note rows written to ``owner``'s scope (None: rows updated or deleted)."""
        with self._lock:
            scope = self._scopes.get(owner)
            if scope is not None:
                scope.written += _REWRITTEN if rows is None else rows

    def forget_user(self, user_id: str) -> None:
        """Drop every count kept for ``user_id``'s scopes (part of erasing the user)."""
        with self._lock:
            for owner in [o for o in self._scopes if o[0] == user_id]:
                del self._scopes[owner]
