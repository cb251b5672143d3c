"""The AsyncEpisodeStore contract: the EpisodeStore contract, run through an async store.

An async store must return what a sync store returns, call for call, so its contract is the sync
one: :class:`BlockingStore` gives an :class:`~memstrata.ports.AsyncEpisodeStore` the sync
methods (each coroutine run to its end on an event loop of its own thread), and
:class:`AsyncEpisodeStoreContract` runs :class:`EpisodeStoreContract` through it.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, contextmanager
from typing import TypeVar

from memstrata.fusion import Ranked
from memstrata.ports import AsyncEpisodeStore, Vector
from memstrata.schemas import Episode, EpisodeKind, ScanOrder, Scope, SearchQuery

from .store import EpisodeStoreContract

__all__ = ["AsyncEpisodeStoreContract", "BlockingStore", "blocking_store"]

T = TypeVar("T")


class BlockingStore:
    """The sync :class:`~memstrata.ports.EpisodeStore` face of an async store: every method runs
    the store's coroutine on ``loop`` (running in another thread) and waits for it."""

    def __init__(self, store: AsyncEpisodeStore, loop: asyncio.AbstractEventLoop) -> None:
        self.async_store = store
        self._loop = loop

    def _wait(self, work: Awaitable[T]) -> T:
        async def awaited() -> T:
            return await work

        return asyncio.run_coroutine_threadsafe(awaited(), self._loop).result()

    @property
    def dimensions(self) -> int:
        return self.async_store.dimensions

    def put(self, episodes: Sequence[Episode], vectors: Sequence[Vector]) -> list[Episode]:
        return self._wait(self.async_store.aput(episodes, vectors))

    def fold(self, summary: Episode, vector: Vector) -> Episode:
        return self._wait(self.async_store.afold(summary, vector))

    def rank(self, query: SearchQuery) -> list[Ranked]:
        return self._wait(self.async_store.arank(query))

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
        return self._wait(
            self.async_store.ascan(
                scope, kinds=kinds, session_id=session_id, only_current=only_current, order=order, limit=limit
            )
        )

    def get(self, scope: Scope, ids: Sequence[uuid.UUID]) -> list[Episode]:
        return self._wait(self.async_store.aget(scope, ids))

    def forget(self, scope: Scope, ids: Sequence[uuid.UUID] | None = None) -> int:
        return self._wait(self.async_store.aforget(scope, ids))


@contextmanager
def blocking_store(
    opened: Callable[[], AbstractAsyncContextManager[AsyncEpisodeStore]],
) -> Iterator[BlockingStore]:
    """A :class:`BlockingStore` over the store ``opened()`` enters, on an event loop in a thread
    of its own (the store is opened, used and closed on that loop)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="memstrata-contract-loop", daemon=True)
    thread.start()
    manager = opened()

    async def enter() -> AsyncEpisodeStore:
        return await manager.__aenter__()

    async def leave() -> None:
        await manager.__aexit__(None, None, None)

    try:
        store = asyncio.run_coroutine_threadsafe(enter(), loop).result()
        try:
            yield BlockingStore(store, loop)
        finally:
            asyncio.run_coroutine_threadsafe(leave(), loop).result()
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


class AsyncEpisodeStoreContract(EpisodeStoreContract):
    """Mix into a ``Test...`` class and override the ``store`` fixture to return a
    :class:`BlockingStore` (see :func:`blocking_store`) over your async store."""
