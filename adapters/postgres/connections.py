"""Opening a connection pool, and turning psycopg failures into memstrata's errors.

No message built here ever contains a DSN's password.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from memstrata.adapters.postgres.dsn import redact_dsn, scrub
from memstrata.errors import ConfigError, InvalidEpisode, MemstrataError, StoreUnavailable
from psycopg import errors as pg_errors
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

__all__ = ["describe", "open_async_pool", "open_pool", "translate_errors"]


def describe(exc: psycopg.Error) -> str:
    """The server's message (and detail) of a psycopg error, else its text."""
    diag = exc.diag
    text = diag.message_primary or str(exc).strip()
    if diag.message_detail:
        text += f" ({diag.message_detail})"
    return text


@contextmanager
def translate_errors(action: str, *, table: str) -> Iterator[None]:
    """Re-raise psycopg and pool failures inside the block as memstrata errors.

    Args:
        action: what was being done, for the message ("search episodes").
        table: the table a missing-table error refers to.

    Raises:
        ConfigError: the table does not exist (``setup()`` was never run).
        InvalidEpisode: the database rejected the data (type, size or constraint).
        StoreUnavailable: anything else: the server is down, refused, or failed.
    """
    try:
        yield
    except MemstrataError:
        raise
    except PoolTimeout as exc:
        raise StoreUnavailable(f"no database connection available to {action}: {exc}") from exc
    except pg_errors.UndefinedTable as exc:
        raise ConfigError(f"{table} does not exist: call setup() once before using the store") from exc
    except (psycopg.DataError, psycopg.IntegrityError, pg_errors.ProgramLimitExceeded) as exc:
        raise InvalidEpisode(f"the database rejected the data: {describe(exc)}") from exc
    except psycopg.Error as exc:
        raise StoreUnavailable(f"could not {action}: {describe(exc)}") from exc


def _is_clean(exc: BaseException, dsn: str) -> bool:
    """Whether no exception in ``exc``'s chain shows a password of ``dsn`` (in its str or repr)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if any(scrub(text, dsn) != text for text in (str(current), repr(current))):
            return False
        current = current.__cause__ or current.__context__
    return True


def _unreachable(failure: psycopg.Error, dsn: str) -> StoreUnavailable:
    """The error for a failed first connection: libpq's reason, the password masked."""
    reason = str(failure).strip()
    error = StoreUnavailable(f"cannot connect to {redact_dsn(dsn)}: {scrub(reason, dsn)}")
    error.__cause__ = failure if _is_clean(failure, dsn) else None
    return error


def _pool_settings(dsn: str, *, min_size: int, max_size: int, timeout: float) -> dict[str, Any]:
    return {
        "conninfo": dsn,
        "open": False,
        "min_size": min_size,
        "max_size": max_size,
        "timeout": timeout,
        "kwargs": {"autocommit": True},
        "name": "memstrata",
    }


def _not_opened(dsn: str, min_size: int, timeout: float) -> StoreUnavailable:
    return StoreUnavailable(
        f"could not open {min_size} connection(s) to {redact_dsn(dsn)} within {timeout} s"
    )


def open_pool(dsn: str, *, min_size: int, max_size: int, timeout: float) -> ConnectionPool[Any]:
    """An open pool of autocommit connections to ``dsn``.

    One direct connection is tried first, so an unreachable server fails fast with libpq's
    reason rather than a pool timeout.

    Raises:
        StoreUnavailable: the server cannot be reached (password masked in the message).
    """
    failure: psycopg.Error | None = None
    try:
        psycopg.connect(dsn, connect_timeout=max(1, round(timeout)), autocommit=True).close()
    except psycopg.Error as exc:
        failure = exc
    if failure is not None:  # raised out here so that no __context__ carries the raw error
        error = _unreachable(failure, dsn)
        raise error from error.__cause__
    pool: ConnectionPool[Any] = ConnectionPool(
        **_pool_settings(dsn, min_size=min_size, max_size=max_size, timeout=timeout)
    )
    try:
        pool.open(wait=True, timeout=timeout)
    except PoolTimeout:
        pool.close()
        raise _not_opened(dsn, min_size, timeout) from None
    return pool


async def open_async_pool(
    dsn: str, *, min_size: int, max_size: int, timeout: float
) -> AsyncConnectionPool[Any]:
    """:func:`open_pool` for asyncio: an open ``AsyncConnectionPool`` of autocommit connections.

    Raises:
        StoreUnavailable: the server cannot be reached (password masked in the message).
    """
    failure: psycopg.Error | None = None
    try:
        conn = await psycopg.AsyncConnection.connect(
            dsn, connect_timeout=max(1, round(timeout)), autocommit=True
        )
        await conn.close()
    except psycopg.Error as exc:
        failure = exc
    if failure is not None:
        error = _unreachable(failure, dsn)
        raise error from error.__cause__
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        **_pool_settings(dsn, min_size=min_size, max_size=max_size, timeout=timeout)
    )
    try:
        await pool.open(wait=True, timeout=timeout)
    except PoolTimeout:
        await pool.close()
        raise _not_opened(dsn, min_size, timeout) from None
    return pool
