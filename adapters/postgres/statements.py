"""The SQL of the Postgres episode store: pure builders returning ``(sql, params)``.

Nothing here touches a connection, so every statement can be unit-tested without a database.
Identifiers (the schema name) are validated, then quoted into the text; values are always
parameters. Every statement that reads or writes episodes is filtered by ``user_id`` (the
isolation and future sharding / row-level-security key) and ``agent_id``.

This module holds the writes and plain reads; the names every statement shares come from
:mod:`.tables` (re-exported here), the retrievers' statements from :mod:`.retriever_statements`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from memstrata.adapters.postgres.tables import (
    COLUMNS,
    READ_COLUMNS,
    TS_CONFIG,
    WRITE_COLUMNS,
    Statement,
    Tables,
    check_identifier,
    column_list,
    owner_params,
)
from memstrata.schemas import EpisodeKind, ScanOrder, Scope

__all__ = [
    "COLUMNS",
    "READ_COLUMNS",
    "TS_CONFIG",
    "WRITE_COLUMNS",
    "Statement",
    "Tables",
    "check_identifier",
]


# ---------------------------------------------------------------------------------------------
# Writes


def insert_values(t: Tables) -> str:
    """One row per execution (for ``executemany``), skipping an idempotency key already stored.

    Parameters are positional, in ``WRITE_COLUMNS`` order. Returns ``id, seq`` of inserted rows.
    """
    placeholders = ", ".join(["%s"] * len(WRITE_COLUMNS))
    return (
        f"INSERT INTO {t.episodes} ({column_list(WRITE_COLUMNS)}) VALUES ({placeholders}) "
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
    return f"COPY {STAGING} (ord, {column_list(WRITE_COLUMNS)}) FROM STDIN (FORMAT BINARY)"


def insert_from_staging(t: Tables, scope: Scope) -> Statement:
    """Move the staged rows of one scope in batch order (so ``seq`` follows it); returns ``id, seq``
    of new rows. One scope per statement: row-level security admits only the transaction's scope."""
    return (
        f"INSERT INTO {t.episodes} ({column_list(WRITE_COLUMNS)}) "
        f"SELECT {column_list(WRITE_COLUMNS)} FROM {STAGING} "
        "WHERE user_id = %(user_id)s AND agent_id = %(agent_id)s ORDER BY ord "
        f"{_ON_KEY_CONFLICT} RETURNING id, seq",
        owner_params(scope),
    )


def select_by_keys(t: Tables, keys: Sequence[tuple[str, str, str]]) -> Statement:
    """Stored episodes holding these ``(user_id, agent_id, idempotency_key)`` triples."""
    users, agents, idempotency_keys = (
        (list(column) for column in zip(*keys, strict=True)) if keys else ([], [], [])
    )
    return (
        f"SELECT {column_list(READ_COLUMNS, 'e.')} FROM {t.episodes} e "
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
        {"summary_id": summary_id, "ids": list(covered), **owner_params(scope)},
    )


def forget(t: Tables, scope: Scope, ids: Sequence[uuid.UUID] | None) -> Statement:
    """Delete episodes (and, transitively, whatever covers them); clear dangling ``superseded_by``.

    Returns one row: the number of deleted episodes.
    """
    if ids is None:
        return (
            f"WITH gone AS (DELETE FROM {t.episodes} WHERE user_id = %(user_id)s AND agent_id = %(agent_id)s "
            "RETURNING 1) SELECT count(*) FROM gone",
            owner_params(scope),
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
    return sql.strip(), {"ids": list(ids), **owner_params(scope)}


# ---------------------------------------------------------------------------------------------
# Reads


def get(t: Tables, scope: Scope, ids: Sequence[uuid.UUID]) -> Statement:
    return (
        f"SELECT {column_list(READ_COLUMNS)} FROM {t.episodes} "
        "WHERE user_id = %(user_id)s AND agent_id = %(agent_id)s AND id = ANY(%(ids)s)",
        {"ids": list(ids), **owner_params(scope)},
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
    params = owner_params(scope)
    if kinds:
        where.append("kind = ANY(%(kinds)s)")
        params["kinds"] = [k.value for k in kinds]
    if session_id is not None:
        where.append("session_id = %(session_id)s")
        params["session_id"] = session_id
    if only_current:
        where.append("superseded_by IS NULL")
    sql = f"SELECT {column_list(READ_COLUMNS)} FROM {t.episodes} WHERE {' AND '.join(where)} "
    sql += "ORDER BY seq DESC" if order == "newest" else "ORDER BY seq"
    if limit is not None:
        sql += " LIMIT %(limit)s"
        params["limit"] = limit
    return sql, params


def vector_dimension(t: Tables) -> Statement:
    """The declared dimension of the ``embedding`` column (None if the table does not exist)."""
    return (
        "SELECT a.atttypmod FROM pg_attribute a "
        "WHERE a.attrelid = to_regclass(%(table)s) AND a.attname = 'embedding' AND NOT a.attisdropped",
        {"table": t.episodes},
    )
