"""Embeddings from an OpenAI-compatible ``/v1/embeddings`` endpoint, as a memstrata embedder."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import httpx
from memstrata.errors import InvalidInput, ModelError
from memstrata.validation import check_texts
from pydantic import SecretStr

from .connection import ServerConnection

EMBEDDINGS_PATH = "/v1/embeddings"

__all__ = ["OpenAICompatibleEmbedder"]


class OpenAICompatibleEmbedder:
    """An :class:`~memstrata.ports.Embedder` backed by a server's ``/v1/embeddings``.

    Vectors are returned L2-normalized. A server that answers one vector per token (llama.cpp
    serving a model without a pooling layer, e.g. llama-cpp-python's server) gets them mean-pooled
    here, as ``--pooling mean`` would on the server, and is then sent one text per request:
    llama-cpp-python 0.3.36 misplaces per-token vectors of every text but the first in a batch
    (``Llama.embed`` advances its offset by tokens instead of tokens x dimensions).

    Args:
        base_url: the server, with or without ``/v1``.
        model: the embedding model's name; None sends none (single-model servers).
        api_key: bearer token (never shown).
        dimensions: the vectors' length; None asks the server now (one probe embedding), so that
            ``dimensions`` is plain data afterwards.
        batch_size: texts per request.
        timeout_s, max_retries, backoff_s: as for the chat model.
        transport: an httpx transport, to inject failures in tests.

    Raises:
        ModelUnavailable, ModelError: ``dimensions`` not given and the probe failed.
    """

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        api_key: str | SecretStr | None = None,
        dimensions: int | None = None,
        batch_size: int = 32,
        timeout_s: float = 60.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if batch_size < 1:
            raise InvalidInput(f"batch_size must be at least 1, got {batch_size}")
        self._connection = ServerConnection(
            base_url,
            api_key=SecretStr(api_key) if isinstance(api_key, str) else api_key,
            timeout_s=timeout_s,
            max_retries=max_retries,
            backoff_s=backoff_s,
            transport=transport,
        )
        self._model = model
        self._batch_size = batch_size
        self._per_token = False  # learned from the server's first answer
        try:
            self._dimensions = dimensions or len(self._request(["dimensions probe"])[0])
        except BaseException:
            self._connection.close()
            raise

    @property
    def dimensions(self) -> int:
        """Length of every vector (configured, or measured by the server at construction)."""
        return self._dimensions

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed a batch of texts: one unit-length vector per text, in order.

        Raises:
            ModelUnavailable: the server cannot be reached or keeps failing.
            InvalidInput: ``texts`` is a single string, or an item is not a string.
            ModelError: the answer is malformed (wrong count, mixed lengths, a zero vector).
        """
        check_texts(texts)
        vectors: list[list[float]] = []
        start = 0
        while start < len(texts):
            size = 1 if self._per_token else self._batch_size
            vectors.extend(self._request(list(texts[start : start + size])))
            start += size
        if any(len(v) != self._dimensions for v in vectors):
            raise ModelError(
                f"the server at {self._connection.root} returned vectors of "
                f"{sorted({len(v) for v in vectors})} dimensions, expected {self._dimensions}"
            )
        return vectors

    def _request(self, batch: list[str]) -> list[list[float]]:
        # An empty text is sent as a space: servers refuse it (OpenAI) or fail on its zero tokens
        # (llama-cpp-python's, HTTP 500), and LlamaCppEmbedder embeds it the same way.
        body: dict[str, Any] = {"input": [text or " " for text in batch]}
        if self._model:
            body["model"] = self._model
        answer = self._connection.post_json(EMBEDDINGS_PATH, body)
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, list) or len(data) != len(batch):
            raise ModelError(
                f"the server at {self._connection.root} answered {EMBEDDINGS_PATH} with "
                f"{len(data) if isinstance(data, list) else 'no'} embeddings for {len(batch)} texts: "
                f"{str(answer)[:200]!r}"
            )
        try:
            raw = [item["embedding"] for item in sorted(data, key=lambda item: int(item.get("index", 0)))]
            if len(batch) > 1 and any(_per_token(r) for r in raw):
                self._per_token = True  # see the class docstring: ask again, one text at a time
                return [vector for text in batch for vector in self._request([text])]
            return [_unit(_pooled(r)) for r in raw]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelError(
                f"the server at {self._connection.root} answered unreadable embeddings: {exc}"
            ) from exc

    def close(self) -> None:
        """Close the HTTP connections."""
        self._connection.close()

    def __repr__(self) -> str:
        return f"OpenAICompatibleEmbedder({self._connection.root!r}, model={self._model!r})"


def _per_token(raw: Any) -> bool:
    return bool(raw) and isinstance(raw[0], list)


def _pooled(raw: Any) -> list[float]:
    if _per_token(raw):  # one vector per token: mean-pool them
        width = len(raw[0])
        if width == 0 or any(len(row) != width for row in raw):
            raise ValueError("per-token vectors of different lengths")
        return [math.fsum(row[i] for row in raw) / len(raw) for i in range(width)]
    return [float(x) for x in raw]


def _unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(math.fsum(x * x for x in vector))
    if not vector or norm == 0.0 or not math.isfinite(norm):
        raise ValueError("an empty, zero or non-finite vector")
    return [x / norm for x in vector]
