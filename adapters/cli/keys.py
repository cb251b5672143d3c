"""``memstrata keys create|list|revoke``: the API keys ``memstrata serve`` accepts.

Keys live hashed in the store's database (``MEMSTRATA_DATABASE_URL``, else the embedded server),
in the same schema as the memories they open. ``create`` prints the new key alone on its last
line, so ``KEY=$(memstrata keys create --user alice | tail -n 1)`` works in scripts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from memstrata.adapters.cli.app import app
from memstrata.errors import MemstrataError

if TYPE_CHECKING:
    from memstrata.adapters.postgres.api_keys import ApiKeys

__all__ = ["keys_app"]

keys_app = typer.Typer(
    help="API keys of `memstrata serve` (stored hashed in PostgreSQL).", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")

_DEFAULT_DIMENSIONS = 384  # the default embedder's (MiniLM), as `memstrata serve` creates the schema
_DsnOption = Annotated[
    str | None, typer.Option("--dsn", help="PostgreSQL URL (default MEMSTRATA_DATABASE_URL, else embedded).")
]
_SchemaOption = Annotated[str, typer.Option(help="The store's schema.")]


@contextmanager
def _keys(dsn: str | None, schema: str) -> Iterator[ApiKeys]:
    from memstrata.adapters.postgres import PostgresEpisodeStore, database_url
    from memstrata.adapters.postgres.api_keys import ApiKeys
    from memstrata.adapters.postgres.connections import open_pool
    from memstrata.adapters.postgres.sql import Tables, vector_dimension

    pool = open_pool(dsn or database_url(), min_size=1, max_size=1, timeout=10.0)
    try:
        with pool.connection() as conn:
            row = conn.execute(*vector_dimension(Tables(schema))).fetchone()
        dimensions = int(row[0]) if row is not None and row[0] > 0 else _DEFAULT_DIMENSIONS
        PostgresEpisodeStore(pool, dimensions=dimensions, schema=schema).setup()
        yield ApiKeys(pool, schema=schema)
    finally:
        pool.close()


def _fail(exc: MemstrataError) -> typer.Exit:
    typer.echo(f"memstrata keys: {' '.join(str(exc).split())}", err=True)
    return typer.Exit(2)


@keys_app.command("create")
def create(
    user: Annotated[str | None, typer.Option(help="The one user the key acts for.")] = None,
    tenant: Annotated[
        str | None,
        typer.Option(help="A tenant: the key may name any user inside it (stored as TENANT:USER)."),
    ] = None,
    name: Annotated[str | None, typer.Option(help="A note to recognize the key by.")] = None,
    dsn: _DsnOption = None,
    schema: _SchemaOption = "memstrata",
) -> None:
    """Create a key; the key itself is printed alone on the last line (it is shown only once)."""
    try:
        with _keys(dsn, schema) as keys:
            key, secret = keys.create(user_id=user, tenant=tenant, name=name)
    except MemstrataError as exc:
        raise _fail(exc) from None
    bound = f"user {key.user_id}" if key.user_id is not None else f"tenant {key.tenant}"
    typer.echo(f"created key {key.id} for {bound} (shown once; store it now):", err=True)
    typer.echo(secret)


@keys_app.command("list")
def list_keys(
    revoked: Annotated[bool, typer.Option("--revoked", help="Show revoked keys too.")] = False,
    dsn: _DsnOption = None,
    schema: _SchemaOption = "memstrata",
) -> None:
    """List keys: id, what they are bound to, created, revoked, name (never the secrets)."""
    try:
        with _keys(dsn, schema) as keys:
            found = keys.list(include_revoked=revoked)
    except MemstrataError as exc:
        raise _fail(exc) from None
    for key in found:
        bound = f"user={key.user_id}" if key.user_id is not None else f"tenant={key.tenant}"
        created = key.created_at.isoformat(timespec="seconds") if key.created_at else "-"
        gone = f"revoked={key.revoked_at.isoformat(timespec='seconds')}" if key.revoked_at else "valid"
        typer.echo("\t".join([key.id, bound, created, gone, key.name or ""]))


@keys_app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (from `memstrata keys list`).")],
    dsn: _DsnOption = None,
    schema: _SchemaOption = "memstrata",
) -> None:
    """Revoke a key: the server refuses it from the next request on."""
    try:
        with _keys(dsn, schema) as keys:
            done = keys.revoke(key_id)
    except MemstrataError as exc:
        raise _fail(exc) from None
    if not done:
        typer.echo(f"memstrata keys: no valid key with id {key_id!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked key {key_id}", err=True)
