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
from dataclasses import dataclass, field, replace

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

SCOPE_COUNT_CAP = 10_000
"""A scope's rows are counted up to this many with its words, when they fill the sample (an
index-only scan: 2.4-5.7 ms at 10,000 rows; a scope under :data:`WORD_SAMPLE_ROWS` rows is
counted by its sample alone)."""

PARTIAL_MATCH_ROWS = 250
"""Rows matching only some kept words are searched among those of the rarest kept words while
these are expected in at most this many rows of the scope (their share of the sample times the
scope's counted rows). The scan of partial matches ranks the first ``text_scan_limit`` in storage
order; in a large scope a question's kept words match thousands of rows, whose bitmap cost
~2.5 ms at 100k episodes, and the rarer words make the better partial matches. A scope of under
2,500 rows never reaches it (the kept words' share is at most ``max_term_share``, 0.1). The
rarest words are taken up to the first one the sample holds, whatever its share."""

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
    q_some: str = ""
    """The kept words among which partial matches are searched (see :data:`PARTIAL_MATCH_ROWS`);
    empty: all of them (``q``)."""
    seen: bool = False
    """Whether some kept word occurs in the counted rows. Then the kept words almost surely match
    something, and a search leaves the fallback's scan out of its statement (planning it cost
    ~0.3 ms at 100k episodes); it runs again with the fallback only if they matched nothing."""
    scope_rows: int = 0
    """The scope's rows under the search filters, as counted with the words (see
    :attr:`WordCounts.scope_rows`)."""

    def params(self) -> dict[str, str]:
        """The statement parameters of these tsqueries."""
        return {
            "q": self.q,
            "q_all": self.q_all,
            "q_some": self.q_some or self.q,
            "q_fallback": self.q_fallback,
        }

    def fallback_missed(self, matched: bool) -> bool:
        """Whether a search whose text side ``matched`` (ranked some row) or not left out a
        fallback that would have run: it must run again with :meth:`with_fallback`."""
        return self.seen and bool(self.q_fallback) and not matched

    def with_fallback(self) -> PrunedQuery:
        """This query with the fallback's scan in the statement."""
        return replace(self, seen=False)


@dataclass(frozen=True)
class WordCounts:
    """Document counts of every word in a scope's newest rows, when they were counted."""

    rows: int
    """Rows counted (at most :data:`WORD_SAMPLE_ROWS`)."""
    counts: Mapping[str, int]
    counted_at: float
    written: int = 0
    """The scope's tally of written rows when they were counted (see :class:`WordCountCache`)."""
    scope_rows: int = 0
    """The scope's rows under the search filters, counted up to :data:`SCOPE_COUNT_CAP`."""

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
    some = 0  # how many of the rarest kept words partial matches are searched among
    cum = 0.0
    seen = False
    for i in order:
        before = cum
        cum += freqs[i]
        if cum <= max_term_share:
            kept.append(_quoted(lexemes[i]))
            seen = seen or freqs[i] > 0
            if before == 0 or cum * counts.scope_rows <= PARTIAL_MATCH_ROWS:
                some = len(kept)  # up to the first word seen in the sample, at least
        else:
            dropped.append(_quoted(lexemes[i]))
    return PrunedQuery(
        q=" | ".join(kept),
        q_all=" & ".join(kept),
        words=len(kept),
        q_fallback=dropped[0] if dropped else "",
        q_some=" | ".join(kept[:some]) if some < len(kept) else "",
        seen=seen,
        scope_rows=counts.scope_rows,
    )


def query_lexemes() -> str:
    """SQL: the distinct lexemes of ``%(text)s``, sorted by the server's collation (one row, one array)."""
    return (
        "SELECT coalesce(array_agg(l.lexeme ORDER BY l.lexeme), CAST('{}' AS text[])) "
        f"FROM unnest(tsvector_to_array(to_tsvector('{TS_CONFIG}', %(text)s))) AS l(lexeme)"
    )


def sample_word_counts(t: Tables, where: Sequence[str]) -> str:
    """SQL: one row ``(rows, lexemes, counts, scope_rows)``: how many rows the sample holds (the
    scope's newest ``%(word_sample_rows)s`` rows matching ``where``, alias ``e``), in how many of
    them each word occurs, and the scope's rows matching ``where`` up to ``%(scope_count_cap)s``
    (counted again only when the sample is full: small scopes are recounted after every write)."""
    scope = " AND ".join(where)
    return f"""WITH ws AS MATERIALIZED (SELECT e.tsv FROM {t.episodes} e WHERE {scope}
                            ORDER BY e.seq DESC LIMIT %(word_sample_rows)s)
SELECT (SELECT count(*) FROM ws), coalesce(array_agg(c.lexeme), CAST('{{}}' AS text[])),
       coalesce(array_agg(c.n), CAST('{{}}' AS bigint[])),
       CASE WHEN (SELECT count(*) FROM ws) < %(word_sample_rows)s THEN (SELECT count(*) FROM ws)
            ELSE (SELECT count(*) FROM (SELECT 1 FROM {t.episodes} e WHERE {scope} LIMIT %(scope_count_cap)s) s)
       END
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
