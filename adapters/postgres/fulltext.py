"""Full-text query planning: which of a query's words the text search uses.

A question shares some word with a large share of any conversation (a name, "go"), and ranking
every such match costs time in proportion and ranks by words that say little. Words are taken
rarest first, by the share of the scope's newest :data:`WORD_SAMPLE_ROWS` rows that hold each,
while their summed share stays within ``max_term_share``: a cheap inverse document frequency
measured where the search happens (table-wide ``pg_stats`` depend on every other user's rows).
This module holds the pure part: the SQL that counts a scope's words (:func:`sample_word_counts`)
and the pruning of one query with those counts (:func:`prune_words`). The store counts once and
keeps the counts per scope (:mod:`.word_count_cache`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from memstrata.adapters.postgres.tables import TS_CONFIG, Tables

__all__ = [
    "PARTIAL_MATCH_ROWS",
    "SCOPE_COUNT_CAP",
    "WORD_SAMPLE_ROWS",
    "PrunedQuery",
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
    """The scope's tally of written rows when they were counted (see
    :class:`.word_count_cache.WordCountCache`)."""
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
    ``max_term_share`` of the counted rows (a test checks it against the same pruning in SQL).

    Args:
        lexemes: the query's distinct lexemes sorted by the server's collation (ties in
            frequency keep this order, as ``ORDER BY freq, lexeme`` does in SQL).
        counts: the scope's word counts.
        max_term_share: the share of the counted rows the kept words may match in sum.

    Returns:
        The tsquery texts (floating-point sums in the order SQL's window sum takes them).
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
