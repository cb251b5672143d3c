"""What ``Memory``'s two faces share: its parts, and every operation that touches a port written
once, as a plan of port calls (:mod:`memstrata.port_calls`).

``Memory.add`` runs :meth:`MemoryCore._add_calls` with :func:`~memstrata.port_calls.run`,
``Memory.aadd`` the same plan with :func:`~memstrata.port_calls.arun`: the faces differ only in
how a call is made (directly, or awaited) and in how concurrent reads overlap (threads, or tasks).
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Self, TypeVar, cast

from memstrata import port_calls
from memstrata.compression import CompressionReport, Compressor
from memstrata.errors import ConfigError, InvalidEpisode
from memstrata.planner import TokenBudgetPlanner
from memstrata.port_calls import Call, Plan, Ports
from memstrata.ports import AsyncEpisodeStore, ChatModel, Embedder, EpisodeStore, TokenCounter
from memstrata.recall import Recaller, embedding_text
from memstrata.replies import REPLY_STOPS, Reply, exchange_turns
from memstrata.scheduler import CompressionQueue
from memstrata.schemas import ChatResult, Episode, EpisodeKind, Scope
from memstrata.schemas.config import MemoryConfig
from memstrata.schemas.plan import BudgetPlan
from memstrata.turns import TurnLike, to_turn, turn_episode
from memstrata.warming import warm_next_turn
from pydantic import ValidationError

if TYPE_CHECKING:
    from memstrata.memory import Memory

__all__ = ["MemoryCore"]

R = TypeVar("R")


class MemoryCore:
    """The parts of a ``Memory`` and its operations as plans (see :class:`memstrata.Memory`)."""

    def __init__(
        self,
        store: EpisodeStore,
        embedder: Embedder,
        *,
        model: ChatModel | None = None,
        token_counter: TokenCounter | None = None,
        config: MemoryConfig = MemoryConfig(),
        summarizer: ChatModel | None = None,
        async_store: AsyncEpisodeStore | None = None,
    ) -> None:
        counter = token_counter or (model.token_counter if model is not None else None)
        if counter is None:
            raise ConfigError("Memory needs a model or a token_counter to count tokens")
        window = config.context_window or (model.context_window if model is not None else None)
        if window is None:
            raise ConfigError("Memory needs config.context_window when no model is given")
        for holder in (store, async_store):
            if holder is not None and holder.dimensions != embedder.dimensions:
                raise ConfigError(
                    f"the store holds {holder.dimensions}-d vectors but the embedder makes "
                    f"{embedder.dimensions}-d ones"
                )
        self.store = store
        self.async_store = async_store
        self.embedder = embedder
        self.model = model
        self.counter = counter
        self.window = window
        self.config = config
        self._planners: dict[tuple[int, int], TokenBudgetPlanner] = {}
        self.planner = self.planner_for()
        self.recaller = Recaller(store, embedder, config.recall)
        self.compressor = Compressor(
            store,
            embedder,
            summarizer or model,
            counter,
            window=window,
            config=config.compression,
            fold_above=lambda summaries: self.planner.recent_room(summaries),
        )
        # After a background fold, the model is warmed for the next turn (every instance is a Memory).
        self._queue = CompressionQueue(
            lambda scope: self.compressor.compress(scope),
            after=lambda scope: warm_next_turn(cast("Memory", self), scope),
        )

    def with_async_store(self, async_store: AsyncEpisodeStore | None) -> Self:
        """This memory with another async store: a view sharing everything else (the store, the
        held episodes, the planners' counts, the compression queue), e.g. one per event loop, as
        an async pool belongs to the loop that opened it.

        Raises:
            ConfigError: the async store holds vectors of another dimension.
        """
        if async_store is not None and async_store.dimensions != self.embedder.dimensions:
            raise ConfigError(
                f"the async store holds {async_store.dimensions}-d vectors but the embedder makes "
                f"{self.embedder.dimensions}-d ones"
            )
        view = copy.copy(self)
        view.async_store = async_store
        return view

    def _ports(self) -> Ports:
        """The ports the sync face calls."""
        return Ports(self.store, self.embedder, self.model, self.compressor.model)

    def _aports(self) -> Ports:
        """The ports the async face awaits: the async store if there is one, else the store (its
        calls then run in worker threads)."""
        store = self.async_store if self.async_store is not None else self.store
        return Ports(store, self.embedder, self.model, self.compressor.model)

    def run_calls(self, plan: Plan[R]) -> R:
        """Run a plan of port calls (:mod:`memstrata.port_calls`) on this memory's sync face: how
        an adapter runs its own steps (reads, then ``add_calls``) on either face."""
        return port_calls.run(plan, self._ports())

    async def arun_calls(self, plan: Plan[R]) -> R:
        """:meth:`run_calls` on the async face (the async store, else the store in threads)."""
        return await port_calls.arun(plan, self._aports())

    def add_calls(self, turns: Sequence[TurnLike], scope: Scope) -> Plan[list[Episode]]:
        """``Memory.add`` as a plan of port calls, for :meth:`run_calls` and :meth:`arun_calls`."""
        return self._add_calls(turns, scope)

    def planner_for(
        self, counter: TokenCounter | None = None, window: int | None = None
    ) -> TokenBudgetPlanner:
        """The planner for a model's counter and window (default: this memory's model), kept so
        its counts are reused from plan to plan."""
        key = (id(counter or self.counter), window or self.window)
        planner = self._planners.get(key)
        if planner is None:
            planner = TokenBudgetPlanner(counter or self.counter, window=key[1], config=self.config.planner)
            if len(self._planners) >= 8:
                self._planners.clear()
            self._planners[key] = planner
        return planner

    def _add_calls(self, turns: Sequence[TurnLike], scope: Scope) -> Plan[list[Episode]]:
        """``Memory.add``: validate every turn, embed each after the one before it, write them in
        one transaction, and hold what was stored."""
        episodes = []
        for index, item in enumerate(turns):
            try:
                episodes.append(turn_episode(to_turn(item, index), scope))
            except ValidationError as exc:
                raise InvalidEpisode(exc.errors()[0]["msg"], index=index, field="content") from exc
        if not episodes:
            return []
        previous: list[Episode] = yield port_calls.store(
            "scan", scope, kinds=(EpisodeKind.TURN,), session_id=scope.session_id, order="newest", limit=1
        )
        before: Episode | None = previous[0] if previous else None
        texts = []
        for episode in episodes:
            texts.append(embedding_text(episode, before if self.config.recall.embed_previous_turn else None))
            before = episode
        vectors = yield port_calls.embed(texts)
        stored: list[Episode] = yield port_calls.store("put", episodes, vectors)
        self.planner.prime(stored)  # their memory lines are counted now, not by the next plan
        self.recaller.remember(stored)  # and recall need not read them back
        self.recaller.note_latest(scope, stored)  # the next query is embedded with these meanwhile
        return stored

    def _recent_calls(self, scope: Scope, limit: int | None) -> Plan[list[Episode]]:
        """``Memory.recent``: the session's latest turns not yet folded, oldest first."""
        n = self.config.planner.recent_turns_max if limit is None else limit
        if n == 0:
            return []
        turns: list[Episode] = yield port_calls.store(
            "scan",
            scope,
            kinds=(EpisodeKind.TURN,),
            session_id=scope.session_id,
            only_current=True,
            order="newest",
            limit=n,
        )
        return turns[::-1]

    def _summaries_calls(self, scope: Scope) -> Plan[list[Episode]]:
        """``Memory.summaries``: the running summary stack, oldest period first."""
        stack: list[Episode] = yield port_calls.store(
            "scan", scope, kinds=(EpisodeKind.SUMMARY,), only_current=True
        )
        return sorted(stack, key=lambda e: (e.occurred_at, e.seq or 0))

    def _conversation_summaries_calls(self, scope: Scope) -> Plan[list[Episode]]:
        """The summaries of this conversation's folded turns (all of the user's when the scope
        names no session): with the recent turns they are the conversation so far. Other
        conversations reach the prompt through recall, only when relevant: a small model copies
        whatever summary it is shown instead of answering."""
        if scope.session_id is None:
            return (yield from self._summaries_calls(scope))
        stack: list[Episode] = yield port_calls.store(
            "scan", scope, kinds=(EpisodeKind.SUMMARY,), session_id=scope.session_id, only_current=True
        )
        return sorted(stack, key=lambda e: (e.occurred_at, e.seq or 0))

    def _reads_calls(
        self, planner: TokenBudgetPlanner, query: str, scope: Scope
    ) -> Plan[tuple[list[Episode], list[Episode]]]:
        """The recent turns and this conversation's summaries; then the plan's fixed counts,
        ahead of it."""
        recent = yield from self._recent_calls(scope, None)
        summaries = yield from self._conversation_summaries_calls(scope)
        planner.prepare(query, summaries)
        return recent, summaries

    def _answer_call(self, plan: BudgetPlan, *, max_tokens: int | None, temperature: float) -> Call:
        """The model call that answers a plan (messages, cap, stop strings, decoding)."""
        if self.model is None:
            raise ConfigError("Memory.chat and Memory.answer need a model")
        cap = self.config.planner.reserve_tokens if max_tokens is None else max_tokens
        return port_calls.model(
            "complete", list(plan.messages), max_tokens=cap, temperature=temperature, stop=REPLY_STOPS
        )

    def _record_calls(
        self,
        user_text: str,
        result: ChatResult,
        plan: BudgetPlan,
        scope: Scope,
        asked_at: datetime,
        took: timedelta,
        key: str | None,
    ) -> Plan[Reply]:
        """Store a finished exchange and compress if due: the tail of ``chat``. The reply is
        dated ``took`` after the question, on the question's clock (a replayed past question
        gets a reply in the past, not today)."""
        stored = yield from self._add_calls(exchange_turns(user_text, result, asked_at, took, key), scope)
        report: CompressionReport | None = None
        if self.config.compression.enabled:
            if self.config.compression.background:
                self._queue.submit(scope)
            else:
                report = yield from self.compressor.compress_calls(scope)
        return Reply(
            text=result.text,
            plan=plan,
            usage=result.usage,
            stored=tuple(stored),
            compression=report,
            truncated=result.finish_reason == "length",
        )

    def _forget_calls(self, scope: Scope, ids: Sequence[uuid.UUID] | None) -> Plan[int]:
        """``Memory.forget``: delete, then let recall's held copies go."""
        deleted: int = yield port_calls.store("forget", scope, ids)
        self.recaller.drop(scope, ids)
        return deleted

    def _forget_session_calls(self, scope: Scope) -> Plan[int]:
        """``Memory.forget_session``: the session's episodes by id, so the store's cascade takes
        the summaries made from them (other sessions' summaries they had folded come back)."""
        episodes: list[Episode] = yield port_calls.store("scan", scope, session_id=scope.session_id)
        ids = [e.id for e in episodes]
        if not ids:
            return 0
        return (yield from self._forget_calls(scope, ids))
