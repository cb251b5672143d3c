"""The Embedder contract against every embedder in the repository but the server's (see
test_openai_compat_ports.py): the testing double, the default ONNX MiniLM, and llama.cpp on the
default GGUF (SmolLM2-135M as a stand-in for an embedding model)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from memstrata.adapters.embeddings import LlamaCppEmbedder, MiniLMEmbedder
from memstrata.adapters.llamacpp import default_model_path
from memstrata.ports import Embedder
from memstrata.testing import HashingEmbedder
from memstrata.testing.contracts import EmbedderContract


class TestHashingEmbedder(EmbedderContract):
    batch_tolerance = 0.0  # pure Python: bit for bit

    def make_embedder(self) -> HashingEmbedder:
        return HashingEmbedder(64)


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    return MiniLMEmbedder()


class TestMiniLMEmbedder(EmbedderContract):
    batch_tolerance = 1e-5  # padding to the batch's longest text moves float sums a little

    @pytest.fixture
    def embedder(self, minilm: MiniLMEmbedder) -> Embedder:
        return minilm


@pytest.fixture(scope="module")
def llamacpp_embedder() -> Iterator[LlamaCppEmbedder]:
    # A small context keeps the long-text test fast: what it checks is truncation past n_ctx.
    with LlamaCppEmbedder(default_model_path(), n_ctx=128, n_threads=1) as embedder:
        yield embedder


@pytest.mark.model
class TestLlamaCppEmbedder(EmbedderContract):
    batch_tolerance = 1e-4  # quantized kernels split rows differently with the batch

    @pytest.fixture
    def embedder(self, llamacpp_embedder: LlamaCppEmbedder) -> Embedder:
        return llamacpp_embedder
