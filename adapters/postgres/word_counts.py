"""Which query words the full-text search uses, from word counts cached per scope.

The text search drops the query's words that are common in the searched rows (see
:func:`.search_sql.pruned_tsquery`, which counts them in the scope's newest
:data:`WORD_SAMPLE_ROWS` rows inside every search). Counting costs more than the rest of the text
search at 100k episodes (~5 ms of 12), yet the counts barely move from one search to the next.
So the store counts every word of the sample once (:func:`sample_word_counts`), keeps the counts
per scope and filters (:class:`WordCountCache`), and prunes each query in Python
(:func:`prune_words`) exactly as the SQL does: same counts, same order, same tsquery text.

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

from memstrata.adapters.postgres.tables import TS_CONFIG, Tables

__all__ = [
    "MAX_AGE_S",
    "STALE_WRITES",
    "WORD_SAMPLE_ROWS",
    "PrunedQuery",
    "WordCountCache",
    "WordCounts",
    "prune_words",
    "query_lexemes",
    "sample_word_counts",
]

WORD_SAMPLE_ROWS = 1000
"""The newest rows of the searched scope in which query words are counted. A whole LoCoMo
conversation (up to ~700 turns) fits, so there the counts are exact; in a larger scope they are
the words' frequencies in its recent rows. Counting through the GIN index instead materializes
every match of a common word in the whole table (1.6 ms per word at 100k episodes)."""

STALE_WRITES = WORD_SAMPLE_ROWS // 100
"""Rows written to a scope whose sample is full before its cached counts are recounted (1%)."""

MAX_AGE_S = 60.0
"""Cached counts are recounted after this many seconds (bounds staleness from other writers)."""

MAX_SCOPES = 1024
"""Scopes whose counts one store keeps (least recently used dropped first)."""


@dataclass(frozen=True)
class PrunedQuery:
    """The text side's tsqueries, as tsquery input text (see :func:`prune_words`)."""

    q: str
    """Any kept word."""
    q_all: str
    """Every kept word."""
    words: int
    """How many words were kept."""
    q_fallback: str
    """The least common dropped word (searched only when the kept words match nothing)."""


@dataclass(frozen=True)
class WordCounts:
    """Document counts of every word in a scope's newest rows, when they were counted."""

    rows: int
    """Rows counted (at most :data:`WORD_SAMPLE_ROWS`)."""
    counts: Mapping[str, int]
    counted_at: float
    written: int = 0
    """The scope's tally of written rows when they were counted (see :class:`WordCountCache`)."""

    @property
    def full(self) -> bool:
        return self.rows >= WORD_SAMPLE_ROWS


def _quoted(lexeme: str) -> str:
    """A lexeme as tsquery input: quoted, backslashes and single quotes doubled."""
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


def prune_words(lexemes: Sequence[str], counts: WordCounts, max_term_share: float) -> PrunedQuery:
    """Keep the query's words rarest first while their summed frequency stays within
    ``max_term_share`` of the counted rows: :func:`.search_sql.pruned_tsquery` in Python.

    Args:
        lexemes: the query's distinct lexemes sorted by the server's collation (ties in
            frequency keep this order, as ``ORDER BY freq, lexeme`` does in SQL).
        counts: the scope's word counts.
        max_term_share: the share of the counted rows the kept words may match in sum.

    Returns:
        The same tsquery texts the SQL builds (floating-point sums in the same order).
    """
    rows = max(1, counts.rows)
    freqs = [counts.counts.get(lexeme, 0) / rows for lexeme in lexemes]
    order = sorted(range(len(lexemes)), key=freqs.__getitem__)  # stable: collation breaks ties
    kept: list[str] = []
    dropped: list[str] = []
    cum = 0.0
    for i in order:
        cum += freqs[i]
        (kept if cum <= max_term_share else dropped).append(_quoted(lexemes[i]))
    return PrunedQuery(
        q=" | ".join(kept), q_all=" & ".join(kept), words=len(kept), q_fallback=dropped[0] if dropped else ""
    )


def query_lexemes() -> str:
    """SQL: the distinct lexemes of ``%(text)s``, sorted by the server's collation (one row, one array)."""
    return (
        "SELECT coalesce(array_agg(l.lexeme ORDER BY l.lexeme), CAST('{}' AS text[])) "
        f"FROM unnest(tsvector_to_array(to_tsvector('{TS_CONFIG}', %(text)s))) AS l(lexeme)"
    )


def sample_word_counts(t: Tables, where: Sequence[str]) -> str:
    """SQL: one row ``(rows, lexemes, counts)``: how many rows the sample holds (the scope's newest
    ``%(word_sample_rows)s`` rows matching ``where``, alias ``e``), and in how many of them each
    word occurs."""
    return f"""WITH ws AS MATERIALIZED (SELECT e.tsv FROM {t.episodes} e WHERE {" AND ".join(where)}
                            ORDER BY e.seq DESC LIMIT %(word_sample_rows)s)
SELECT (SELECT count(*) FROM ws), coalesce(array_agg(c.lexeme), CAST('{{}}' AS text[])),
       coalesce(array_agg(c.n), CAST('{{}}' AS bigint[]))
FROM (SELECT l.lexeme, count(*) AS n FROM ws, unnest(tsvector_to_array(ws.tsv)) AS l(lexeme)
      GROUP BY l.lexeme) c"""


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
        self, owner: Owner, filters: Hashable, tally: int, rows: int, counts: Mapping[str, int]
    ) -> WordCounts:
        """Keep counts read after :meth:`tally` returned ``tally``; returns them."""
        entry = WordCounts(rows=rows, counts=counts, counted_at=self._clock(), written=tally)
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
