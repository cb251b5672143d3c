"""``Memory``'s async face: ``aadd``, ``acontext``, ``achat``, ``astream``, ``arecall``,
``acompress``, ``aforget``.

Each runs the very plan its sync twin runs (:mod:`memstrata.memory_core`), awaiting the calls:
the store's async face (``Memory(..., async_store=...)``, e.g. ``AsyncPostgresEpisodeStore`` on
psycopg's async pool) or, without one, the store in worker threads; the embedder and a chat model
without an async path run in worker threads (``asyncio.to_thread``). Reads that overlap in the
sync face (a session's turns while recall searches) overlap here as tasks. Results are the sync
face's, call for call.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime

from memstrata import port_calls
from memstrata.compression import CompressionReport
from memstrata.errors import ConfigError, InvalidInput
from memstrata.memory_core import MemoryCore
from memstrata.port_calls import arun
from memstrata.ports import TokenCounter
from memstrata.replies import Reply, generate
from memstrata.schemas import ChatMessage, ChatResult, Episode, RecallHit, Scope, SearchFilters, utc_now
from memstrata.schemas.plan import BudgetPlan
from memstrata.turns import TurnLike

__all__ = ["AsyncMemoryFace"]


class AsyncMemoryFace(MemoryCore):
    """The coroutine methods of :class:`memstrata.Memory` (each documented on its sync twin)."""

    async def aadd(self, turns: Sequence[TurnLike], *, scope: Scope) -> list[Episode]:
        """:meth:`Memory.add <memstrata.Memory.add>`, awaited."""
        return await arun(self._add_calls(turns, scope), self._aports())

    async def arecent(self, *, scope: Scope, limit: int | None = None) -> list[Episode]:
        """:meth:`Memory.recent <memstrata.Memory.recent>`, awaited."""
        return await arun(self._recent_calls(scope, limit), self._aports())

    async def asummaries(self, *, scope: Scope) -> list[Episode]:
        """:meth:`Memory.summaries <memstrata.Memory.summaries>`, awaited."""
        return await arun(self._summaries_calls(scope), self._aports())

    async def acontext(
        self,
        query: str,
        *,
        scope: Scope,
        memory_budget: int | None = None,
        now: datetime | None = None,
        reserve: int | None = None,
        system: str | None = None,
        lead: Sequence[ChatMessage] = (),
        tail: Sequence[ChatMessage] = (),
        counter: TokenCounter | None = None,
        window: int | None = None,
        measure: Callable[[Sequence[ChatMessage]], int] | None = None,
    ) -> BudgetPlan:
        """:meth:`Memory.context <memstrata.Memory.context>`, awaited: the same plan."""
        planner = self.planner_for(counter, window)
        frame = planner.frame(query, system=system, reserve=reserve, lead=lead, tail=tail, measure=measure)
        ports = self._aports()
        # The recent turns and the summary stack are read while recall embeds and searches.
        reads = asyncio.ensure_future(arun(self._reads_calls(planner, query, scope), ports))
        recent = asyncio.ensure_future(_first(reads))
        try:
            hits = await self.recaller.arecall(query, scope=scope, store=ports.store, recent=recent, now=now)
        except BaseException:
            await asyncio.wait([reads, recent])
            if not recent.cancelled():
                recent.exception()  # retrieved: the failure raised is recall's
            raise
        turns, summaries = await reads
        await recent
        return planner.plan(
            frame, recent=turns, summaries=summaries, recalled=hits, memory_budget=memory_budget
        )

    async def aanswer(
        self, plan: BudgetPlan, *, max_tokens: int | None = None, temperature: float = 0.0
    ) -> ChatResult:
        """:meth:`Memory.answer <memstrata.Memory.answer>`, awaited (the model's ``acomplete``
        if it has one, else ``complete`` in a worker thread)."""
        call = self._answer_call(plan, max_tokens=max_tokens, temperature=temperature)
        result: ChatResult = await arun(port_calls.one(call), self._aports())
        return result

    async def achat(
        self,
        user_text: str,
        *,
        scope: Scope,
        occurred_at: datetime | None = None,
        idempotency_key: str | None = None,
        max_tokens: int | None = None,
        temperature: float = 0.0,
        system: str | None = None,
    ) -> Reply:
        """:meth:`Memory.chat <memstrata.Memory.chat>`, awaited."""
        reply = None
        async for reply in self._aexchange(  # noqa: B007 (the last item is the reply)
            user_text, scope, occurred_at, idempotency_key, max_tokens, temperature, system, streamed=False
        ):
            pass
        assert isinstance(reply, Reply)
        return reply

    async def astream(
        self,
        user_text: str,
        *,
        scope: Scope,
        occurred_at: datetime | None = None,
        idempotency_key: str | None = None,
        max_tokens: int | None = None,
        temperature: float = 0.0,
        system: str | None = None,
    ) -> AsyncIterator[str | Reply]:
        """:meth:`Memory.stream <memstrata.Memory.stream>` as an async iterator: the reply's
        pieces, then the final :class:`Reply`."""
        async for item in self._aexchange(
            user_text, scope, occurred_at, idempotency_key, max_tokens, temperature, system, streamed=True
        ):
            yield item

    async def _aexchange(
        self,
        user_text: str,
        scope: Scope,
        occurred_at: datetime | None,
        key: str | None,
        max_tokens: int | None,
        temperature: float,
        system: str | None,
        *,
        streamed: bool,
    ) -> AsyncIterator[str | Reply]:
        """``Memory._exchange`` on the async face: the same generation (:func:`memstrata.replies.generate`,
        each of its steps in a worker thread, where the model runs), then the same record."""
        if self.model is None:
            raise ConfigError(f"Memory.{'stream' if streamed else 'chat'} needs a model")
        started = utc_now()
        asked_at = occurred_at or started
        plan = await self.acontext(user_text, scope=scope, now=asked_at, reserve=max_tokens, system=system)
        cap = self.config.planner.reserve_tokens if max_tokens is None else max_tokens
        steps = generate(self.model, plan, cap=cap, temperature=temperature, streamed=streamed)
        result = None
        while (result := await asyncio.to_thread(next, steps, None)) is not None and isinstance(result, str):
            yield result
        assert isinstance(result, ChatResult)
        took = utc_now() - started
        yield await arun(
            self._record_calls(user_text, result, plan, scope, asked_at, took, key), self._aports()
        )

    async def acompress(self, *, scope: Scope, force: bool = False) -> CompressionReport:
        """:meth:`Memory.compress <memstrata.Memory.compress>`, awaited."""
        return await arun(self.compressor.compress_calls(scope, force=force), self._aports())

    async def arecall(
        self, query: str, *, scope: Scope, k: int | None = None, filters: SearchFilters = SearchFilters()
    ) -> list[RecallHit]:
        """:meth:`Memory.recall <memstrata.Memory.recall>`, awaited."""
        if not query.strip():
            raise InvalidInput("the recall query is empty")
        return await self.recaller.arecall(
            query, scope=scope, store=self._aports().store, k=k, filters=filters
        )

    async def aforget(self, *, scope: Scope, ids: Sequence[uuid.UUID] | None = None) -> int:
        """:meth:`Memory.forget <memstrata.Memory.forget>`, awaited."""
        return await arun(self._forget_calls(scope, ids), self._aports())

    async def aforget_session(self, *, scope: Scope) -> int:
        """:meth:`Memory.forget_session <memstrata.Memory.forget_session>`, awaited."""
        return await arun(self._forget_session_calls(scope), self._aports())


async def _first(reads: asyncio.Future[tuple[list[Episode], list[Episode]]]) -> list[Episode]:
    return (await reads)[0]
