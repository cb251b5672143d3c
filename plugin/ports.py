"""The extension points: one small protocol each.

Implementations live in ``memstrata.adapters`` (Postgres, llama.cpp, ONNX, OpenAI-compatible
servers) and in ``memstrata.testing`` (deterministic doubles). Conveniences are functions built
on these protocols, never extra required methods.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

from memstrata.fusion import Ranked
from memstrata.schemas import (
    ChatMessage,
    ChatResult,
    Episode,
    EpisodeKind,
    ScanOrder,
    Scope,
    SearchQuery,
)

Vector = Sequence[float]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into vectors of a fixed dimension. Batch-first."""

    @property
    def dimensions(self) -> int:
        """Length of every vector this embedder returns."""
        ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed a batch of texts; one unit-length vector per text, in order."""
        ...


@runtime_checkable
class TokenCounter(Protocol):
    """Counts tokens exactly as a particular model sees them."""

    def count(self, text: str) -> int:
        """Tokens of a plain text (no template, no special tokens added)."""
        ...

    def count_many(self, texts: Sequence[str]) -> list[int]:
        """:meth:`count` of each text, in order (a tokenizer with a per-call cost batches them)."""
        ...

    def count_prompt(self, messages: Sequence[ChatMessage]) -> int:
        """Tokens the model evaluates for this chat prompt, chat template included,
        with the assistant's generation prompt appended."""
        ...


@runtime_checkable
class ChatModel(Protocol):
    """Messages in, text and token usage out."""

    @property
    def context_window(self) -> int:
        """The model's context length in tokens."""
        ...

    @property
    def token_counter(self) -> TokenCounter:
        """The counter that matches this model's tokenizer and template."""
        ...

    def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        temperature: float = 0.0,
        json_schema: dict[str, Any] | None = None,
        stop: Sequence[str] = (),
    ) -> ChatResult:
        """Generate a reply. With ``json_schema``, the reply is constrained to that schema; the
        reply ends before the first of the ``stop`` strings (which is not part of it).

        Raises:
            PromptTooLong: the prompt plus ``max_tokens`` does not fit the window.
            ModelError: the model failed.
        """
        ...


@runtime_checkable
class StreamingChatModel(ChatModel, Protocol):
    """A chat model that can also stream its reply piece by piece."""

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        temperature: float = 0.0,
        stop: Sequence[str] = (),
    ) -> Iterator[str]:
        """Yield the reply's text in pieces as the model produces it (ending before any ``stop``)."""
        ...


@runtime_checkable
class PrefixCachingChatModel(ChatModel, Protocol):
    """A chat model whose server keeps the prompt prefix it last evaluated (llama.cpp does), and
    that can be handed the start of the next prompt ahead of time. Optional: ``Memory`` warms a
    model that has it after each background fold, so the turn that follows reads only its tail."""

    def warm(self, messages: Sequence[ChatMessage]) -> int:
        """Evaluate ``messages`` (the first messages of a coming prompt) into the model's prefix
        cache; returns the tokens evaluated (0 when they were cached already or cannot be).

        Raises:
            ModelError: the model failed (the cache may be cold; nothing else is lost).
        """
        ...


@runtime_checkable
class EpisodeStore(Protocol):
    """Where episodes live. Every method is scoped; every write is one transaction.

    These six operations are the primitives a backend must provide. Conveniences are built on
    them, never added to them: hybrid search is :func:`memstrata.fusion.hybrid_search` (two
    :meth:`rank` legs fused, then one :meth:`get`), and ``Memory.export`` is built on :meth:`scan`.
    ``memstrata.testing.InMemoryEpisodeStore`` is a complete reference implementation, and the
    contract suite in ``tests/conformance`` runs against every store.
    """

    @property
    def dimensions(self) -> int:
        """Length of the vectors this store holds."""
        ...

    def put(self, episodes: Sequence[Episode], vectors: Sequence[Vector]) -> list[Episode]:
        """Write a batch atomically; return the stored episodes (``seq`` assigned).

        An episode whose ``idempotency_key`` is already stored in its scope is not written
        again: the stored one is returned in its place.

        Raises:
            InvalidEpisode: any bad item (nothing is written).
            StoreUnavailable: the store failed (nothing is written).
        """
        ...

    def fold(self, summary: Episode, vector: Vector) -> Episode:
        """Write ``summary`` and mark every id in ``summary.covers`` as superseded by it,
        atomically.

        Raises:
            FoldConflict: some covered episode is missing or already superseded (nothing written).
        """
        ...

    def rank(self, query: SearchQuery) -> list[Ranked]:
        """One retriever's candidates within ``query.scope``'s user and agent, best first: ids,
        ranks and scores only (read the episodes worth showing with :meth:`get`).

        A query with a vector ranks its ``candidates`` nearest episodes by cosine distance (ties:
        older write first); a query with only a text ranks its full-text matches. Each row's score
        is :func:`~memstrata.fusion.fused_score` of its one rank with the recency weight, and the
        top ``query.k`` are returned by score (ties: newer write first). A query with neither
        returns nothing. :func:`memstrata.fusion.hybrid_ranks` fuses the two legs.

        Raises:
            InvalidInput: the query has both a vector and a text (rank one leg at a time), a
                vector of the wrong dimension, or no valid scope.
        """
        ...

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
        """Episodes of a user and agent in write order. ``only_current`` skips superseded ones."""
        ...

    def get(self, scope: Scope, ids: Sequence[uuid.UUID]) -> list[Episode]:
        """The episodes with these ids in this scope's user and agent (missing ids are skipped)."""
        ...

    def forget(self, scope: Scope, ids: Sequence[uuid.UUID] | None = None) -> int:
        """Delete the given episodes, or every episode of the scope's user and agent when
        ``ids`` is None. Returns how many were deleted."""
        ...


@runtime_checkable
class AsyncEpisodeStore(Protocol):
    """:class:`EpisodeStore`'s operations for asyncio, with the same contract and results
    (``aput`` is ``put``, ``arank`` is ``rank``...). ``Memory``'s async face (``aadd``,
    ``acontext``, ``achat``...) runs on one (without one, on the sync store in worker threads).
    The Postgres implementation is ``memstrata.adapters.postgres.AsyncPostgresEpisodeStore``; its
    contract is the sync one, run through ``memstrata.testing.contracts.AsyncEpisodeStoreContract``.
    """

    @property
    def dimensions(self) -> int:
        """Length of the vectors this store holds."""
        ...

    async def aput(self, episodes: Sequence[Episode], vectors: Sequence[Vector]) -> list[Episode]:
        """:meth:`EpisodeStore.put`."""
        ...

    async def afold(self, summary: Episode, vector: Vector) -> Episode:
        """:meth:`EpisodeStore.fold`."""
        ...

    async def arank(self, query: SearchQuery) -> list[Ranked]:
        """:meth:`EpisodeStore.rank`."""
        ...

    async def ascan(
        self,
        scope: Scope,
        *,
        kinds: Sequence[EpisodeKind] = (),
        session_id: str | None = None,
        only_current: bool = False,
        order: ScanOrder = "oldest",
        limit: int | None = None,
    ) -> list[Episode]:
        """:meth:`EpisodeStore.scan`."""
        ...

    async def aget(self, scope: Scope, ids: Sequence[uuid.UUID]) -> list[Episode]:
        """:meth:`EpisodeStore.get`."""
        ...

    async def aforget(self, scope: Scope, ids: Sequence[uuid.UUID] | None = None) -> int:
        """:meth:`EpisodeStore.forget`."""
        ...
