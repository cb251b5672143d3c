"""A deterministic embedder for tests: feature hashing of lower-cased words, so texts that share
words are close and nothing needs a model."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

from memstrata.validation import check_texts

from .words import terms

__all__ = ["HashingEmbedder"]


class HashingEmbedder:
    """Deterministic bag-of-words embedder (feature hashing of lower-cased words), unit length.

    Args:
        dimensions: length of every vector.
    """

    def __init__(self, dimensions: int = 64) -> None:
        self._dimensions = dimensions

    @property
    def dimensions(self) -> int:
        return self._dimensions

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Raises InvalidInput on a single string or an item that is not a string."""
        check_texts(texts)
        vectors = [self._hashed(terms(text)) for text in texts]
        # No words, or words whose hashes cancel out: a fixed unit vector rather than a zero one.
        return [v if any(v) else self._hashed(["<empty>"]) for v in vectors]

    def _hashed(self, words: list[str]) -> list[float]:
        vector = [0.0] * self._dimensions
        for word in words:
            digest = hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest()
            slot = int.from_bytes(digest[:4], "little") % self._dimensions
            vector[slot] += 1.0 if digest[4] & 1 else -1.0
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        return [v / norm for v in vector]
