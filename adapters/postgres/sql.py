"""The SQL of the Postgres episode store: pure builders returning ``(sql, params)``.

Nothing here touches a connection, so every statement can be unit-tested without a database.
Identifiers (the schema name) are validated, then quoted into the text; values are always
parameters. Every statement that reads or writes episodes is filtered by ``user_id`` (the
isolation and future sharding / row-level-security key) and ``agent_id``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from memstrata.errors import ConfigError
from memstrata.fusion import SECONDS_PER_DAY
from memstrata.schemas import EpisodeKind, ScanOrder, Scope, SearchQuery

__all__ = [
    "COLUMNS",
    "TS_CONFIG",
    "Statement",
    "Tables",
    "check_identifier",
]

Statement = tuple[str, dict[str, Any]]

TS_CONFIG = "english"
"""Text-search configuration of the stored ``tsv`` column and of every query (see the report:
'english' stems and drops stop words, which helps questions match statements)."""

DEFAULT_MAX_TERM_SHARE = 0.1
"""Query words are used rarest first while their summed frequency stays within this share of the
searched rows (one user's and agent's). On LoCoMo dev3 (3 conversations) 0.05 to 0.2 gave hybrid
evidence recall within 3 points of each other on every conversation; 0.02 cost 4 points."""
DEFAULT_TEXT_SCAN_LIMIT = 300
"""Most full-text matches ranked per query (ranking costs ~10 us a row: at 100k episodes, 1,000
rows took 11 ms). A LoCoMo conversation's kept words match far fewer."""

RANK = "ts_rank"
"""Full-text ranking function. ``ts_rank`` rather than ``ts_rank_cd``: on LoCoMo it found as much
evidence (text recall@10 0.61 vs 0.60) at about half the CPU per ranked row."""

COLUMNS = (
    "user_id",
    "agent_id",
    "session_id",
    "id",
    "kind",
    "text",
    "role",
    "speaker",
    "occurred_at",
    "created_at",
    "importance",
    "level",
    "covers",
    "superseded_by",
    "metadata",
    "idempotency_key",
)
"""Episode columns in the order :mod:`.rows` reads and writes them (``embedding`` follows on write,
``seq`` on read)."""

WRITE_COLUMNS = (*COLUMNS, "embedding")
READ_COLUMNS = (*COLUMNS, "seq")

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def check_identifier(name: str) -> str:
    """Return ``name`` if it is a plain lower-case SQL identifier (safe to quote into SQL).

    Raises:
        ConfigError: anything else.
    """
    if not _IDENTIFIER.fullmatch(name):
        raise ConfigError(
            f"schema name {name!r} is not a plain identifier: use 1-63 lower-case letters, digits or "
            "underscores, not starting with a digit"
        )
    return name


@dataclass(frozen=True)
class Tables:
    """Qualified names of the store's tables inside one schema."""

    schema: str

    def __post_init__(self) -> None:
        check_identifier(self.schema)

    @property
    def episodes(self) -> str:
        return f'"{self.schema}".episodes'

    @property
    def migrations(self) -> str:
        return f'"{self.schema}".schema_migrations'


def _list(columns: Sequence[str], prefix: str = "") -> str:
    return ", ".join(prefix + c for c in columns)


# ---------------------------------------------------------------------------------------------
# Writes


def insert_values(t: Tables) -> str:
    """One row per execution (for ``executemany``), skipping an idempotency key already stored.

    Parameters are positional, in ``WRITE_COLUMNS`` order. Returns ``id, seq`` of inserted rows.
    """
    placeholders = ", ".join(["%s"] * len(WRITE_COLUMNS))
    return (
        f"INSERT INTO {t.episodes} ({_list(WRITE_COLUMNS)}) VALUES ({placeholders}) "
        f"{_ON_KEY_CONFLICT} RETURNING id, seq"
    )


_ON_KEY_CONFLICT = (
    "ON CONFLICT (user_id, agent_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
)
STAGING = "memstrata_put_staging"


def create_staging() -> str:
    """A session-local staging table for binary COPY, emptied at every commit (dimension-free, so
    stores of different dimensions can share a connection; the target column checks it)."""
    return (
        f"CREATE TEMP TABLE IF NOT EXISTS {STAGING} (ord int NOT NULL, user_id text, agent_id text, "
        "session_id text, id uuid, kind text, text text, role text, speaker text, occurred_at timestamptz, "
        "created_at timestamptz, importance float8, level smallint, covers uuid[], superseded_by uuid, "
        "metadata jsonb, idempotency_key text, embedding vector) ON COMMIT DELETE ROWS"
    )


