"""The PostgreSQL + pgvector episode store.

One table per schema, keyed by ``(user_id, id)``: every query filters by user and agent, and
PostgreSQL's row-level security enforces the same scope on every row (see :mod:`.security`).
Vector search uses a cosine HNSW index with pgvector's iterative scans (so a scope filter does
not starve it), full-text search a generated ``tsvector`` with a GIN index. The store ranks one
retriever at a time (:mod:`.ranking`); hybrid search fuses the two legs in the core
(:func:`memstrata.fusion.hybrid_search`). Full-text search drops a query's common words using
word counts the store caches per scope (:mod:`.word_count_cache`).
"""

from __future__ import annotations

import logging
import uuid
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Self

import psycopg
from memstrata.adapters.postgres import retriever_statements, security
from memstrata.adapters.postgres.connections import open_pool, translate_errors
from memstrata.adapters.postgres.migrations import migrate
from memstrata.adapters.postgres.read_transaction import read_transaction
from memstrata.adapters.postgres.steps import drive
from memstrata.adapters.postgres.store_steps import DEFAULT_EF_SEARCH, DEFAULT_SCHEMA, UNRESOLVED, StoreSteps
from memstrata.adapters.postgres.writes import WriteMethod
from memstrata.errors import ConfigError, InvalidEpisode, MemstrataError
from memstrata.fusion import Ranked
from memstrata.ports import Vector
from memstrata.schemas import Episode, EpisodeKind, ScanOrder, Scope, SearchQuery
from memstrata.validation import DEFAULT_MAX_TEXT_BYTES, check_scope
from pgvector.psycopg import register_vector
from psycopg_pool import ConnectionPool

__all__ = ["DEFAULT_EF_SEARCH", "DEFAULT_SCHEMA", "PostgresEpisodeStore"]

_log = logging.getLogger(__name__)


