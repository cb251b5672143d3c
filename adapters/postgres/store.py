"""The PostgreSQL + pgvector episode store.

One table per schema, keyed by ``(user_id, id)``: every query filters by user and agent, and
PostgreSQL's row-level security enforces the same scope on every row (see :mod:`.security`).
Vector search uses a cosine HNSW index with pgvector's iterative scans (so a scope filter does
not starve it), full-text search a generated ``tsvector`` with a GIN index; the two candidate
lists are fused by reciprocal rank in one SQL statement (see :func:`.sql.search` and
:mod:`.searches`); recall's single-retriever legs run at once and are fused in Python (see
:mod:`.hybrid`). Full-text search drops a query's common words using word counts the store
caches per scope (:mod:`.word_counts`).
"""

from __future__ import annotations

import logging
import uuid
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Self

import numpy as np
import psycopg
from memstrata.adapters.postgres import security, sql
from memstrata.adapters.postgres.connections import open_pool, translate_errors
from memstrata.adapters.postgres.migrations import migrate
from memstrata.adapters.postgres.rows import episode_from_row, episode_values
from memstrata.adapters.postgres.searches import StoreSearches
from memstrata.adapters.postgres.word_counts import WordCountCache
from memstrata.adapters.postgres.writes import WriteMethod, fold_into, insert_batch, scope_groups
from memstrata.errors import ConfigError, InvalidEpisode, MemstrataError
from memstrata.ports import Vector
from memstrata.schemas import Episode, EpisodeKind, ScanOrder, Scope
from memstrata.validation import DEFAULT_MAX_TEXT_BYTES, check_batch, check_episode, check_scope, check_vector
from pgvector.psycopg import register_vector
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool

__all__ = ["DEFAULT_EF_SEARCH", "DEFAULT_SCHEMA", "PostgresEpisodeStore"]

_log = logging.getLogger(__name__)

DEFAULT_SCHEMA = "memstrata"
DEFAULT_EF_SEARCH = 20
"""HNSW candidate list per query (the iterative scan goes on past ``ef_search`` rows when a search
wants more, as a hybrid search's 40 candidates do). Measured at 100k episodes of one user (m=16,
ef_construction=128), hybrid recall@10 against exact search on 200 queries: 0.984 / 0.987 at 20 /
30 (40 candidates; 0.976 / 0.979 with 60). Hybrid search p50/p95 in one interleaved run of 800
searches each: 8.1 / 10.8 ms at 20, 8.3 / 10.9 at 30, 9.1 / 12.6 at 40. A much larger scope may
want more: pass ``ef_search`` (at 1M episodes 40 gave vector recall@10 0.70 counted by id)."""
_UNRESOLVED = "?"


