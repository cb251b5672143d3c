"""Row-level security: every row of ``episodes`` is visible only inside its own scope.

WHERE clauses are not the isolation boundary; PostgreSQL is. Migration 2 enables and *forces*
row-level security on ``episodes`` (so even the table's owner is subject to it) with one policy:
a row is readable and writable only while the transaction's settings ``memstrata.user_id`` and
``memstrata.agent_id`` equal its ``user_id`` and ``agent_id``. A transaction that sets no scope
sees no rows and can write none.

The store opens every transaction with :func:`scope_statement`, which sets those two values
*transaction-locally* (``set_config(..., true)``), so a pooled connection never carries a scope
into the next borrower's transaction. When the role ``memstrata_app`` exists and the connected
user may act as it, the same statement switches the transaction to that role: a superuser (the
embedded server's login) bypasses row-level security, ``memstrata_app`` never does.

One planner detail is handled here: PostgreSQL uses an index for a condition on a
row-level-secured table only if the condition's function is ``LEAKPROOF``. Full-text match
(``ts_match_vq``, the ``@@`` operator) is not marked so, which would turn every full-text search
into a scan of the user's rows. When setup runs as a superuser it marks it (``ts_match_vq``
raises no data-dependent error: it returns a boolean for every valid pair); otherwise it logs
the one statement an administrator should run.

Erasing a user must reach every agent of theirs, which one scope cannot see. Migration 6 adds two
policies keyed by a third setting, ``memstrata.erase_user_id``: a transaction that sets it may read
and delete that user's rows in every agent (and nothing of anyone else's); it can insert or update
nothing more than before. Only :meth:`PostgresEpisodeStore.forget_user` sets it (see
:func:`erase_statement`).

No statistic shared across scopes is read: the search's word frequencies are counted within
the searched scope (see :mod:`.fulltext`).
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from memstrata.adapters.postgres.statements import Statement, Tables
from memstrata.adapters.postgres.steps import Execute, Steps
from memstrata.schemas import Scope

__all__ = [
    "APP_ROLE",
    "ensure_indexable_text_match",
    "erase_policy_statements",
    "erase_statement",
    "erase_user_statements",
    "resolve_role_steps",
    "rls_statements",
    "scope_statement",
]

_log = logging.getLogger(__name__)

APP_ROLE = "memstrata_app"
"""The role the store acts as (NOLOGIN; grant it to your application's login role)."""

USER_SETTING = "memstrata.user_id"
AGENT_SETTING = "memstrata.agent_id"
ERASE_SETTING = "memstrata.erase_user_id"
TEXT_MATCH = "pg_catalog.ts_match_vq(tsvector, tsquery)"

_IN_SCOPE = f"user_id = current_setting('{USER_SETTING}', true) AND agent_id = current_setting('{AGENT_SETTING}', true)"


def rls_statements(t: Tables, dimensions: int) -> list[str]:
    """DDL of migration 2: the application role, its grants, and the policy."""
    del dimensions
    schema = t.schema
    return [
        f"""DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}')
       AND EXISTS (SELECT 1 FROM pg_roles WHERE rolname = current_user AND (rolsuper OR rolcreaterole)) THEN
        CREATE ROLE {APP_ROLE} NOLOGIN;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
        GRANT USAGE ON SCHEMA "{schema}" TO {APP_ROLE};
        GRANT SELECT, INSERT, UPDATE, DELETE ON {t.episodes} TO {APP_ROLE};
        IF NOT pg_has_role(current_user, '{APP_ROLE}', 'MEMBER') THEN
            BEGIN
                EXECUTE format('GRANT {APP_ROLE} TO %I', current_user);
            EXCEPTION WHEN insufficient_privilege THEN
                RAISE NOTICE 'cannot grant {APP_ROLE} to %: the store will act as its own login', current_user;
            END;
        END IF;
    END IF;
END
$$""",
        f"ALTER TABLE {t.episodes} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {t.episodes} FORCE ROW LEVEL SECURITY",
        f"CREATE POLICY episodes_scope ON {t.episodes} USING ({_IN_SCOPE}) WITH CHECK ({_IN_SCOPE})",
    ]


def erase_policy_statements(t: Tables, dimensions: int) -> list[str]:
    """DDL of migration 6: a user's erasure may read and delete that user's rows in every agent."""
    del dimensions
    erasing = f"user_id = current_setting('{ERASE_SETTING}', true)"
    return [
        f"CREATE POLICY episodes_erase_read ON {t.episodes} FOR SELECT USING ({erasing})",
        f"CREATE POLICY episodes_erase ON {t.episodes} FOR DELETE USING ({erasing})",
    ]


def erase_statement(user_id: str, role: str | None) -> Statement:
    """Open a user's erasure (and act as ``role``, if any): the first statement of its transaction."""
    params: dict[str, Any] = {"user_id": user_id}
    role_part = ""
    if role is not None:
        role_part = ", set_config('role', %(role)s, true)"
        params["role"] = role
    return f"SELECT set_config('{ERASE_SETTING}', %(user_id)s, true){role_part}", params


def erase_user_statements(t: Tables, user_id: str) -> list[Statement]:
    """A user's erasure after :func:`erase_statement`: their episodes in every agent (the first
    statement returns how many), then the API keys bound to them."""
    params = {"user_id": user_id}
    return [
        (
            f"WITH gone AS (DELETE FROM {t.episodes} WHERE user_id = %(user_id)s RETURNING 1) "
            "SELECT count(*) FROM gone",
            params,
        ),
        (f'DELETE FROM "{t.schema}".api_keys WHERE user_id = %(user_id)s', params),
    ]


def scope_statement(scope: Scope, role: str | None) -> Statement:
    """Set the transaction's scope (and role, if any): the first statement of every transaction."""
    params: dict[str, Any] = {"user_id": scope.user_id, "agent_id": scope.agent_id}
    role_part = ""
    if role is not None:
        role_part = ", set_config('role', %(role)s, true)"
        params["role"] = role
    return (
        f"SELECT set_config('{USER_SETTING}', %(user_id)s, true), "
        f"set_config('{AGENT_SETTING}', %(agent_id)s, true){role_part}",
        params,
    )


def resolve_role_steps() -> Steps[str | None]:
    """``memstrata_app`` if it exists, is not the connected user, and the user may act as it;
    else None (the store then runs as its login, still subject to the forced policy unless that
    login is a superuser or has BYPASSRLS, which is logged as a warning)."""
    rows = yield Execute(
        (
            "SELECT pg_has_role(session_user, r.oid, 'MEMBER') AND r.rolname <> session_user "
            "FROM pg_roles r WHERE r.rolname = %s",
            (APP_ROLE,),
        )
    )
    role = APP_ROLE if rows and rows[0][0] else None
    if role is None:
        rows = yield Execute(
            ("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = session_user", None)
        )
        if rows and rows[0][0]:
            _log.warning(
                "this login bypasses row-level security and role %s does not exist or is not granted "
                "to it: scopes are enforced by the store's queries only. Run setup() as a superuser "
                "or a role with CREATEROLE to create it.",
                APP_ROLE,
            )
    return role


def ensure_indexable_text_match(conn: psycopg.Connection[Any]) -> bool:
    """Mark full-text match LEAKPROOF if needed and allowed (see the module doc).

    Returns:
        Whether full-text conditions can use the GIN index under row-level security.
    """
    row = conn.execute(
        f"SELECT p.proleakproof, r.rolsuper FROM pg_proc p, pg_roles r "
        f"WHERE p.oid = '{TEXT_MATCH}'::regprocedure AND r.rolname = current_user"
    ).fetchone()
    if row is None:
        return False
    leakproof, superuser = bool(row[0]), bool(row[1])
    if leakproof:
        return True
    if superuser:
        conn.execute(f"ALTER FUNCTION {TEXT_MATCH} LEAKPROOF")
        return True
    _log.warning(
        "full-text search cannot use its index under row-level security until a superuser runs, in "
        "database %s: ALTER FUNCTION %s LEAKPROOF; (searches scan the user's rows meanwhile)",
        conn.info.dbname,
        TEXT_MATCH,
    )
    return False