COPY_TYPES = (
    "int4", "text", "text", "text", "uuid", "text", "text", "text", "text", "timestamptz",
    "timestamptz", "float8", "int2", "uuid[]", "uuid", "jsonb", "text", "vector",
)  # fmt: skip
"""Types of the staging columns, for ``Copy.set_types`` (binary COPY needs them)."""


def copy_staging() -> str:
    return f"COPY {STAGING} (ord, {_list(WRITE_COLUMNS)}) FROM STDIN (FORMAT BINARY)"


def insert_from_staging(t: Tables, scope: Scope) -> Statement:
    """Move the staged rows of one scope in batch order (so ``seq`` follows it); returns ``id, seq``
    of new rows. One scope per statement: row-level security admits only the transaction's scope."""
    return (
        f"INSERT INTO {t.episodes} ({_list(WRITE_COLUMNS)}) "
        f"SELECT {_list(WRITE_COLUMNS)} FROM {STAGING} "
        "WHERE user_id = %(user_id)s AND agent_id = %(agent_id)s ORDER BY ord "
        f"{_ON_KEY_CONFLICT} RETURNING id, seq",
        _owner(scope),
    )


def select_by_keys(t: Tables, keys: Sequence[tuple[str, str, str]]) -> Statement:
    """Stored episodes holding these ``(user_id, agent_id, idempotency_key)`` triples."""
    users, agents, idempotency_keys = (
        (list(column) for column in zip(*keys, strict=True)) if keys else ([], [], [])
    )
    return (
        f"SELECT {_list(READ_COLUMNS, 'e.')} FROM {t.episodes} e "
        "JOIN unnest(%(user_ids)s::text[], %(agent_ids)s::text[], %(keys)s::text[]) AS k(user_id, agent_id, key) "
        "ON e.user_id = k.user_id AND e.agent_id = k.agent_id AND e.idempotency_key = k.key",
        {"user_ids": users, "agent_ids": agents, "keys": idempotency_keys},
    )


def lock_scope(t: Tables, scope: Scope) -> Statement:
    """Take (until commit) the write lock of one scope's episodes. Writes to a scope hold it, so
    their ``seq`` follows commit order: a reader never sees a turn before an older one of the
    same scope commits, and a fold of the oldest current turns covers a contiguous run."""
    return (
        "SELECT pg_advisory_xact_lock(hashtextextended(%(key)s, 0))",
        {"key": f"memstrata\n{t.schema}\n{scope.user_id}\n{scope.agent_id}"},
    )


def supersede(t: Tables, scope: Scope, covered: Sequence[uuid.UUID], summary_id: uuid.UUID) -> Statement:
    """Mark current covered episodes as superseded; returns the ids it marked."""
    return (
        f"UPDATE {t.episodes} SET superseded_by = %(summary_id)s "
        "WHERE user_id = %(user_id)s AND agent_id = %(agent_id)s AND id = ANY(%(ids)s) "
        "AND superseded_by IS NULL RETURNING id",
        {"summary_id": summary_id, "ids": list(covered), **_owner(scope)},
    )


def forget(t: Tables, scope: Scope, ids: Sequence[uuid.UUID] | None) -> Statement:
    """Delete episodes (and, transitively, whatever covers them); clear dangling ``superseded_by``.

    Returns one row: the number of deleted episodes.
    """
    if ids is None:
        return (
            f"WITH gone AS (DELETE FROM {t.episodes} WHERE user_id = %(user_id)s AND agent_id = %(agent_id)s "
            "RETURNING 1) SELECT count(*) FROM gone",
            _owner(scope),
        )
    sql = f"""
WITH RECURSIVE doomed(id) AS (
    SELECT id FROM {t.episodes}
    WHERE user_id = %(user_id)s AND agent_id = %(agent_id)s AND id = ANY(%(ids)s)
  UNION
    SELECT d.id FROM {t.episodes} d JOIN doomed ON doomed.id = ANY(d.covers)
    WHERE d.user_id = %(user_id)s AND d.agent_id = %(agent_id)s
),
gone AS (
    DELETE FROM {t.episodes} e USING doomed
    WHERE e.user_id = %(user_id)s AND e.id = doomed.id RETURNING e.id
),
orphans AS (
    UPDATE {t.episodes} s SET superseded_by = NULL
    WHERE s.user_id = %(user_id)s AND s.agent_id = %(agent_id)s
      AND s.superseded_by IN (SELECT id FROM doomed) AND s.id NOT IN (SELECT id FROM doomed)
)
SELECT count(*) FROM gone"""
    return sql.strip(), {"ids": list(ids), **_owner(scope)}


# ---------------------------------------------------------------------------------------------
# Reads


def _owner(scope: Scope) -> dict[str, Any]:
    return {"user_id": scope.user_id, "agent_id": scope.agent_id}