class PostgresEpisodeStore(StoreSearches):
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
        max_term_share: float = sql.DEFAULT_MAX_TERM_SHARE,
        text_scan_limit: int = sql.DEFAULT_TEXT_SCAN_LIMIT,
        write_method: WriteMethod = "auto",
    ) -> None:
        if not 1 <= dimensions <= 16_000:
            raise ConfigError(f"dimensions must be between 1 and 16000, got {dimensions}")
        if not 1 <= ef_search <= 1000:
            raise ConfigError(f"ef_search must be between 1 and 1000, got {ef_search}")
        if not 0.0 < max_term_share <= 1.0:
            raise ConfigError(f"max_term_share must be in (0, 1], got {max_term_share}")
        if text_scan_limit < 1:
            raise ConfigError(f"text_scan_limit must be at least 1, got {text_scan_limit}")
        if write_method not in ("auto", "copy", "executemany"):
            raise ConfigError(f"write_method must be 'auto', 'copy' or 'executemany', got {write_method!r}")
        self._pool = pool
        self._dimensions = dimensions
        self._tables = sql.Tables(schema)
        self._max_text_bytes = max_text_bytes
        self._ef_search = ef_search
        self._max_term_share = max_term_share
        self._text_scan_limit = text_scan_limit
        self._write_method = write_method
        self._prepared: weakref.WeakSet[psycopg.Connection[Any]] = weakref.WeakSet()
        self._role: str | None = _UNRESOLVED
        self._word_counts = WordCountCache()

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
        max_term_share: float = sql.DEFAULT_MAX_TERM_SHARE,
        text_scan_limit: int = sql.DEFAULT_TEXT_SCAN_LIMIT,
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
    def dimensions(self) -> int:
        return self._dimensions

    @property
    def schema(self) -> str:
        return self._tables.schema

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
            self._enter(conn, scope)
            yield conn

    def _enter(self, conn: psycopg.Connection[Any], scope: Scope) -> None:
        conn.execute(*security.scope_statement(scope, self._resolved_role(conn)))

    def _resolved_role(self, conn: psycopg.Connection[Any]) -> str | None:
        if self._role == _UNRESOLVED:
            self._role = self._resolve_role(conn)
        return self._role

    def _resolve_role(self, conn: psycopg.Connection[Any]) -> str | None:
        role = security.app_role_for(conn)
        if role is None and security.bypasses_rls(conn):
            _log.warning(
                "this login bypasses row-level security and role %s does not exist or is not granted "
                "to it: scopes are enforced by the store's queries only. Run setup() as a superuser "
                "or a role with CREATEROLE to create it.",
                security.APP_ROLE,
            )
        return role

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
            conn.execute("SELECT set_config('hnsw.ef_search', %s, false)", (str(self._ef_search),))
            conn.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', false)")
            # Plan each search for its own scope and words: a generic plan of a prepared statement
            # cannot tell a huge scope from a small one (100k episodes: text search 5 -> 20 ms).
            # A large scope's searches are planned once, in statements of their own (.plans).
            conn.execute("SELECT set_config('plan_cache_mode', 'force_custom_plan', false)")
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
        self._role = _UNRESOLVED  # setup may have created the application role
        if applied:
            _log.info("applied migrations %s to schema %s", applied, self.schema)
        return applied

    # -- writes ----------------------------------------------------------------------------------

    def put(self, episodes: Sequence[Episode], vectors: Sequence[Vector]) -> list[Episode]:
        # A float matrix is checked whole; anything else value by value (lists validate ~10x faster
        # than numpy rows there: check_vector sums them in pure Python).
        whole = _finite_matrix(vectors, (len(episodes), self._dimensions))
        checked = vectors.tolist() if isinstance(vectors, np.ndarray) and not whole else vectors
        check_batch(
            episodes,
            checked,
            dimensions=self._dimensions,
            max_text_bytes=self._max_text_bytes,
            vectors_checked=whole,
        )
        if not episodes:
            return []
        try:
            with self._connection("store episodes") as conn, conn.transaction():
                stored = insert_batch(
                    conn,
                    self._tables,
                    episodes,
                    vectors,
                    method=self._write_method,
                    enter_scope=lambda scope: self._enter(conn, scope),
                )
        except InvalidEpisode as exc:
            cause = exc.__cause__
            collision = (
                self._collision(episodes, vectors) if isinstance(cause, pg_errors.UniqueViolation) else None
            )
            if collision is None:
                raise
            raise collision from exc.__cause__
        for owner, positions in scope_groups(episodes).items():  # committed: searches may see them
            self._word_counts.wrote(owner, len(positions))
        return stored

    def _collision(self, episodes: Sequence[Episode], vectors: Sequence[Vector]) -> InvalidEpisode | None:
        """Name the item whose id is already stored, after a unique violation rolled the batch back.

        The row it collides with may belong to another agent of the user, which row-level
        security hides (and PostgreSQL then omits the key from the error), so the batch is
        replayed row by row in a transaction that is always rolled back.
        """
        try:
            with self._connection("find the stored id") as conn, conn.transaction(force_rollback=True):
                for positions in scope_groups(episodes).values():
                    self._enter(conn, episodes[positions[0]].scope)
                    for index in positions:
                        try:
                            with conn.transaction():
                                conn.execute(
                                    sql.insert_values(self._tables),
                                    episode_values(episodes[index], vectors[index]),
                                )
                        except pg_errors.UniqueViolation:
                            return InvalidEpisode(
                                f"id {episodes[index].id} is already stored", index=index, field="id"
                            )
        except (MemstrataError, psycopg.Error):
            return None
        return None

    def fold(self, summary: Episode, vector: Vector) -> Episode:
        check_episode(summary, max_text_bytes=self._max_text_bytes)
        check_vector(vector, dimensions=self._dimensions)
        if not summary.covers:
            raise InvalidEpisode("a fold needs a summary that covers at least one episode", field="covers")
        try:
            with self._scoped("fold episodes", summary.scope) as conn:
                seq = fold_into(conn, self._tables, summary, vector)
        except InvalidEpisode as exc:
            if isinstance(exc.__cause__, pg_errors.UniqueViolation):
                raise InvalidEpisode(f"id {summary.id} is already stored", field="id") from exc.__cause__
            raise
        self._word_counts.wrote((summary.scope.user_id, summary.scope.agent_id))
        return summary.model_copy(update={"seq": seq})

    def forget(self, scope: Scope, ids: Sequence[uuid.UUID] | None = None) -> int:
        with self._scoped("forget episodes", scope) as conn:
            row = conn.execute(
                *sql.forget(self._tables, scope, None if ids is None else list(ids))
            ).fetchone()
        self._word_counts.wrote((scope.user_id, scope.agent_id))
        return int(row[0]) if row else 0

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
            conn.execute(*security.erase_statement(user_id, self._resolved_role(conn)))
            episodes, keys = security.erase_user_statements(self._tables, user_id)
            deleted = conn.execute(*episodes).fetchone()
            conn.execute(*keys)
        self._word_counts.forget_user(user_id)
        return int(deleted[0]) if deleted else 0

    # -- reads (search and rank: see .searches) -----------------------------------------------

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
        check_scope(scope)
        statement = sql.scan(
            self._tables,
            scope,
            kinds=kinds,
            session_id=session_id,
            only_current=only_current,
            order=order,
            limit=limit,
        )
        with self._scoped("scan episodes", scope) as conn:
            return [episode_from_row(row) for row in conn.execute(*statement)]

    def get(self, scope: Scope, ids: Sequence[uuid.UUID]) -> list[Episode]:
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return []
        with self._scoped("get episodes", scope) as conn:
            found = {
                e.id: e for e in map(episode_from_row, conn.execute(*sql.get(self._tables, scope, wanted)))
            }
        return [found[i] for i in wanted if i in found]


def _finite_matrix(vectors: object, shape: tuple[int, int]) -> bool:
    """Whether ``vectors`` is a float array of ``shape`` holding only finite values."""
    return (
        isinstance(vectors, np.ndarray)
        and vectors.shape == shape
        and vectors.dtype.kind == "f"
        and bool(np.isfinite(vectors).all())
    )


def _key(episode: Episode) -> tuple[str, str, str | None]:
    return (episode.scope.user_id, episode.scope.agent_id, episode.idempotency_key)
