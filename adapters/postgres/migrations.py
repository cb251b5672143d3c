"""Schema migrations of the Postgres episode store: numbered, append-only, recorded in a table.

Never edit a migration that has shipped: add the next number. ``migrate`` runs every missing
migration in one transaction, under a transaction-level advisory lock, so several processes
calling ``setup()`` at once apply each migration exactly once (and never race on
``CREATE EXTENSION``).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from memstrata.adapters.postgres.api_keys import api_keys_statements
from memstrata.adapters.postgres.security import (
    ensure_indexable_text_match,
    erase_policy_statements,
    rls_statements,
)
from memstrata.adapters.postgres.sql import TS_CONFIG, Tables, vector_dimension
from memstrata.errors import ConfigError
from psycopg import errors as pg_errors

__all__ = ["HNSW_EF_CONSTRUCTION", "HNSW_M", "MIGRATIONS", "Migration", "hnsw_index", "migrate"]

HNSW_M = 16
HNSW_EF_CONSTRUCTION = 128
HNSW_INDEX = "episodes_embedding_hnsw"
# One fixed key for every memstrata schema in a database: setup is rare, and CREATE EXTENSION is
# database-wide anyway.
ADVISORY_LOCK_KEY = zlib.crc32(b"memstrata.migrations")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: Callable[[Tables, int], list[str]]


def hnsw_index(t: Tables, *, m: int = HNSW_M, ef_construction: int = HNSW_EF_CONSTRUCTION) -> str:
    """DDL of the cosine HNSW index on ``embedding`` (also used to rebuild it after a bulk load)."""
    return (
        f"CREATE INDEX IF NOT EXISTS {HNSW_INDEX} ON {t.episodes} USING hnsw (embedding vector_cosine_ops) "
        f"WITH (m = {int(m)}, ef_construction = {int(ef_construction)})"
    )


def _m001_episodes(t: Tables, dimensions: int) -> list[str]:
    return [
        f"""CREATE TABLE {t.episodes} (
    user_id text NOT NULL,
    id uuid NOT NULL,
    agent_id text NOT NULL,
    session_id text NOT NULL,
    seq bigint GENERATED ALWAYS AS IDENTITY,
    kind text NOT NULL CHECK (kind IN ('turn', 'summary', 'fact')),
    text text NOT NULL CHECK (text <> ''),
    role text CHECK (role IN ('system', 'user', 'assistant', 'tool')),
    speaker text,
    occurred_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL,
    importance float8 NOT NULL CHECK (importance BETWEEN 0 AND 1),
    level smallint NOT NULL CHECK (level BETWEEN 0 AND 32),
    covers uuid[] NOT NULL DEFAULT '{{}}',
    superseded_by uuid,
    metadata jsonb NOT NULL DEFAULT '{{}}',
    idempotency_key text,
    embedding vector({int(dimensions)}) NOT NULL,
    tsv tsvector GENERATED ALWAYS AS (to_tsvector('{TS_CONFIG}'::regconfig, text)) STORED,
    PRIMARY KEY (user_id, id)
)""",
        f"CREATE UNIQUE INDEX episodes_idempotency ON {t.episodes} (user_id, agent_id, idempotency_key) "
        "WHERE idempotency_key IS NOT NULL",
        f"CREATE INDEX episodes_scope_seq ON {t.episodes} (user_id, agent_id, seq)",
        # Every text search reads GIN's whole pending list: keep it small (256 kB, not 4 MB).
        # Measured: +2.8 ms per search after 10k unflushed inserts; ingest only 4% slower.
        f"CREATE INDEX episodes_tsv ON {t.episodes} USING gin (tsv) WITH (gin_pending_list_limit = 256)",
        hnsw_index(t),
    ]


def _m003_small_gin_pending_list(t: Tables, dimensions: int) -> list[str]:
    # Every full-text search scans GIN's whole pending list, once per word bitmap (two per
    # search when several words are kept). Measured at 100k episodes: 23 pending pages (184 kB)
    # added 4.5 ms to one bitmap. 64 kB (PostgreSQL's minimum) bounds it to 8 pages; bulk COPY
    # ingest measured 4% slower than at 256 kB. (fastupdate off removes the list: ingest 30% slower.)
    del dimensions
    return [f'ALTER INDEX "{t.schema}".episodes_tsv SET (gin_pending_list_limit = 64)']


def _m004_inline_vectors_and_scan_indexes(t: Tables, dimensions: int) -> list[str]:
    # A 384-d row is ~2.1 kB, over PostgreSQL's 2 kB TOAST threshold: the toaster moved the
    # largest column it may (the vector, storage EXTERNAL) out of line, so every distance
    # computed from the heap (an exact scan of a scope, or the distance of each row an HNSW scan
    # returns) fetched it from the TOAST table. Measured on a LoCoMo scope (419 rows): 68% of
    # the vectors out of line, ~4 us a row. MAIN keeps a vector inline unless the row cannot fit a
    # page any other way; the 4 kB target keeps a typical row whole. (Rows written before this
    # migration keep their layout until rewritten, e.g. by VACUUM FULL.)
    del dimensions
    return [
        f"ALTER TABLE {t.episodes} ALTER COLUMN embedding SET STORAGE MAIN",
        f"ALTER TABLE {t.episodes} SET (toast_tuple_target = 4080)",
        # The recent turns of one session and the current summaries of a scope, without walking
        # the scope's whole history (a new session of a user with 100k episodes read them all).
        f"CREATE INDEX episodes_session_seq ON {t.episodes} (user_id, agent_id, session_id, seq)",
        f"CREATE INDEX episodes_current_summaries ON {t.episodes} (user_id, agent_id, seq) "
        "WHERE kind = 'summary' AND superseded_by IS NULL",
    ]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "episodes", _m001_episodes),
    Migration(2, "row_level_security", rls_statements),
    Migration(3, "small_gin_pending_list", _m003_small_gin_pending_list),
    Migration(4, "inline_vectors_and_scan_indexes", _m004_inline_vectors_and_scan_indexes),
    Migration(5, "api_keys", api_keys_statements),
    Migration(6, "erase_policies", erase_policy_statements),
)


def _create_extension(conn: psycopg.Connection[Any]) -> None:
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone():
        return
    database = conn.info.dbname
    try:
        with conn.transaction():  # a savepoint: the error below must not abort the outer transaction
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except pg_errors.InsufficientPrivilege as exc:
        raise ConfigError(
            f"the pgvector extension is not enabled in database {database!r} and this user may not enable it. "
            f"Ask an administrator to run, connected to {database!r}: CREATE EXTENSION IF NOT EXISTS vector;"
        ) from exc
    except (pg_errors.UndefinedFile, pg_errors.FeatureNotSupported) as exc:
        raise ConfigError(
            "the pgvector extension is not installed on this PostgreSQL server: install pgvector "
            "(https://github.com/pgvector/pgvector, >= 0.8 for iterative index scans), then run "
            f"CREATE EXTENSION IF NOT EXISTS vector; in database {database!r}. Or unset "
            "MEMSTRATA_DATABASE_URL to use the embedded server, which bundles it."
        ) from exc


def applied_versions(conn: psycopg.Connection[Any], t: Tables) -> list[int]:
    """Versions recorded in the schema's migrations table (empty if there is none)."""
    if conn.execute("SELECT to_regclass(%s)", (t.migrations,)).fetchone() == (None,):
        return []
    return [row[0] for row in conn.execute(f"SELECT version FROM {t.migrations} ORDER BY version")]


