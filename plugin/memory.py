"""The ``Memory`` facade: add turns, build budgeted contexts, chat, compress, recall, forget, export."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import wait
from datetime import datetime, timedelta

from memstrata.compression import CompressionReport, Compressor
from memstrata.concurrency import background
from memstrata.errors import ConfigError, InvalidEpisode, InvalidInput
from memstrata.planner import TokenBudgetPlanner
from memstrata.ports import ChatModel, Embedder, EpisodeStore, TokenCounter
from memstrata.recall import Recaller, embedding_text
from memstrata.replies import REPLY_STOPS, Reply, exchange_turns, generate
from memstrata.scheduler import CompressionQueue
from memstrata.schemas import (
    ChatMessage,
    ChatResult,
    Episode,
    EpisodeKind,
    RecallHit,
    Scope,
    SearchFilters,
    utc_now,
)
from memstrata.schemas.config import MemoryConfig
from memstrata.schemas.plan import BudgetPlan
from memstrata.turns import TurnLike, to_turn, turn_episode
from pydantic import ValidationError


class Memory:
    """Long-term memory for one model, over an episode store.

    Every method takes the ``scope`` it works in: one user (and agent) never sees another's
    episodes; ``scope.session_id`` names the conversation turns are added to.

    Args:
        store: where episodes live (``PostgresEpisodeStore`` in production).
        embedder: embeds turns, summaries and queries.
        model: the chat model; needed for ``chat`` and for model-written summaries.
        summarizer: the model that writes summaries, when it should not be ``model`` itself: with
            llama.cpp, a second context on the same weights keeps the chat's prompt cache intact
            (``LlamaCppChatModel.sibling()``; ``open_memory`` does this).
        token_counter: defaults to the model's.
        config: window, planner, recall and compression settings.

    Raises:
        ConfigError: no model and no token counter, or no window known.
    """

    def __init__(
        self,
        store: EpisodeStore,
        embedder: Embedder,
        *,
        model: ChatModel | None = None,
        token_counter: TokenCounter | None = None,
        config: MemoryConfig = MemoryConfig(),
        summarizer: ChatModel | None = None,
    ) -> None:
        counter = token_counter or (model.token_counter if model is not None else None)
        if counter is None:
            raise ConfigError("Memory needs a model or a token_counter to count tokens")
        window = config.context_window or (model.context_window if model is not None else None)
        if window is None:
            raise ConfigError("Memory needs config.context_window when no model is given")
        if store.dimensions != embedder.dimensions:
            raise ConfigError(
                f"the store holds {store.dimensions}-d vectors but the embedder makes {embedder.dimensions}-d ones"
            )
        self.store = store
        self.embedder = embedder
        self.model = model
        self.counter = counter
        self.window = window
        self.config = config
        self._planners: dict[tuple[int, int], TokenBudgetPlanner] = {}
        self.planner = self.planner_for()
        self.recaller = Recaller(store, embedder, config.recall)
        self.compressor = Compressor(
            store, embedder, summarizer or model, counter, window=window, config=config.compression
        )
        self._queue = CompressionQueue(lambda scope: self.compress(scope=scope))

    def add(self, turns: Sequence[TurnLike], *, scope: Scope) -> list[Episode]:
        """Store turns (``Turn`` objects or OpenAI-style message dicts) in one transaction.

        Returns:
            The stored episodes; a turn whose ``idempotency_key`` was already stored comes back
            as the stored one, not written twice.

        Raises:
            InvalidEpisode: any bad turn (nothing is stored).
            StoreUnavailable: the store failed (nothing is stored).
        """
        episodes = []
        for index, item in enumerate(turns):
            try:
                episodes.append(turn_episode(to_turn(item, index), scope))
            except ValidationError as exc:
                raise InvalidEpisode(exc.errors()[0]["msg"], index=index, field="content") from exc
        if not episodes:
            return []
        previous = self.store.scan(
            scope, kinds=(EpisodeKind.TURN,), session_id=scope.session_id, order="newest", limit=1
        )
        before: Episode | None = previous[0] if previous else None
        texts = []
        for episode in episodes:
            texts.append(embedding_text(episode, before if self.config.recall.embed_previous_turn else None))
            before = episode
        stored = self.store.put(episodes, self.embedder.embed(texts))
        self.planner.prime(stored)  # their memory lines are counted now, not by the next plan
        self.recaller.remember(stored)  # and recall need not read them back
        self.recaller.note_latest(scope, stored)  # the next query is embedded with these meanwhile
        return stored

    def recent(self, *, scope: Scope, limit: int | None = None) -> list[Episode]:
        """The latest turns of ``scope``'s session not yet folded into a summary, oldest first.

        Together with the summaries they are the whole conversation, and they change only by
        growing until a fold removes the oldest: the prompt's prefix stays put between folds.
        """
        n = self.config.planner.recent_turns_max if limit is None else limit
        if n == 0:
            return []
        turns = self.store.scan(
            scope,
            kinds=(EpisodeKind.TURN,),
            session_id=scope.session_id,
            only_current=True,
            order="newest",
            limit=n,
        )
        return turns[::-1]

    def summaries(self, *, scope: Scope) -> list[Episode]:
        """The running summary stack of ``scope``'s user and agent, oldest period first."""
        stack = self.store.scan(scope, kinds=(EpisodeKind.SUMMARY,), only_current=True)
        return sorted(stack, key=lambda e: (e.occurred_at, e.seq or 0))

    def _conversation_summaries(self, scope: Scope) -> list[Episode]:
        """The summaries of this conversation's folded turns (all of the user's when the scope
        names no session): with the recent turns they are the conversation so far. Other
        conversations reach the prompt through recall, only when relevant: a small model copies
        whatever summary it is shown instead of answering."""
        if scope.session_id is None:
            return self.summaries(scope=scope)
        stack = self.store.scan(
            scope, kinds=(EpisodeKind.SUMMARY,), session_id=scope.session_id, only_current=True
        )
        return sorted(stack, key=lambda e: (e.occurred_at, e.seq or 0))

    def _reads(
        self, planner: TokenBudgetPlanner, query: str, scope: Scope
    ) -> tuple[list[Episode], list[Episode]]:
        """The recent turns and the summary stack; then the plan's fixed counts, ahead of it."""
        recent, summaries = self.recent(scope=scope), self._conversation_summaries(scope)
        planner.prepare(query, summaries)
        return recent, summaries

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

    def context(
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
        """The budgeted prompt for answering ``query`` now: the one assembly path every caller
        uses (``chat``, the server, the LangChain middleware, the pipeline wrapper).

        Args:
            query: the latest user message: what memory is recalled for.
            scope: whose memory; ``scope.session_id`` is the conversation.
            memory_budget, reserve, system: override the planner config's for this call.
            now: the time recall measures recency from.
            lead, tail: in-flight messages before and after ``query`` (other user messages of the
                request; tool calls and results of an answer in progress).
            counter, window: the answering model's, when it is not this memory's model.
            measure: counts the final messages as the answering model sees them (e.g. with tools).

        Returns:
            The plan: ``plan.messages`` is exactly what to send, ``plan.prompt_tokens`` its count.

        Raises:
            PromptTooLong: the fixed part alone (system prompt, new messages) does not fit.
        """
        planner = self.planner_for(counter, window)
        frame = planner.frame(query, system=system, reserve=reserve, lead=lead, tail=tail, measure=measure)
        # The recent turns and the summary stack are read while recall embeds and searches.
        reads = background(self._reads, planner, query, scope)
        try:
            hits = self.recaller.recall(query, scope=scope, recent=lambda: reads.result()[0], now=now)
        except BaseException:
            wait([reads])
            raise
        recent, summaries = reads.result()
        return planner.plan(
            frame, recent=recent, summaries=summaries, recalled=hits, memory_budget=memory_budget
        )

    def answer(
        self,
        plan: BudgetPlan,
        *,
        max_tokens: int | None = None,
        temperature: float = 0.0,
    ) -> ChatResult:
        """The model's reply to a plan from :meth:`context`, generated exactly as :meth:`chat`
        generates it (messages, cap, stop strings, decoding), without storing anything.

        Raises:
            ConfigError, PromptTooLong, ModelError: as :meth:`chat`.
        """
        if self.model is None:
            raise ConfigError("Memory.chat and Memory.answer need a model")
        cap = self.config.planner.reserve_tokens if max_tokens is None else max_tokens
        return self.model.complete(
            list(plan.messages), max_tokens=cap, temperature=temperature, stop=REPLY_STOPS
        )

    def chat(
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
        """Answer ``user_text`` from memory, store both turns, then compress if due.

        Nothing is stored when the model fails. A reply cut at ``max_tokens`` or caught looping
        is stored flagged (``metadata["memstrata.reply"]``), so recall can discount it.

        Args:
            idempotency_key: makes a retry safe (after a crash or a lost reply): the two turns
                are stored under ``key + ":user"`` and ``key + ":assistant"``, so a retried chat
                stores them once, and ``Reply.stored`` holds the turns the first call stored.
            max_tokens: the reply's cap; default the planner's answer reserve.
            temperature: 0 is greedy (deterministic).
            system: this call's system prompt instead of the configured one.

        Raises:
            ConfigError: no model configured.
            PromptTooLong: the message does not fit even without memory.
            ModelError: the model failed (nothing stored).
        """
        reply = None
        for reply in self._exchange(  # noqa: B007 (the last item is the reply)
            user_text, scope, occurred_at, idempotency_key, max_tokens, temperature, system, streamed=False
        ):
            pass
        assert isinstance(reply, Reply)
        return reply

    def stream(
        self,
        user_text: str,
        *,
        scope: Scope,
        occurred_at: datetime | None = None,
        idempotency_key: str | None = None,
        max_tokens: int | None = None,
        temperature: float = 0.0,
        system: str | None = None,
    ) -> Iterator[str | Reply]:
        """:meth:`chat`, streamed: yields the reply's text in pieces as the model writes them, then
        the final :class:`Reply` (the turns are stored only once the reply is complete; a stream
        closed early stores nothing).

        Raises:
            As :meth:`chat`, from the first ``next()``.
        """
        yield from self._exchange(
            user_text, scope, occurred_at, idempotency_key, max_tokens, temperature, system, streamed=True
        )

    def _exchange(
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
    ) -> Iterator[str | Reply]:
        """One exchange, for :meth:`chat` and :meth:`stream`: plan, generate (in pieces when
        streamed and the model can), then store; yields the pieces, then the :class:`Reply`."""
        if self.model is None:
            raise ConfigError(f"Memory.{'stream' if streamed else 'chat'} needs a model")
        started = utc_now()
        asked_at = occurred_at or started
        plan = self.context(user_text, scope=scope, now=asked_at, reserve=max_tokens, system=system)
        cap = self.config.planner.reserve_tokens if max_tokens is None else max_tokens
        result = None
        for result in generate(self.model, plan, cap=cap, temperature=temperature, streamed=streamed):
            if isinstance(result, str):
                yield result
        assert isinstance(result, ChatResult)
        yield self._record(
            user_text, result, plan, scope=scope, asked_at=asked_at, took=utc_now() - started, key=key
        )

    def _record(
        self,
        user_text: str,
        result: ChatResult,
        plan: BudgetPlan,
        *,
        scope: Scope,
        asked_at: datetime,
        took: timedelta,
        key: str | None,
    ) -> Reply:
        """Store a finished exchange and compress if due: the tail of :meth:`chat`. The reply is
        dated ``took`` after the question, on the question's clock (a replayed past question
        gets a reply in the past, not today)."""
        stored = self.add(exchange_turns(user_text, result, asked_at, took, key), scope=scope)
        report = None
        if self.config.compression.enabled:
            if self.config.compression.background:
                self._queue.submit(scope)
            else:
                report = self.compress(scope=scope)
        return Reply(
            text=result.text,
            plan=plan,
            usage=result.usage,
            stored=tuple(stored),
            compression=report,
            truncated=result.finish_reason == "length",
        )

    def wait_for_compression(self) -> None:
        """Wait until the compressions queued by :meth:`chat` (in the background) have run."""
        self._queue.drain()

    def close(self) -> None:
        """Finish queued compressions and stop their worker (the store and model stay open)."""
        self._queue.close()

    def compress(self, *, scope: Scope, force: bool = False) -> CompressionReport:
        """Fold what is due into summaries (one transaction per fold; raw turns are kept)."""
        return self.compressor.compress(scope, force=force)

    def recall(
        self, query: str, *, scope: Scope, k: int | None = None, filters: SearchFilters = SearchFilters()
    ) -> list[RecallHit]:
        """Episodes of ``scope``'s user and agent relevant to ``query``, best first."""
        if not query.strip():
            raise InvalidInput("the recall query is empty")
        return self.recaller.recall(query, scope=scope, k=k, filters=filters)

    def forget(self, *, scope: Scope, ids: Sequence[uuid.UUID] | None = None) -> int:
        """Delete episodes (and summaries made from them); all of the scope's when ``ids`` is None.
        Recall's held copies of the forgotten episodes are let go too (they could not be recalled
        anyway: recall only looks up ids the store still returns; summaries the store deleted with
        them stay held until evicted, equally unreachable)."""
        deleted = self.store.forget(scope, ids)
        self.recaller.drop(scope, ids)
        return deleted

    def export(self, *, scope: Scope) -> Iterator[str]:
        """Every episode of ``scope``'s user and agent as JSON lines, in write order."""
        for episode in self.store.scan(scope):
            yield json.dumps(episode.model_dump(mode="json"), ensure_ascii=False)
