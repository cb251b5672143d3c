"""The Embedder contract: unit vectors of ``dimensions``, one per text, in order, deterministic,
and the same vector for a text alone or inside a batch."""

from __future__ import annotations

import math
from typing import Any

import pytest
from memstrata.errors import InvalidInput
from memstrata.ports import Embedder

__all__ = ["EmbedderContract"]

TEXTS = [
    "My flight to Tokyo leaves on Thursday morning.",
    "The dog needs to go to the vet for its vaccinations.",
    "Ünïcode café ☕, 東京, emoji 🥜 and a tab\tinside.",
    "I can't eat anything containing peanuts.",
    "x",
]


def cosine(a: list[float], b: list[float]) -> float:
    return math.fsum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(
        math.fsum(x * x for x in a) * math.fsum(y * y for y in b)
    )


class EmbedderContract:
    """Mix into a ``Test...`` class; override :meth:`make_embedder` or the ``embedder`` fixture.

    Attributes:
        batch_tolerance: how far below 1.0 the cosine of a text's vector alone and inside a batch
            may fall (quantized kernels split rows differently with the batch size).
        long_text_words: words of the text that must still embed (past most models' limit, which
            an embedder truncates or handles, never fails on).
    """

    batch_tolerance = 1e-4
    long_text_words = 600

    def make_embedder(self) -> Embedder:
        raise NotImplementedError("override make_embedder() or the embedder fixture")

    @pytest.fixture
    def embedder(self) -> Embedder:
        return self.make_embedder()

    def test_is_an_embedder_with_positive_dimensions(self, embedder: Embedder) -> None:
        assert isinstance(embedder, Embedder)
        assert isinstance(embedder.dimensions, int) and embedder.dimensions > 0

    def test_one_unit_vector_of_dimensions_per_text(self, embedder: Embedder) -> None:
        vectors = embedder.embed(TEXTS)
        assert isinstance(vectors, list) and len(vectors) == len(TEXTS)
        for vector in vectors:
            assert isinstance(vector, list) and len(vector) == embedder.dimensions
            assert all(isinstance(x, float) and math.isfinite(x) for x in vector)
            assert math.fsum(x * x for x in vector) == pytest.approx(1.0, abs=1e-4)

    def test_no_texts_is_no_vectors(self, embedder: Embedder) -> None:
        assert embedder.embed([]) == []

    def test_different_texts_get_different_vectors(self, embedder: Embedder) -> None:
        a, b = embedder.embed(TEXTS[:2])
        assert cosine(a, b) < 0.999

    def test_same_text_same_vector(self, embedder: Embedder) -> None:
        first = embedder.embed([TEXTS[0], TEXTS[1], TEXTS[0]])
        again = embedder.embed([TEXTS[0]])[0]
        assert cosine(first[0], first[2]) >= 1 - self.batch_tolerance
        assert cosine(first[0], again) >= 1 - self.batch_tolerance

    def test_batch_equals_one_by_one_in_order(self, embedder: Embedder) -> None:
        batch = embedder.embed(TEXTS)
        for text, in_batch in zip(TEXTS, batch, strict=True):
            alone = embedder.embed([text])[0]
            assert cosine(in_batch, alone) >= 1 - self.batch_tolerance, text

    def test_empty_text_gets_a_unit_vector(self, embedder: Embedder) -> None:
        [vector] = embedder.embed([""])
        assert len(vector) == embedder.dimensions
        assert math.fsum(x * x for x in vector) == pytest.approx(1.0, abs=1e-4)

    def test_long_text_gets_a_unit_vector(self, embedder: Embedder) -> None:
        long_text = " ".join(f"word{i % 97}" for i in range(self.long_text_words))
        [vector] = embedder.embed([long_text])
        assert len(vector) == embedder.dimensions
        assert math.fsum(x * x for x in vector) == pytest.approx(1.0, abs=1e-4)

    @pytest.mark.parametrize("bad", ["a single string", ["fine", 42], ["fine", None], [b"bytes"]])
    def test_bad_input_is_a_typed_error(self, embedder: Embedder, bad: Any) -> None:
        with pytest.raises(InvalidInput):
            embedder.embed(bad)