class PostgresEpisodeStore(StoreSteps):
    """An :class:`~memstrata.ports.EpisodeStore` on PostgreSQL + pgvector.

    Constructing it runs no SQL; call :meth:`setup` once (it is idempotent) to create or upgrade
    the schema. Every method borrows a connection from the pool for one transaction.

    Args:
        pool: a psycopg connection pool (the store neither opens nor closes it). Prefer
            :meth:`from_conn_string`, which owns one.
        dimensions: length of the stored vectors (the embedder's dimension).
        schema: the PostgreSQL schema holding the tables; one per embedding dimension.
        max_text_bytes: largest episode text accepted, in UTF-8 bytes.
        ef_search: HNSW candidate list size per query (recall vs speed).
        max_term_share: full-text search uses the query's words rarest first while their summed
            frequency stays within this share of the searched rows (the scope's): common words
            rank poorly and cost time.
        text_scan_limit: most full-text matches ranked per scan (bounds its cost).
        write_method: ``"copy"`` (binary COPY into a staging table, then one INSERT),
            ``"executemany"`` (pipelined INSERTs), or ``"auto"``: COPY from ``COPY_MIN_ROWS``
            episodes up. Every ``put`` is one transaction whichever is used.
    """

    def __init__(
        self,
        pool: ConnectionPool[Any],
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
        self._prepared: weakref.WeakSet[psycopg.Connection[Any]] = weakref.WeakSet()

    @classmethod
    @contextmanager
    def from_conn_string(
        cls,
        dsn: str,
        *,
        dimensions: int,
        schema: str = DEFAULT_SCHEMA,
        max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES,
        ef_search: int = DEFAULT_EF_SEARCH,
        max_term_share: float = retriever_statements.DEFAULT_MAX_TERM_SHARE,
        text_scan_limit: int = retriever_statements.DEFAULT_TEXT_SCAN_LIMIT,
        write_method: WriteMethod = "auto",
        min_size: int = 1,
        max_size: int = 4,
        timeout: float = 10.0,
    ) -> Iterator[Self]:
        """A store owning a connection pool to ``dsn``, closed when the block exits.

        Args:
            dsn: libpq connection string or URL (see ``memstrata.adapters.postgres.database_url``).
            timeout: seconds to wait for a connection, at start and for each operation.
            (others): as for the constructor; ``min_size``/``max_size`` size the pool.

        Raises:
            StoreUnavailable: the server cannot be reached (the message never shows the password).
        """
        pool = open_pool(dsn, min_size=min_size, max_size=max_size, timeout=timeout)
        try:
            yield cls(
                pool,
                dimensions=dimensions,
                schema=schema,
                max_text_bytes=max_text_bytes,
                ef_search=ef_search,
                max_term_share=max_term_share,
                text_scan_limit=text_scan_limit,
                write_method=write_method,
            )
        finally:
            pool.close()

    def __repr__(self) -> str:
        return f"PostgresEpisodeStore(schema={self._tables.schema!r}, dimensions={self._dimensions})"

    @property
    def pool(self) -> ConnectionPool[Any]:
        """The connection pool (shared with the schema's API keys: see :mod:`.api_keys`)."""
        return self._pool

    # -- plumbing --------------------------------------------------------------------------------

    @contextmanager
    def _connection(self, action: str) -> Iterator[psycopg.Connection[Any]]:
        """A prepared pooled connection; psycopg failures become memstrata errors."""
        with translate_errors(action, table=self._tables.episodes), self._pool.connection() as conn:
            self._prepare(conn)
            yield conn

    @contextmanager
    def _scoped(self, action: str, scope: Scope) -> Iterator[psycopg.Connection[Any]]:
        """A connection inside one transaction that acts as the store's role in ``scope``."""
        check_scope(scope)
        with self._connection(action) as conn, conn.transaction():
            drive(conn, self._enter_steps(scope))
            yield conn

    def _prepare(self, conn: psycopg.Connection[Any]) -> None:
        if conn in self._prepared:
            return
        if conn.adapters.types.get("vector") is None:
            try:
                register_vector(conn)
            except psycopg.ProgrammingError as exc:
                if conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS:
                    conn.rollback()
                raise ConfigError("the pgvector extension is not enabled: call setup() once") from exc
        with conn.transaction():
            for setting in self._session_settings():
                conn.execute(*setting)
        self._prepared.add(conn)

    # -- schema ----------------------------------------------------------------------------------

    def setup(self) -> list[int]:
        """Create or upgrade the schema (and enable pgvector); safe to call from many processes.

        Returns:
            The migration versions this call applied (empty if already up to date).

        Raises:
            ConfigError: pgvector cannot be enabled (the message gives the SQL to run), or the
                table holds vectors of another dimension.
            StoreUnavailable: the database failed.
        """
        action = f"set up schema {self.schema!r}"
        with translate_errors(action, table=self._tables.episodes), self._pool.connection() as conn:
            applied = migrate(conn, self._tables, dimensions=self._dimensions)
            security.ensure_indexable_text_match(conn)
        self._role = UNRESOLVED  # setup may have created the application role
        if applied:
            _log.info("applied migrations %s to schema %s", applied, self.schema)
        return applied

    # -- writes ----------------------------------------------------------------------------------

    def put(self, episodes: Sequence[Episode], vectors: Sequence[Vector]) -> list[Episode]:
        steps = self._put_steps(episodes, vectors)
        if steps is None:
            return []
        try:
            with self._connection("store episodes") as conn, conn.transaction():
                stored = drive(conn, steps)
        except InvalidEpisode as exc:
            collision = self._collision(episodes, vectors) if self._collided(exc) else None
            if collision is None:
                raise
            raise collision from exc.__cause__
        self._put_done(episodes)
        return stored

    def _collision(self, episodes: Sequence[Episode], vectors: Sequence[Vector]) -> InvalidEpisode | None:
        """Name the item whose id is already stored, after a unique violation rolled the batch back
        (see :func:`.writes.collision_steps`)."""
        try:
            with self._connection("find the stored id") as conn, conn.transaction(force_rollback=True):
                return drive(conn, self._collision_steps(episodes, vectors))
        except (MemstrataError, psycopg.Error):
            return None

    def fold(self, summary: Episode, vector: Vector) -> Episode:
        steps = self._fold_steps(summary, vector)
        try:
            with self._connection("fold episodes") as conn, conn.transaction():
                folded = drive(conn, steps)
        except InvalidEpisode as exc:
            failure = self._fold_failure(exc, summary)
            if failure is exc:
                raise
            raise failure from exc.__cause__
        self._fold_done(summary)
        return folded

    def forget(self, scope: Scope, ids: Sequence[uuid.UUID] | None = None) -> int:
        steps = self._forget_steps(scope, ids)
        with self._connection("forget episodes") as conn, conn.transaction():
            deleted = drive(conn, steps)
        self._forget_done(scope)
        return deleted

    def forget_user(self, user_id: str) -> int:
        """Erase a user: every episode of theirs in every agent (turns, summaries, facts, their
        idempotency keys), the API keys bound to them, and the word counts kept for them.

        Returns:
            How many episodes were deleted.

        Raises:
            InvalidInput: a bad user id.
            StoreUnavailable: the database failed (nothing is deleted).
        """
        check_scope(Scope(user_id=user_id))
        with self._connection("erase a user") as conn, conn.transaction():
            conn.execute(*security.erase_statement(user_id, drive(conn, self._role_steps())))
            episodes, keys = security.erase_user_statements(self._tables, user_id)
            deleted = conn.execute(*episodes).fetchone()
            conn.execute(*keys)
        self._word_counts.forget_user(user_id)
        return int(deleted[0]) if deleted else 0

    # -- reads -----------------------------------------------------------------------------------

    def rank(self, query: SearchQuery, *, exact: bool = False) -> list[Ranked]:
        """One retriever's candidates (see :meth:`memstrata.ports.EpisodeStore.rank`): ids, ranks
        and scores only, best first. ``exact=True`` bypasses the HNSW index (exact vector ranking,
        slow: for recall measurements)."""
        steps = self._rank_steps(query, exact)
        if steps is None:
            return []
        with self._connection("search episodes") as conn, read_transaction(conn):
            return [Ranked(*row) for row in drive(conn, steps)]

    def scan(
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
        with self._connection("scan episodes") as conn, conn.transaction():
            return drive(conn, steps)

    def get(self, scope: Scope, ids: Sequence[uuid.UUID]) -> list[Episode]:
        steps = self._get_steps(scope, ids)
        if steps is None:
            return []
        with self._connection("get episodes") as conn, read_transaction(conn):
            return drive(conn, steps)