def migrate(conn: psycopg.Connection[Any], t: Tables, *, dimensions: int) -> list[int]:
    """Enable pgvector, create the schema, apply the missing migrations, check the dimension.

    Args:
        conn: a connection not inside a transaction.
        t: the schema to migrate.
        dimensions: the vector dimension of a new episodes table.

    Returns:
        The versions applied by this call (empty when already up to date).

    Raises:
        ConfigError: pgvector cannot be enabled (the message gives the SQL an admin must run),
            or the existing table holds vectors of another dimension.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))
        _create_extension(conn)
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{t.schema}"')
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {t.migrations} (version int PRIMARY KEY, name text NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = set(applied_versions(conn, t))
        applied = []
        for migration in MIGRATIONS:
            if migration.version in done:
                continue
            for statement in migration.statements(t, dimensions):
                conn.execute(statement)
            conn.execute(
                f"INSERT INTO {t.migrations} (version, name) VALUES (%s, %s)",
                (migration.version, migration.name),
            )
            applied.append(migration.version)
        check_dimension(conn, t, dimensions)
        # Under the lock too: two processes marking the function at once fail with "tuple
        # concurrently updated" (the store's own call afterwards then finds it marked).
        ensure_indexable_text_match(conn)
    return applied


def check_dimension(conn: psycopg.Connection[Any], t: Tables, dimensions: int) -> None:
    """Raise ConfigError unless the episodes table holds ``dimensions``-long vectors."""
    row = conn.execute(*vector_dimension(t)).fetchone()
    if row is not None and row[0] != dimensions:
        raise ConfigError(
            f"table {t.episodes} holds {row[0]}-dimensional vectors but the store was configured for "
            f"{dimensions} (a different embedder?). Use the matching embedder, another schema, or "
            f"re-embed into a new schema; memstrata never alters stored vectors."
        )