def get(t: Tables, scope: Scope, ids: Sequence[uuid.UUID]) -> Statement:
    return (
        f"SELECT {_list(READ_COLUMNS)} FROM {t.episodes} "
        "WHERE user_id = %(user_id)s AND agent_id = %(agent_id)s AND id = ANY(%(ids)s)",
        {"ids": list(ids), **_owner(scope)},
    )


def scan(
    t: Tables,
    scope: Scope,
    *,
    kinds: Sequence[EpisodeKind] = (),
    session_id: str | None = None,
    only_current: bool = False,
    order: ScanOrder = "oldest",
    limit: int | None = None,
) -> Statement:
    where = ["user_id = %(user_id)s", "agent_id = %(agent_id)s"]
    params = _owner(scope)
    if kinds:
        where.append("kind = ANY(%(kinds)s)")
        params["kinds"] = [k.value for k in kinds]
    if session_id is not None:
        where.append("session_id = %(session_id)s")
        params["session_id"] = session_id
    if only_current:
        where.append("superseded_by IS NULL")
    sql = f"SELECT {_list(READ_COLUMNS)} FROM {t.episodes} WHERE {' AND '.join(where)} "
    sql += "ORDER BY seq DESC" if order == "newest" else "ORDER BY seq"
    if limit is not None:
        sql += " LIMIT %(limit)s"
        params["limit"] = limit
    return sql, params


def _search_filters(query: SearchQuery, alias: str) -> tuple[list[str], dict[str, Any]]:
    f = query.filters
    a = alias + "."
    where = [f"{a}user_id = %(user_id)s", f"{a}agent_id = %(agent_id)s"]
    params = _owner(query.scope)
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


# A lexeme quoted for tsquery input: backslashes and single quotes doubled.
_QUOTED_LEXEME = "'''' || replace(replace(w.lexeme, '\\', '\\\\'), '''', '''''') || ''''"


WORD_SAMPLE_ROWS = 1000
"""The newest rows of the searched scope in which query words are counted. A whole LoCoMo
conversation (up to ~700 turns) fits, so there the counts are exact; in a larger scope they are
the words' frequencies in its recent rows. Counting through the GIN index instead materializes
every match of a common word in the whole table (1.6 ms per word at 100k episodes)."""


