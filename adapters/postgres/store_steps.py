"""What the sync and the async Postgres stores share: their settings, checks, and every operation
as steps (:mod:`.steps`).

:class:`~memstrata.adapters.postgres.store.PostgresEpisodeStore` drives these steps on a
``psycopg_pool.ConnectionPool``, :class:`~memstrata.adapters.postgres.async_store.AsyncPostgresEpisodeStore`
on an ``AsyncConnectionPool``; each face only borrows the connection, opens the transaction and
runs the loop.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import numpy as np
from memstrata.adapters.postgres import retriever_statements, security, statements
from memstrata.adapters.postgres.ranking import RankSteps
from memstrata.adapters.postgres.rows import episode_from_row
from memstrata.adapters.postgres.steps import Begin, Execute, Finish, Steps
from memstrata.adapters.postgres.word_count_cache import WordCountCache
from memstrata.adapters.postgres.writes import (
    WriteMethod,
    collision_steps,
    fold_steps,
    insert_steps,
    scope_groups,
)
from memstrata.errors import ConfigError, InvalidEpisode
from memstrata.ports import Vector
from memstrata.schemas import Episode, EpisodeKind, ScanOrder, Scope
from memstrata.validation import DEFAULT_MAX_TEXT_BYTES, check_batch, check_episode, check_scope, check_vector
from psycopg import errors as pg_errors

__all__ = ["DEFAULT_EF_SEARCH", "DEFAULT_SCHEMA", "StoreSteps"]

DEFAULT_SCHEMA = "memstrata"
DEFAULT_EF_SEARCH = 20
"""HNSW candidate list per query (the iterative scan goes on past ``ef_search`` rows when a search
wants more, as a hybrid search's 40 candidates do). Measured at 100k episodes of one user (m=16,
ef_construction=128), hybrid recall@10 against exact search on 200 queries: 0.984 / 0.987 at 20 /
30 (40 candidates; 0.976 / 0.979 with 60). Hybrid search p50/p95 in one interleaved run of 800
searches each: 8.1 / 10.8 ms at 20, 8.3 / 10.9 at 30, 9.1 / 12.6 at 40. A much larger scope may
want more: pass ``ef_search`` (at 1M episodes 40 gave vector recall@10 0.70 counted by id)."""
UNRESOLVED = "?"


class StoreSteps(RankSteps):
    """The settings, checks and steps of a Postgres episode store (see the stores' docs for the
    arguments)."""

    def __init__(
        self,
        *,
        dimensions: int,
        schema: str = DEFAULT_SCHEMA,
        max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES,
        ef_search: int = DEFAULT_EF_SEARCH,
        max_term_share: float = retriever_statements.DEFAULT_MAX_TERM_SHARE,
        text_scan_limit: int = retriever_statements.DEFAULT_TEXT_SCAN_LIMIT,
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
        self._dimensions = dimensions
        self._tables = statements.Tables(schema)
        self._max_text_bytes = max_text_bytes
        self._ef_search = ef_search
        self._max_term_share = max_term_share
        self._text_scan_limit = text_scan_limit
        self._write_method = write_method
        self._role: str | None = UNRESOLVED
        self._word_counts = WordCountCache()

    @property
    def dimensions(self) -> int:
        return self._dimensions

    @property
    def schema(self) -> str:
        return self._tables.schema

    def _session_settings(self) -> list[tuple[str, tuple[str, ...] | None]]:
        """What every pooled connection sets once: HNSW's list and iterative scans, and plans
        made per search (a generic plan of a prepared statement cannot tell a huge scope from a
        small one: 100k episodes, text search 5 -> 20 ms). A large scope's searches are planned
        once, in statements of their own (.plan_cache)."""
        return [
            ("SELECT set_config('hnsw.ef_search', %s, false)", (str(self._ef_search),)),
            ("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', false)", None),
            ("SELECT set_config('plan_cache_mode', 'force_custom_plan', false)", None),
        ]

    def _role_steps(self) -> Steps[str | None]:
        if self._role == UNRESOLVED:
            self._role = yield from security.resolve_role_steps()
        return self._role

    def _enter_steps(self, scope: Scope) -> Steps[None]:
        """Act as the store's role in ``scope`` (the first statement of a scoped transaction)."""
        role = yield from self._role_steps()
        yield Execute(security.scope_statement(scope, role))

    # -- writes ----------------------------------------------------------------------------------

    def _put_steps(
        self, episodes: Sequence[Episode], vectors: Sequence[Vector]
    ) -> Steps[list[Episode]] | None:
        """The steps of a batch write, in one transaction; None for an empty batch.

        Raises:
            InvalidEpisode: a bad item (checked now: nothing is written).
        """
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
            return None
        return insert_steps(
            self._tables, episodes, vectors, method=self._write_method, enter_scope=self._enter_steps
        )

    def _collision_steps(
        self, episodes: Sequence[Episode], vectors: Sequence[Vector]
    ) -> Steps[InvalidEpisode | None]:
        """The batch replayed to name the item whose id is already stored (in a transaction the
        caller always rolls back)."""
        return collision_steps(self._tables, episodes, vectors, self._enter_steps)

    @staticmethod
    def _collided(exc: InvalidEpisode) -> bool:
        """Whether a failed batch hit a unique violation (an id already stored): then the batch
        is replayed to name the item (:meth:`_collision_steps`)."""
        return isinstance(exc.__cause__, pg_errors.UniqueViolation)

    @staticmethod
    def _fold_failure(exc: InvalidEpisode, summary: Episode) -> InvalidEpisode:
        """The error a failed fold raises: a unique violation names the summary's id."""
        if isinstance(exc.__cause__, pg_errors.UniqueViolation):
            error = InvalidEpisode(f"id {summary.id} is already stored", field="id")
            error.__cause__ = exc.__cause__
            return error
        return exc

    def _put_done(self, episodes: Sequence[Episode]) -> None:
        for owner, positions in scope_groups(episodes).items():  # committed: searches may see them
            self._word_counts.wrote(owner, len(positions))

    def _fold_steps(self, summary: Episode, vector: Vector) -> Steps[Episode]:
        """The steps of a fold, in one transaction of the summary's scope.

        Raises:
            InvalidEpisode: a bad summary (checked now).
        """
        check_episode(summary, max_text_bytes=self._max_text_bytes)
        check_vector(vector, dimensions=self._dimensions)
        if not summary.covers:
            raise InvalidEpisode("a fold needs a summary that covers at least one episode", field="covers")
        check_scope(summary.scope)
        return self._folded(summary, vector)

    def _folded(self, summary: Episode, vector: Vector) -> Steps[Episode]:
        yield from self._enter_steps(summary.scope)
        seq = yield from fold_steps(self._tables, summary, vector)
        return summary.model_copy(update={"seq": seq})

    def _fold_done(self, summary: Episode) -> None:
        self._word_counts.wrote((summary.scope.user_id, summary.scope.agent_id))

    def _forget_steps(self, scope: Scope, ids: Sequence[uuid.UUID] | None) -> Steps[int]:
        check_scope(scope)
        return self._forgotten(scope, None if ids is None else list(ids))

    def _forgotten(self, scope: Scope, ids: list[uuid.UUID] | None) -> Steps[int]:
        yield from self._enter_steps(scope)
        rows = yield Execute(statements.forget(self._tables, scope, ids))
        return int(rows[0][0]) if rows else 0

    def _forget_done(self, scope: Scope) -> None:
        self._word_counts.wrote((scope.user_id, scope.agent_id))

    # -- reads -----------------------------------------------------------------------------------

    def _scan_steps(
        self,
        scope: Scope,
        *,
        kinds: Sequence[EpisodeKind],
        session_id: str | None,
        only_current: bool,
        order: ScanOrder,
        limit: int | None,
    ) -> Steps[list[Episode]]:
        """The steps of a scan, in one transaction of ``scope``."""
        check_scope(scope)
        statement = statements.scan(
            self._tables,
            scope,
            kinds=kinds,
            session_id=session_id,
            only_current=only_current,
            order=order,
            limit=limit,
        )
        return self._scanned(scope, statement)

    def _scanned(self, scope: Scope, statement: statements.Statement) -> Steps[list[Episode]]:
        yield from self._enter_steps(scope)
        rows = yield Execute(statement)
        return [episode_from_row(row) for row in rows]

    def _get_steps(self, scope: Scope, ids: Sequence[uuid.UUID]) -> Steps[list[Episode]] | None:
        """The steps of a read by id, in a read transaction guard; None when no id is given."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return None
        check_scope(scope)
        return self._got(scope, wanted)

    def _got(self, scope: Scope, wanted: list[uuid.UUID]) -> Steps[list[Episode]]:
        # Two round trips, as a search's (the scope with BEGIN, the read with COMMIT): recall reads
        # its winners this way after every search.
        role = yield from self._role_steps()
        yield Begin(security.scope_statement(scope, role))
        rows = yield Finish(statements.get(self._tables, scope, wanted))
        found = {e.id: e for e in map(episode_from_row, rows)}
        return [found[i] for i in wanted if i in found]


def _finite_matrix(vectors: object, shape: tuple[int, int]) -> bool:
    """Whether ``vectors`` is a float array of ``shape`` holding only finite values."""
    return (
        isinstance(vectors, np.ndarray)
        and vectors.shape == shape
        and vectors.dtype.kind == "f"
        and bool(np.isfinite(vectors).all())
    )
