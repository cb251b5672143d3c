"""The ``Memory`` facade: add turns, build budgeted contexts, chat, compress, recall, forget, export."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import wait
from datetime import datetime

from memstrata import port_calls
from memstrata.async_memory import AsyncMemoryFace
from memstrata.compression import CompressionReport
from memstrata.concurrency import background
from memstrata.errors import ConfigError, InvalidInput
from memstrata.port_calls import run
from memstrata.ports import TokenCounter
from memstrata.replies import Reply, generate
from memstrata.schemas import (
    ChatMessage,
    ChatResult,
    Episode,
    RecallHit,
    Scope,
    SearchFilters,
    utc_now,
)
from memstrata.schemas.plan import BudgetPlan
from memstrata.turns import TurnLike


class Memory(AsyncMemoryFace):
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
        async_store: the store's async face (``AsyncPostgresEpisodeStore``) for the ``a``-methods
            (``aadd``, ``acontext``, ``achat``...); without one they run the store in worker threads.

    Raises:
        ConfigError: no model and no token counter, or no window known.
    """

    def add(self, turns: Sequence[TurnLike], *, scope: Scope) -> list[Episode]:
        """Store turns (``Turn`` objects or OpenAI-style message dicts) in one transaction.

        Returns:
            The stored episodes; a turn whose ``idempotency_key`` was already stored comes back
            as the stored one, not written twice.

        Raises:
            InvalidEpisode: any bad turn (nothing is stored).
            StoreUnavailable: the store failed (nothing is stored).
        """
        return run(self._add_calls(turns, scope), self._ports())

    def recent(self, *, scope: Scope, limit: int | None = None) -> list[Episode]:
        """The latest turns of ``scope``'s session not yet folded into a summary, oldest first.

        Together with the summaries they are the whole conversation, and they change only by
        growing until a fold removes the oldest: the prompt's prefix stays put between folds.
        """
        return run(self._recent_calls(scope, limit), self._ports())

    def summaries(self, *, scope: Scope) -> list[Episode]:
        """The running summary stack of ``scope``'s user and agent, oldest period first."""
        return run(self._summaries_calls(scope), self._ports())

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
        reads = background(run, self._reads_calls(planner, query, scope), self._ports())
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
        call = self._answer_call(plan, max_tokens=max_tokens, temperature=temperature)
        result: ChatResult = run(port_calls.one(call), self._ports())
        return result

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
        took = utc_now() - started
        yield run(self._record_calls(user_text, result, plan, scope, asked_at, took, key), self._ports())

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
        """Delete episodes (and summaries made from them); when ``ids`` is None, every episode of
        the scope's user and agent, in every session (``scope.session_id`` does not narrow it: :meth:`forget_session` does).
        Recall's held copies of the forgotten episodes are let go too (they could not be recalled
        anyway: recall only looks up ids the store still returns; summaries the store deleted with
        them stay held until evicted, equally unreachable)."""
        return run(self._forget_calls(scope, ids), self._ports())

    def forget_session(self, *, scope: Scope) -> int:
        """Delete one session's episodes (``scope.session_id``) and every summary made from them;
        the user's other sessions stay. Returns how many episodes were deleted (summaries included).
        A summary that also covered other sessions goes too, and the summaries it had folded become
        current again, so nothing of the other sessions is lost."""
        return run(self._forget_session_calls(scope), self._ports())

    def export(self, *, scope: Scope) -> Iterator[str]:
        """Every episode of ``scope``'s user and agent as JSON lines, in write order."""
        for episode in self.store.scan(scope):
            yield json.dumps(episode.model_dump(mode="json"), ensure_ascii=False)
