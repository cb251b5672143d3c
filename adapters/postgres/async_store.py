"""The PostgreSQL + pgvector episode store on psycopg's async pool.

Every operation is the sync store's own (:mod:`.store_steps`: the same statements, checks and row
handling, written once as steps); this face only borrows an ``AsyncConnection``, opens the
transaction and awaits each round trip (:func:`.steps.adrive`). The schema is set up by the sync
store's ``setup()`` (run once, e.g. by ``open_memory``).
"""

from __future__ import annotations

import uuid
import weakref
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Self

import psycopg
from memstrata.adapters.postgres import retriever_statements
from memstrata.adapters.postgres.connections import open_async_pool, translate_errors
from memstrata.adapters.postgres.read_transaction import aread_transaction
from memstrata.adapters.postgres.steps import adrive
from memstrata.adapters.postgres.store import PostgresEpisodeStore
from memstrata.adapters.postgres.store_steps import DEFAULT_EF_SEARCH, DEFAULT_SCHEMA, StoreSteps
from memstrata.adapters.postgres.writes import WriteMethod
from memstrata.errors import ConfigError, InvalidEpisode, MemstrataError
from memstrata.fusion import Ranked
from memstrata.memory import Memory
from memstrata.ports import Vector
from memstrata.schemas import Episode, EpisodeKind, ScanOrder, Scope, SearchQuery
from memstrata.validation import DEFAULT_MAX_TEXT_BYTES
from pgvector.psycopg import register_vector_async
from psycopg_pool import AsyncConnectionPool

__all__ = ["AsyncPostgresEpisodeStore", "async_face"]


