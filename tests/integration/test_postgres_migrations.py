"""Schema setup against a real PostgreSQL: idempotent, recorded, safe to run from several
processes at once, and clear about what an administrator must do."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from memstrata.adapters.postgres import PostgresEpisodeStore
from memstrata.adapters.postgres.migrations import MIGRATIONS
from memstrata.errors import ConfigError
from psycopg.conninfo import make_conninfo

pytestmark = pytest.mark.postgres


def fresh_schema() -> str:
    return f"mig_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def admin(postgres_dsn: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        yield conn


def test_setup_is_idempotent_and_recorded(
    postgres_dsn: str, admin: psycopg.Connection[tuple[object, ...]]
) -> None:
    schema = fresh_schema()
    with PostgresEpisodeStore.from_conn_string(postgres_dsn, dimensions=8, schema=schema) as store:
        assert store.setup() == [m.version for m in MIGRATIONS]
        assert store.setup() == []
    rows = admin.execute(
        f'SELECT version, name FROM "{schema}".schema_migrations ORDER BY version'
    ).fetchall()
    assert rows == [(m.version, m.name) for m in MIGRATIONS]
    indexes = {
        r[0] for r in admin.execute("SELECT indexname FROM pg_indexes WHERE schemaname = %s", (schema,))
    }
    assert {"episodes_pkey", "episodes_tsv", "episodes_embedding_hnsw", "episodes_scope_seq"} <= indexes
    admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


def test_an_existing_table_of_another_dimension_is_a_config_error(
    postgres_dsn: str, admin: psycopg.Connection[tuple[object, ...]]
) -> None:
    schema = fresh_schema()
    with PostgresEpisodeStore.from_conn_string(postgres_dsn, dimensions=8, schema=schema) as store:
        store.setup()
    with (
        PostgresEpisodeStore.from_conn_string(postgres_dsn, dimensions=16, schema=schema) as store,
        pytest.raises(ConfigError, match="holds 8-dimensional vectors but the store was configured for 16"),
    ):
        store.setup()
    admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


SETUP_SCRIPT = """
import sys, time
from memstrata.adapters.postgres import PostgresEpisodeStore
dsn, schema, start_at = sys.argv[1], sys.argv[2], float(sys.argv[3])
with PostgresEpisodeStore.from_conn_string(dsn, dimensions=8, schema=schema) as store:
    while time.time() < start_at:
        time.sleep(0.001)
    print(store.setup())
"""


def test_two_processes_set_up_a_fresh_database_at_once(
    postgres_dsn: str, admin: psycopg.Connection[tuple[object, ...]]
) -> None:
    """Both race on CREATE EXTENSION and on the first migration; each is applied exactly once."""
    database = f"race_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{database}"')
    dsn = make_conninfo(postgres_dsn, dbname=database)
    try:
        start_at = str(time.time() + 3.0)  # both processes are connected and waiting by then
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", SETUP_SCRIPT, dsn, "raced", start_at],
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outputs = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
        assert [p.returncode for p in procs] == [0, 0]
        everything = str([m.version for m in MIGRATIONS])
        assert outputs == sorted([everything, "[]"])
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT count(*) FROM raced.schema_migrations").fetchone() == (
                len(MIGRATIONS),
            )
            assert conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'vector'").fetchone() == (
                1,
            )
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def test_a_user_who_may_not_create_the_extension_is_told_what_to_run(
    postgres_dsn: str, admin: psycopg.Connection[tuple[object, ...]]
) -> None:
    if admin.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() != (True,):
        pytest.skip("needs a superuser to create a restricted role and database")
    suffix = uuid.uuid4().hex[:10]
    role, database = f"limited_{suffix}", f"noext_{suffix}"
    admin.execute(f'CREATE ROLE "{role}" LOGIN')
    admin.execute(f'CREATE DATABASE "{database}" OWNER "{role}"')
    try:
        dsn = make_conninfo(postgres_dsn, dbname=database, user=role)
        with (
            PostgresEpisodeStore.from_conn_string(dsn, dimensions=8) as store,
            pytest.raises(ConfigError) as info,
        ):
            store.setup()
        assert "CREATE EXTENSION IF NOT EXISTS vector;" in str(info.value)
        assert database in str(info.value)
        with psycopg.connect(dsn) as conn:  # the failed setup left nothing behind
            assert conn.execute("SELECT to_regnamespace('memstrata')").fetchone() == (None,)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.execute(f'DROP ROLE IF EXISTS "{role}"')
