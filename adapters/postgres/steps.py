"""The store's work as steps, driven by a sync or an async connection.

Every store operation (a write batch, a fold, a ranked leg, a scan) is written once, as a generator
that yields the database requests it needs (:data:`Request`) and receives their rows: which
statements to run, in which order, and what to make of their rows is decided there, with no I/O.
:func:`drive` runs the steps on a ``psycopg.Connection``, :func:`adrive` on a
``psycopg.AsyncConnection``: the two faces of the store differ only in these two loops. A failed
request is raised inside the steps (``generator.throw``), so they can catch what they expect.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar

import psycopg
from memstrata.adapters.postgres.plan_cache import GENERIC_PLAN
from memstrata.adapters.postgres.read_transaction import ReadTransaction
from memstrata.adapters.postgres.tables import Statement
from memstrata.adapters.postgres.vector_copy import register_payload_dumper

__all__ = ["Begin", "CopyStaged", "Execute", "ExecuteMany", "Finish", "Request", "Steps", "adrive", "drive"]

R = TypeVar("R")
Rows = list[tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class Execute:
    """Run one statement; its rows come back (none for a statement without a result)."""

    statement: Statement | tuple[str, Any]


@dataclass(frozen=True, slots=True)
class ExecuteMany:
    """Run ``sql`` once per row of parameters, pipelined; every returned row comes back."""

    sql: str
    rows: Sequence[Sequence[Any]]


@dataclass(frozen=True, slots=True)
class CopyStaged:
    """Create a staging table and binary-COPY ``rows`` into it (vectors as payloads)."""

    create: str
    copy: str
    types: Sequence[str]
    rows: Sequence[Sequence[Any]]


@dataclass(frozen=True, slots=True)
class Begin:
    """Open a read transaction with a ``SELECT``, in one simple-protocol message (its parameters
    bound client-side); its first row comes back (see :mod:`.read_transaction`)."""

    statement: Statement


@dataclass(frozen=True, slots=True)
class Finish:
    """Run a statement and commit in one round trip; its rows come back. ``generic_plan``:
    prepared, with the generic plan (:mod:`.plan_cache`)."""

    statement: Statement
    generic_plan: bool = False


Request: TypeAlias = Execute | ExecuteMany | CopyStaged | Begin | Finish
Steps: TypeAlias = Generator[Request, Any, R]


def drive(conn: psycopg.Connection[Any], steps: Steps[R]) -> R:
    """Run ``steps`` on a sync connection; returns what they return."""
    reply: Any = None
    failure: BaseException | None = None
    while True:
        try:
            request = steps.send(reply) if failure is None else steps.throw(failure)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        reply, failure = None, None
        try:
            reply = _perform(conn, request)
        except psycopg.Error as exc:
            failure = exc


async def adrive(conn: psycopg.AsyncConnection[Any], steps: Steps[R]) -> R:
    """Run ``steps`` on an async connection; returns what they return."""
    reply: Any = None
    failure: BaseException | None = None
    while True:
        try:
            request = steps.send(reply) if failure is None else steps.throw(failure)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        reply, failure = None, None
        try:
            reply = await _aperform(conn, request)
        except psycopg.Error as exc:
            failure = exc


def _perform(conn: psycopg.Connection[Any], request: Request) -> Any:
    if isinstance(request, Execute):
        cursor = conn.execute(*request.statement)
        return cursor.fetchall() if cursor.description is not None else []
    if isinstance(request, Begin):
        return ReadTransaction(conn).begin(request.statement)
    if isinstance(request, Finish):
        return ReadTransaction(conn).finish(request.statement, generic_plan=request.generic_plan)
    with conn.cursor() as cur:
        if isinstance(request, ExecuteMany):
            cur.executemany(request.sql, request.rows, returning=True)
            return [row for _ in cur.results() for row in cur.fetchall()]
        cur.execute(request.create)
        register_payload_dumper(cur)
        with cur.copy(request.copy) as copy:
            copy.set_types(list(request.types))
            for row in request.rows:
                copy.write_row(row)
    return None


async def _aperform(conn: psycopg.AsyncConnection[Any], request: Request) -> Any:
    if isinstance(request, Execute):
        cursor = await conn.execute(*request.statement)
        return await cursor.fetchall() if cursor.description is not None else []
    if isinstance(request, Begin):
        text = psycopg.AsyncClientCursor(conn).mogrify(*request.statement)
        cursor = await conn.execute(f"BEGIN; {text}")  # as ReadTransaction.begin
        cursor.nextset()
        return await cursor.fetchone()
    if isinstance(request, Finish):
        async with conn.pipeline():
            if request.generic_plan:
                await conn.execute(GENERIC_PLAN)
            cursor = await conn.execute(*request.statement, prepare=request.generic_plan or None)
            await conn.execute("COMMIT")
        return await cursor.fetchall()
    async with conn.cursor() as cur:
        if isinstance(request, ExecuteMany):
            await cur.executemany(request.sql, request.rows, returning=True)
            return [row async for _ in cur.results() for row in await cur.fetchall()]
        await cur.execute(request.create)
        register_payload_dumper(cur)
        async with cur.copy(request.copy) as copy:
            copy.set_types(list(request.types))
            for row in request.rows:
                await copy.write_row(row)
    return None