class AsyncPostgresEpisodeStore(StoreSteps):
    """An :class:`~memstrata.ports.AsyncEpisodeStore` on PostgreSQL + pgvector: the async face of
    :class:`~memstrata.adapters.postgres.PostgresEpisodeStore`, with the same arguments and the
    same results. Hand it to ``Memory(..., async_store=...)`` for ``Memory.aadd``, ``achat``...

    Args:
        pool: an open ``psycopg_pool.AsyncConnectionPool`` of autocommit connections (the store
            neither opens nor closes it). Prefer :meth:`from_conn_string`, which owns one.
        (others): as for ``PostgresEpisodeStore``.
    """

    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        *,
        dimensions: int,
        schema: str = DEFAULT_SCHEMA,
        max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES,
        ef_search: int = DEFAULT_EF_SEARCH,
        max_term_share: float = retriever_statements.DEFAULT_MAX_TERM_SHARE,
        text_scan_limit: int = retriever_statements.DEFAULT_TEXT_SCAN_LIMIT,
        write_method: WriteMethod = "auto",
    ) -> None:
        super().__init__(
            dimensions=dimensions,
            schema=schema,
            max_text_bytes=max_text_bytes,
            ef_search=ef_search,
            max_term_share=max_term_share,
            text_scan_limit=text_scan_limit,
            write_method=write_method,
        )
        self._pool = pool
        self._prepared: weakref.WeakSet[psycopg.AsyncConnection[Any]] = weakref.WeakSet()

    @classmethod
    @asynccontextmanager
    async def from_conn_string(
        cls,
        dsn: str,
        *,
        dimensions: int,
        schema: str = DEFAULT_SCHEMA,
        min_size: int = 1,
        max_size: int = 4,
        timeout: float = 10.0,
        **settings: Any,
    ) -> AsyncIterator[Self]:
        """A store owning an async connection pool to ``dsn``, closed when the block exits.

        Args:
            dsn: libpq connection string or URL.
            timeout: seconds to wait for a connection, at start and for each operation.
            settings: the constructor's other keyword arguments.

        Raises:
            StoreUnavailable: the server cannot be reached (the message never shows the password).
        """
        pool = await open_async_pool(dsn, min_size=min_size, max_size=max_size, timeout=timeout)
        try:
            yield cls(pool, dimensions=dimensions, schema=schema, **settings)
        finally:
            await pool.close()

    @classmethod
    @asynccontextmanager
    async def twin_of(cls, store: PostgresEpisodeStore, *, max_size: int = 4) -> AsyncIterator[Self]:
        """The async face of ``store``: the same database, schema and settings on an async pool of
        its own (closed when the block exits), sharing ``store``'s word counts, so that a write
        through either face keeps the other's searches as fresh as its own.

        Raises:
            StoreUnavailable: the server cannot be reached.
        """
        conninfo = store.pool.conninfo
        dsn = conninfo if isinstance(conninfo, str) else conninfo()
        pool = await open_async_pool(dsn, min_size=1, max_size=max_size, timeout=store.pool.timeout)
        try:
            twin = cls(
                pool,
                dimensions=store.dimensions,
                schema=store.schema,
                max_text_bytes=store._max_text_bytes,
                ef_search=store._ef_search,
                max_term_share=store._max_term_share,
                text_scan_limit=store._text_scan_limit,
                write_method=store._write_method,
            )
            twin._word_counts = store._word_counts
            yield twin
        finally:
            await pool.close()

    def __repr__(self) -> str:
        return f"AsyncPostgresEpisodeStore(schema={self._tables.schema!r}, dimensions={self._dimensions})"

    @asynccontextmanager
    async def _connection(self, action: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A prepared pooled connection; psycopg failures become memstrata errors."""
        with translate_errors(action, table=self._tables.episodes):
            async with self._pool.connection() as conn:
                await self._prepare(conn)
                yield conn

    async def _prepare(self, conn: psycopg.AsyncConnection[Any]) -> None:
        if conn in self._prepared:
            return
        if conn.adapters.types.get("vector") is None:
            try:
                await register_vector_async(conn)
            except psycopg.ProgrammingError as exc:
                if conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS:
                    await conn.rollback()
                raise ConfigError("the pgvector extension is not enabled: call setup() once") from exc
        async with conn.transaction():
            for setting in self._session_settings():
                await conn.execute(*setting)
        self._prepared.add(conn)

    async def aput(self, episodes: Sequence[Episode], vectors: Sequence[Vector]) -> list[Episode]:
        steps = self._put_steps(episodes, vectors)
        if steps is None:
            return []
        try:
            async with self._connection("store episodes") as conn, conn.transaction():
                stored = await adrive(conn, steps)
        except InvalidEpisode as exc:
            collision = await self._collision(episodes, vectors) if self._collided(exc) else None
            if collision is None:
                raise
            raise collision from exc.__cause__
        self._put_done(episodes)
        return stored

    async def _collision(
        self, episodes: Sequence[Episode], vectors: Sequence[Vector]
    ) -> InvalidEpisode | None:
        try:
            async with self._connection("find the stored id") as conn, conn.transaction(force_rollback=True):
                return await adrive(conn, self._collision_steps(episodes, vectors))
        except (MemstrataError, psycopg.Error):
            return None

    async def afold(self, summary: Episode, vector: Vector) -> Episode:
        steps = self._fold_steps(summary, vector)
        try:
            async with self._connection("fold episodes") as conn, conn.transaction():
                folded = await adrive(conn, steps)
        except InvalidEpisode as exc:
            failure = self._fold_failure(exc, summary)
            if failure is exc:
                raise
            raise failure from exc.__cause__
        self._fold_done(summary)
        return folded

    async def aforget(self, scope: Scope, ids: Sequence[uuid.UUID] | None = None) -> int:
        steps = self._forget_steps(scope, ids)
        async with self._connection("forget episodes") as conn, conn.transaction():
            deleted = await adrive(conn, steps)
        self._forget_done(scope)
        return deleted

    async def arank(self, query: SearchQuery, *, exact: bool = False) -> list[Ranked]:
        steps = self._rank_steps(query, exact)
        if steps is None:
            return []
        async with self._connection("search episodes") as conn, aread_transaction(conn):
            return [Ranked(*row) for row in await adrive(conn, steps)]

    async def ascan(
        self,
        scope: Scope,
        *,
        kinds: Sequence[EpisodeKind] = (),
        session_id: str | None = None,
        only_current: bool = False,
        order: ScanOrder = "oldest",
        limit: int | None = None,
    ) -> list[Episode]:
        steps = self._scan_steps(
            scope, kinds=kinds, session_id=session_id, only_current=only_current, order=order, limit=limit
        )
        async with self._connection("scan episodes") as conn, conn.transaction():
            return await adrive(conn, steps)

    async def aget(self, scope: Scope, ids: Sequence[uuid.UUID]) -> list[Episode]:
        steps = self._get_steps(scope, ids)
        if steps is None:
            return []
        async with self._connection("get episodes") as conn, aread_transaction(conn):
            return await adrive(conn, steps)


@asynccontextmanager
async def async_face(memory: Memory) -> AsyncIterator[Memory]:
    """``memory`` with its async face on psycopg's async pool, for the block: a view of it
    (:meth:`Memory.with_async_store <memstrata.Memory.with_async_store>`) whose async store is a
    twin of its Postgres store (:meth:`AsyncPostgresEpisodeStore.twin_of`), opened on the running
    loop and closed on exit. A memory with an async store already, or with another kind of store
    (whose async face runs it in worker threads), is yielded as it is.

    Raises:
        StoreUnavailable: the server cannot be reached.
    """
    store = memory.store
    if memory.async_store is not None or not isinstance(store, PostgresEpisodeStore) or store.pool.closed:
        yield memory
        return
    async with AsyncPostgresEpisodeStore.twin_of(store) as twin:
        yield memory.with_async_store(twin)
