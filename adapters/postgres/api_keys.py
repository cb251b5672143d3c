"""API keys of ``memstrata serve``, stored hashed in the store's schema (migration 5).

A key is ``msk_<id>_<secret>``: 32 random bytes, so a plain SHA-256 of the whole key is enough to
store it (nothing to brute-force; a slow hash would only slow every request). The row keeps the
key's public ``id``, the hash, and either the ``user_id`` it acts for or the ``tenant`` whose
users it may name: erasing a user deletes the user's keys, and the table shards by ``user_id``.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from typing import Any

from memstrata.adapters.postgres.connections import translate_errors
from memstrata.adapters.postgres.security import APP_ROLE
from memstrata.adapters.postgres.sql import Tables
from memstrata.errors import InvalidInput
from memstrata.schemas import Scope
from memstrata.schemas.keys import TENANT_SEPARATOR, ApiKey
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

__all__ = ["ApiKeys", "api_keys_statements"]

_PREFIX = "msk_"
_TENANT = re.compile(r"[A-Za-z0-9._-]{1,64}")
_COLUMNS = "id, user_id, tenant, name, created_at, revoked_at"


def _table(t: Tables) -> str:
    return f'"{t.schema}".api_keys'


def api_keys_statements(t: Tables, dimensions: int) -> list[str]:
    """DDL of migration 5: the keys table, readable and writable by the application role."""
    del dimensions
    table = _table(t)
    return [
        f"""CREATE TABLE {table} (
    id text PRIMARY KEY,
    secret_sha256 bytea NOT NULL UNIQUE,
    user_id text,
    tenant text,
    name text,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    CHECK ((user_id IS NULL) <> (tenant IS NULL))
)""",
        f"CREATE INDEX api_keys_user ON {table} (user_id) WHERE user_id IS NOT NULL",
        f"""DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {APP_ROLE};
    END IF;
END
$$""",
    ]


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def _key(row: dict[str, Any]) -> ApiKey:
    return ApiKey(**row)


class ApiKeys:
    """Create, list, revoke and verify API keys in one schema (call the store's ``setup()``
    first: it creates the table).

    Args:
        pool: a psycopg pool to the store's database (the keys neither open nor close it).
        schema: the store's schema.
    """

    def __init__(self, pool: ConnectionPool[Any], *, schema: str = "memstrata") -> None:
        self._pool = pool
        self._tables = Tables(schema)
        self._table = _table(self._tables)

    def _run(self, action: str, statement: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        with (
            translate_errors(action, table=self._table),
            self._pool.connection() as conn,
            conn.transaction(),
            conn.cursor(row_factory=dict_row) as cursor,
        ):
            cursor.execute(statement, params)
            return cursor.fetchall() if cursor.description is not None else []

    def create(
        self, *, user_id: str | None = None, tenant: str | None = None, name: str | None = None
    ) -> tuple[ApiKey, str]:
        """A new key for one user, or for one tenant's users.

        Returns:
            The stored key and its secret (shown once: only its hash is kept).

        Raises:
            InvalidInput: neither or both of ``user_id`` and ``tenant``, or a bad id.
        """
        if (user_id is None) == (tenant is None):
            raise InvalidInput("a key is bound to one user or to one tenant: give exactly one")
        if user_id is not None:
            try:
                Scope(user_id=user_id)
            except ValueError as exc:
                raise InvalidInput(f"user id {user_id!r}: {exc}") from None
        if tenant is not None and not _TENANT.fullmatch(tenant):
            raise InvalidInput(
                f"tenant id {tenant!r}: use 1-64 letters, digits, '.', '_' or '-' "
                f"(never {TENANT_SEPARATOR!r}, which joins a tenant to its users)"
            )
        key_id = secrets.token_hex(6)
        secret = f"{_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        rows = self._run(
            "create an API key",
            f"INSERT INTO {self._table} (id, secret_sha256, user_id, tenant, name) "
            f"VALUES (%s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
            (key_id, _digest(secret), user_id, tenant, name),
        )
        return _key(rows[0]), secret

    def verify(self, secret: str) -> ApiKey | None:
        """The valid (unrevoked) key with this secret, or None."""
        if not secret.startswith(_PREFIX) or len(secret) > 200:
            return None
        rows = self._run(
            "check an API key",
            f"SELECT {_COLUMNS} FROM {self._table} WHERE secret_sha256 = %s AND revoked_at IS NULL",
            (_digest(secret),),
        )
        return _key(rows[0]) if rows else None

    def list(self, *, include_revoked: bool = False) -> list[ApiKey]:
        """Every key, oldest first (revoked ones too when asked)."""
        where = "" if include_revoked else " WHERE revoked_at IS NULL"
        return [
            _key(r)
            for r in self._run(
                "list API keys", f"SELECT {_COLUMNS} FROM {self._table}{where} ORDER BY created_at, id", ()
            )
        ]

    def revoke(self, key_id: str) -> bool:
        """Revoke a key by its id; False if no valid key has that id."""
        rows = self._run(
            "revoke an API key",
            f"UPDATE {self._table} SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL RETURNING id",
            (key_id,),
        )
        return bool(rows)

    def forget_user(self, user_id: str) -> int:
        """Delete every key bound to ``user_id`` (revoked ones too): part of erasing a user."""
        rows = self._run(
            "forget a user's API keys",
            f"DELETE FROM {self._table} WHERE user_id = %s RETURNING id",
            (user_id,),
        )
        return len(rows)