def pruned_tsquery(t: Tables, where: Sequence[str]) -> str:
    """SQL for the text side's tsqueries: ``q`` (any kept word), ``q_all`` (every kept word), and
    ``q_fallback`` (the least common dropped word), plus ``words`` (how many were kept).

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
    ``max_term_share``, ``word_sample_rows`` and the filters' own.
    """
    kept = "FILTER (WHERE w.cum <= %(max_term_share)s)"
    scope = " AND ".join(where)
    lexemes = f"tsvector_to_array(to_tsvector('{TS_CONFIG}', %(text)s))"
    return f"""WITH ws AS MATERIALIZED (SELECT e.tsv FROM {t.episodes} e WHERE {scope}
                            ORDER BY e.seq DESC LIMIT %(word_sample_rows)s)
SELECT coalesce(CAST(string_agg({_QUOTED_LEXEME}, ' | ') {kept} AS tsquery), CAST('' AS tsquery)) AS q,
       coalesce(CAST(string_agg({_QUOTED_LEXEME}, ' & ') {kept} AS tsquery), CAST('' AS tsquery)) AS q_all,
       count(*) {kept} AS words,
       coalesce(CAST((array_agg({_QUOTED_LEXEME} ORDER BY w.n) FILTER (WHERE w.cum > %(max_term_share)s))[1]
                     AS tsquery), CAST('' AS tsquery)) AS q_fallback
    FROM (SELECT w.lexeme,
                 sum(w.freq) OVER (ORDER BY w.freq, w.lexeme) AS cum,
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
    ranks_only: bool = False,
) -> Statement:
    """Hybrid search: the top ``query.candidates`` of each retriever, fused by reciprocal rank.

    Vector side: ordered by cosine distance (``<=>``) so the HNSW index serves it; iterative
    scans keep filling the limit when the scope filter drops rows. ``exact=True`` orders by an
    expression the index cannot serve: the exact ranking, for recall measurements.

    Text side: the query's words, the most common in the searched rows dropped
    (:func:`pruned_tsquery`), ORed; the matching rows are ranked by ``ts_rank``. At most
    ``text_scan_limit`` rows matching any kept word are ranked, in storage order (this bounds
    the cost when a word is common), plus up to as many matching every kept word (so the best
    matches are not lost to the bound).

    The fused candidates drive the final join: one primary-key lookup each (the ``OFFSET 0``
    fence keeps the planner from scanning the whole scope instead, which it prefers when a new
    user's rows are not in the table's statistics yet: measured 43 ms vs 10 ms on 419 turns).

    Ties break by write order. The score is ``(1/(rrf_k + vector_rank) + 1/(rrf_k + text_rank))
    * recency``, with recency as in :func:`memstrata.fusion.recency_weight`.

    Rows: ``READ_COLUMNS`` (only ``id, seq`` when ``ranks_only``) then ``vector_rank,
    vector_distance, text_rank, recency, score``.
    """
    where, params = _search_filters(query, "e")
    params.update(candidates=query.candidates, rrf_k=query.rrf_k, k=query.k)
    ctes = []
    if vector is not None:
        params["vector"] = vector
        distance = "(e.embedding <=> %(vector)s)"
        order = f"{distance} + 0" if exact else distance
        ctes.append(
            f"v AS MATERIALIZED (SELECT e.id, e.seq, {distance} AS distance FROM {t.episodes} e "
            f"WHERE {' AND '.join(where)} ORDER BY {order} LIMIT %(candidates)s)"
        )
        ctes.append("vr AS (SELECT id, distance, row_number() OVER (ORDER BY distance, seq) AS rank FROM v)")
    else:
        ctes.append(
            "vr AS (SELECT NULL::uuid AS id, NULL::float8 AS distance, NULL::bigint AS rank WHERE false)"
        )
    if query.text.strip():
        params.update(
            text=query.text,
            max_term_share=max_term_share,
            text_scan_limit=text_scan_limit,
            word_sample_rows=WORD_SAMPLE_ROWS,
        )
        ctes.append(f"tq AS MATERIALIZED ({pruned_tsquery(t, where)})")

        def matches(q: str, condition: str, rank_by: str = "q") -> str:
            return (
                f"SELECT * FROM (SELECT e.id, e.seq, {RANK}(e.tsv, tq.{rank_by}) AS r FROM {t.episodes} e, tq "
                f"WHERE {' AND '.join(where)} AND {condition} AND e.tsv @@ tq.{q} LIMIT %(text_scan_limit)s)"
            )

        ctes.append(  # rows with every kept word first, so a capped scan never misses them
            f"t0 AS MATERIALIZED ({matches('q_all', 'tq.words > 1')} a UNION {matches('q', 'true')} b "
            "ORDER BY r DESC, seq LIMIT %(candidates)s)"
        )
        fallback = matches("q_fallback", "NOT EXISTS (SELECT 1 FROM t0)", rank_by="q_fallback")
        ctes.append(
            f"t AS MATERIALIZED (SELECT * FROM t0 UNION ALL {fallback} c ORDER BY r DESC, seq LIMIT %(candidates)s)"
        )
        ctes.append("tr AS (SELECT id, row_number() OVER (ORDER BY r DESC, seq) AS rank FROM t)")
    else:
        ctes.append("tr AS (SELECT NULL::uuid AS id, NULL::bigint AS rank WHERE false)")
    if query.recency_half_life_days is None:
        recency = "1.0::float8"
    else:
        params.update(now=now, half_life_days=float(query.recency_half_life_days))
        age_days = f"greatest(0, extract(epoch FROM (%(now)s::timestamptz - e.occurred_at))::float8 / {SECONDS_PER_DAY})"
        recency = f"(0.5 + 0.5 * power(2.0::float8, -{age_days} / %(half_life_days)s::float8))"
    sql = f"""
WITH {("," + chr(10)).join(ctes)},
f AS MATERIALIZED (SELECT coalesce(vr.id, tr.id) AS id, vr.rank AS vector_rank, vr.distance, tr.rank AS text_rank
      FROM vr FULL JOIN tr ON vr.id = tr.id)
SELECT {"e.id, e.seq" if ranks_only else _list(READ_COLUMNS, "e.")}, f.vector_rank, f.distance, f.text_rank, s.recency,
       (coalesce(1.0::float8 / (%(rrf_k)s + f.vector_rank), 0) + coalesce(1.0::float8 / (%(rrf_k)s + f.text_rank), 0))
         * s.recency AS score
FROM f,
     LATERAL (SELECT * FROM {t.episodes} e WHERE e.user_id = %(user_id)s AND e.id = f.id OFFSET 0) e,
     LATERAL (SELECT {recency} AS recency) s
ORDER BY score DESC, e.seq DESC
LIMIT %(k)s"""
    return sql.strip(), params


def vector_dimension(t: Tables) -> Statement:
    """The declared dimension of the ``embedding`` column (None if the table does not exist)."""
    return (
        "SELECT a.atttypmod FROM pg_attribute a "
        "WHERE a.attrelid = to_regclass(%(table)s) AND a.attname = 'embedding' AND NOT a.attisdropped",
        {"table": t.episodes},
    )
