"""The ``Memory`` facade: add turns, build budgeted contexts, chat, compress, recall, forget, export."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import wait
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

from memstrata.compression import CompressionReport, Compressor
from memstrata.concurrency import background
from memstrata.errors import ConfigError, InvalidEpisode, InvalidInput, ModelError
from memstrata.planner import TokenBudgetPlanner
from memstrata.ports import ChatModel, Embedder, EpisodeStore, TokenCounter
from memstrata.recall import Recaller, embedding_text
from memstrata.rendering import TOOL_CALL_ID_KEY, TOOL_CALLS_KEY
from memstrata.replies import REPLY_FLAG_KEY, REPLY_STOPS, reply_quality
from memstrata.schemas import (
    ChatResult,
    Episode,
    EpisodeKind,
    RecallHit,
    Scope,
    SearchFilters,
    TokenUsage,
    Turn,
    check_text,
    utc_now,
)
from memstrata.schemas.config import MemoryConfig
from memstrata.schemas.plan import BudgetPlan
from pydantic import ValidationError

TurnLike: TypeAlias = Turn | Mapping[str, Any]


@dataclass(frozen=True)
class Reply:
    """What :meth:`Memory.chat` returns.

    Attributes:
        text: the model's answer.
        plan: the budget plan the answer was made from.
        usage: tokens the model evaluated and generated.
        stored: the user and assistant turns as stored.
        compression: what compression did after the turn (None if it did not run).
        truncated: the reply was cut at its token cap (it does not end where the model meant it to).
    """

    text: str
    plan: BudgetPlan
    usage: TokenUsage
    stored: tuple[Episode, ...]
    compression: CompressionReport | None
    truncated: bool = False


_OPENAI_RESPONSE_FIELDS = ("refusal", "annotations", "audio", "function_call", "tool_calls", "name")
"""Fields of an OpenAI chat message that carry nothing when null or empty: dropped, so a message
echoed back from ``response.choices[0].message.model_dump()`` is accepted."""


def to_turn(item: TurnLike, index: int | None = None) -> Turn:
    """A :class:`Turn` from a Turn or an OpenAI-style message dict.

    Raises:
        InvalidEpisode: naming the item and the problem.
    """
    if isinstance(item, Turn):
        return item
    if not isinstance(item, Mapping):
        raise InvalidEpisode(f"expected a Turn or a message dict, got {type(item).__name__}", index=index)
    data: dict[str, Any] = dict(item)
    for key in _OPENAI_RESPONSE_FIELDS:  # as the openai client returns an assistant message
        if data.get(key) in (None, [], {}):
            data.pop(key, None)
    if data.get("content") is None and isinstance(data.get("refusal"), str):
        data["content"] = data.pop("refusal")
    if "speaker" not in data and "name" in data:
        data["speaker"] = data.pop("name")
    if data.get("content") is None and data.get("tool_calls"):
        data["content"] = ""
    calls = data.get("tool_calls")
    if isinstance(calls, list):
        data["tool_calls"] = [_flatten_call(c) for c in calls]
    try:
        return Turn.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or None
        raise InvalidEpisode(first["msg"], index=index, field=where) from exc


def _flatten_call(call: Any) -> Any:
    if isinstance(call, Mapping) and isinstance(call.get("function"), Mapping):
        return {
            "id": call.get("id"),
            "name": call["function"].get("name"),
            "arguments": call["function"].get("arguments", "{}"),
        }
    return call


def turn_episode(turn: Turn, scope: Scope) -> Episode:
    """The episode a turn is stored as (tool calls kept in reserved metadata keys)."""
    metadata = dict(turn.metadata)
    if turn.tool_calls:
        metadata[TOOL_CALLS_KEY] = [c.model_dump() for c in turn.tool_calls]
    if turn.tool_call_id:
        metadata[TOOL_CALL_ID_KEY] = turn.tool_call_id
    text = turn.content
    if not text.strip() and turn.tool_calls:
        text = "(calls " + ", ".join(c.name for c in turn.tool_calls) + ")"
    return Episode(
        scope=scope,
        kind=EpisodeKind.TURN,
        text=text,
        role=turn.role,
        speaker=turn.speaker,
        occurred_at=turn.occurred_at,
        metadata=metadata,
        idempotency_key=turn.idempotency_key,
    )


class Memory:
    """Long-term memory for one model, over an episode store.

    Every method takes the ``scope`` it works in: one user (and agent) never sees another's
    episodes; ``scope.session_id`` names the conversation turns are added to.

    Args:
        store: where episodes live (``PostgresEpisodeStore`` in production).
        embedder: embeds turns, summaries and queries.
        model: the chat model; needed for ``chat`` and for model-written summaries.
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
        self.planner = TokenBudgetPlanner(counter, window=window, config=config.planner)
        self.recaller = Recaller(store, embedder, config.recall)
        self.compressor = Compressor(
            store, embedder, model, counter, window=window, config=config.compression
        )

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
        """The latest turns of ``scope``'s session, oldest first."""
        n = self.config.planner.recent_turns_max if limit is None else limit
        if n == 0:
            return []
        turns = self.store.scan(
            scope, kinds=(EpisodeKind.TURN,), session_id=scope.session_id, order="newest", limit=n
        )
        return turns[::-1]

    def summaries(self, *, scope: Scope) -> list[Episode]:
        """The running summary stack of ``scope``'s user and agent, oldest period first."""
        stack = self.store.scan(scope, kinds=(EpisodeKind.SUMMARY,), only_current=True)
        return sorted(stack, key=lambda e: (e.occurred_at, e.seq or 0))

    def _reads(self, query: str, scope: Scope) -> tuple[list[Episode], list[Episode]]:
        """The recent turns and the summary stack; then the plan's fixed counts, ahead of it."""
        recent, summaries = self.recent(scope=scope), self.summaries(scope=scope)
        self.planner.prepare(query, summaries)
        return recent, summaries

    def context(
        self,
        query: str,
        *,
        scope: Scope,
        memory_budget: int | None = None,
        now: datetime | None = None,
        reserve: int | None = None,
        system: str | None = None,
    ) -> BudgetPlan:
        """The budgeted prompt for answering ``query`` now: summaries, recalled episodes and
        recent turns that fit, counted with the model's tokenizer.

        Raises:
            PromptTooLong: the query alone does not fit the window.
        """
        # The recent turns, the summary stack and recall's full-text leg are read while the query
        # is embedded (with the session's last turns as this process last saw them: see
        # Recaller.recall); the vector leg follows the embedding.
        # (One thread reads both, one after the other: each is a small indexed read, and a third
        # thread beside the embedding and the text leg only slowed all three. It then counts the
        # plan's fixed parts while the vector leg runs.)
        reads = background(self._reads, query, scope)
        try:
            hits = self.recaller.recall(query, scope=scope, recent=lambda: reads.result()[0], now=now)
        except BaseException:
            wait([reads])
            raise
        recent, summaries = reads.result()
        planner = self.planner
        update = {k: v for k, v in (("reserve_tokens", reserve), ("system_prompt", system)) if v is not None}
        if update:
            planner = TokenBudgetPlanner(
                self.counter, window=self.window, config=self.config.planner.model_copy(update=update)
            )
        return planner.plan(
            query,
            recent=recent,
            summaries=summaries,
            recalled=hits,
            memory_budget=memory_budget,
        )

    def answer(
        self,
        plan: BudgetPlan,
        *,
        max_tokens: int | None = None,
        temperature: float = 0.0,
    ) -> ChatResult:
        """The model's reply to a plan, generated exactly as :meth:`chat` generates it (same
        messages, cap, stop strings and decoding), without storing anything.

        Args:
            plan: from :meth:`context`.
            max_tokens: the reply's cap; default the planner's answer reserve.
            temperature: 0 is greedy.

        Raises:
            ConfigError: no model configured.
            PromptTooLong: the plan plus ``max_tokens`` does not fit the model's window.
            ModelError: the model failed.
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
        if self.model is None:
            raise ConfigError("Memory.chat needs a model")
        asked_at = occurred_at or utc_now()
        plan = self.context(user_text, scope=scope, now=asked_at, reserve=max_tokens, system=system)
        result = self.answer(plan, max_tokens=max_tokens, temperature=temperature)
        return self._record(user_text, result, plan, scope=scope, asked_at=asked_at, key=idempotency_key)

    def _record(
        self,
        user_text: str,
        result: ChatResult,
        plan: BudgetPlan,
        *,
        scope: Scope,
        asked_at: datetime,
        key: str | None,
    ) -> Reply:
        """Store a finished exchange and compress if due: the tail of :meth:`chat`."""
        try:
            check_text(result.text)
        except ValueError as exc:
            raise ModelError(f"the model's answer cannot be stored: {exc} (nothing was stored)") from None
        quality = reply_quality(result.text, result.finish_reason)
        user_key = assistant_key = None
        if key is not None:
            user_key, assistant_key = f"{key}:user", f"{key}:assistant"
        stored = self.add(
            [
                Turn(role="user", content=user_text, occurred_at=asked_at, idempotency_key=user_key),
                Turn(
                    role="assistant",
                    content=result.text.strip() or "(no answer)",
                    occurred_at=max(asked_at, utc_now()),
                    idempotency_key=assistant_key,
                    metadata={REPLY_FLAG_KEY: quality} if quality else {},
                ),
            ],
            scope=scope,
        )
        report = self.compress(scope=scope) if self.config.compression.enabled else None
        return Reply(
            text=result.text,
            plan=plan,
            usage=result.usage,
            stored=tuple(stored),
            compression=report,
            truncated=result.finish_reason == "length",
        )

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
