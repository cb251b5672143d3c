"""Tenant isolation by row-level security: PostgreSQL, not only the store's WHERE clauses, keeps
each scope's rows to itself."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from memstrata.adapters.postgres import PostgresEpisodeStore, statements
from memstrata.adapters.postgres.security import APP_ROLE, scope_statement
from memstrata.fusion import hybrid_search
from memstrata.schemas import Episode, EpisodeKind, Scope, SearchQuery
from memstrata.testing import HashingEmbedder
from psycopg import errors as pg_errors

pytestmark = pytest.mark.postgres

EMBED = HashingEmbedder(16)
ALICE = Scope(user_id="alice", agent_id="helper")
BOB = Scope(user_id="bob", agent_id="helper")
ALICE_OTHER_AGENT = Scope(user_id="alice", agent_id="other")


@pytest.fixture(scope="module")
def schema(postgres_dsn: str) -> Iterator[str]:
    name = f"rls_{uuid.uuid4().hex[:8]}"
    with PostgresEpisodeStore.from_conn_string(postgres_dsn, dimensions=16, schema=name) as store:
        store.setup()
        for scope, secret in ((ALICE, "alice likes tea"), (BOB, "bob hides the key under the mat"),
                              (ALICE_OTHER_AGENT, "other agent's note about the mat")):  # fmt: skip
            texts = [secret, f"{scope.user_id} said hello"]
            store.put([Episode(scope=scope, text=t) for t in texts], EMBED.embed(texts))
    yield name
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{name}" CASCADE')


@pytest.fixture
def app(postgres_dsn: str) -> Iterator[psycopg.Connection]:
    """A connection acting as the application role, as hand-written SQL from the app would."""
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"SET ROLE {APP_ROLE}")  # outside a transaction: a rollback keeps it
        conn.autocommit = False
        yield conn


def _enter(conn: psycopg.Connection, scope: Scope) -> None:
    conn.execute(*scope_statement(scope, None))


def test_the_application_role_sees_only_the_scope_it_set(app: psycopg.Connection, schema: str) -> None:
    _enter(app, ALICE)
    rows = app.execute(f'SELECT user_id, agent_id, text FROM "{schema}".episodes ORDER BY text').fetchall()
    assert rows == [("alice", "helper", "alice likes tea"), ("alice", "helper", "alice said hello")]
    assert app.execute(f"SELECT count(*) FROM \"{schema}\".episodes WHERE user_id = 'bob'").fetchone() == (0,)


def test_no_scope_set_means_no_rows(app: psycopg.Connection, schema: str) -> None:
    assert app.execute(f'SELECT count(*) FROM "{schema}".episodes').fetchone() == (0,)


def test_the_application_role_cannot_change_or_delete_another_scopes_rows(
    app: psycopg.Connection, schema: str
) -> None:
    _enter(app, ALICE)
    table = f'"{schema}".episodes'
    assert app.execute(f"UPDATE {table} SET text = 'pwned' WHERE user_id = 'bob'").rowcount == 0
    assert app.execute(f"DELETE FROM {table} WHERE user_id <> 'alice' OR agent_id <> 'helper'").rowcount == 0
    app.commit()
    _enter(app, BOB)
    assert app.execute(f"SELECT text FROM {table} WHERE text LIKE 'bob hides%'").fetchall() == [
        ("bob hides the key under the mat",)
    ]


def test_the_application_role_cannot_write_into_another_scope(app: psycopg.Connection, schema: str) -> None:
    _enter(app, ALICE)
    with pytest.raises(pg_errors.InsufficientPrivilege, match="row-level security"):
        app.execute(
            f'INSERT INTO "{schema}".episodes (user_id, id, agent_id, session_id, kind, text, occurred_at, '
            "created_at, importance, level, embedding) VALUES ('bob', gen_random_uuid(), 'helper', 'default', "
            "'turn', 'planted', now(), now(), 0.5, 0, %s::vector)",
            (str([0.25] * 16),),
        )
    app.rollback()
    _enter(app, ALICE)
    with pytest.raises(pg_errors.InsufficientPrivilege, match="row-level security"):
        app.execute(f"UPDATE \"{schema}\".episodes SET user_id = 'bob' WHERE user_id = 'alice'")


def test_the_store_acts_as_the_application_role(postgres_dsn: str, schema: str) -> None:
    """The embedded server's login is a superuser (which bypasses row-level security), so the store
    must switch roles: a search statement that forgets its scope filter still sees one scope."""
    with PostgresEpisodeStore.from_conn_string(postgres_dsn, dimensions=16, schema=schema) as store:
        with store._scoped("probe", ALICE) as conn:  # the store's own transaction setup
            assert conn.execute("SELECT current_user").fetchone() == (APP_ROLE,)
            seen = conn.execute(f'SELECT DISTINCT user_id, agent_id FROM "{schema}".episodes').fetchall()
        assert seen == [("alice", "helper")]


def test_a_store_query_that_forgets_its_scope_still_reads_one_scope(
    postgres_dsn: str, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Failure injection: break the store's scan and get SQL so that they filter by nothing."""
    real_scan, real_get = statements.scan, statements.get

    def unscoped(statement: tuple[str, dict[str, object]]) -> tuple[str, dict[str, object]]:
        text = statement[0].replace("user_id = %(user_id)s AND agent_id = %(agent_id)s", "TRUE")
        assert text != statement[0]
        return text, statement[1]

    monkeypatch.setattr(statements, "scan", lambda *a, **k: unscoped(real_scan(*a, **k)))
    monkeypatch.setattr(statements, "get", lambda *a, **k: unscoped(real_get(*a, **k)))
    with PostgresEpisodeStore.from_conn_string(postgres_dsn, dimensions=16, schema=schema) as store:
        scanned = store.scan(BOB)
        assert {e.text for e in scanned} == {"bob hides the key under the mat", "bob said hello"}
        alice_ids = [e.id for e in store.scan(ALICE)]
        assert store.get(BOB, alice_ids) == []


def test_search_and_forget_stay_in_scope(postgres_dsn: str, schema: str) -> None:
    with PostgresEpisodeStore.from_conn_string(postgres_dsn, dimensions=16, schema=schema) as store:
        hits = hybrid_search(store,
            SearchQuery(scope=ALICE, text="key under the mat", vector=tuple(EMBED.embed(["mat"])[0]))
        )
        assert {h.episode.scope.user_id for h in hits} == {"alice"}
        assert all(h.episode.scope.agent_id == "helper" for h in hits)
        bob_ids = [e.id for e in store.scan(BOB)]
        assert store.forget(ALICE, bob_ids) == 0
        assert len(store.scan(BOB, kinds=(EpisodeKind.TURN,))) == 2
