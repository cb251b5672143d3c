"""The Embedder, TokenCounter and ChatModel contracts against the OpenAI-compatible adapters, talking
to llama-cpp-python's own server on the default model (started as test_openai_compat.py starts it)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
from memstrata.adapters.llamacpp import LlamaCppTokenCounter
from memstrata.adapters.openai_compat import (
    OpenAICompatibleChatModel,
    OpenAICompatibleEmbedder,
    ServerTokenCounter,
)
from memstrata.adapters.openai_compat.connection import ServerConnection
from memstrata.ports import ChatModel, Embedder, TokenCounter
from memstrata.schemas import ChatMessage
from memstrata.testing.contracts import ChatModelContract, EmbedderContract, TokenCounterContract

from tests.integration.test_openai_compat import N_CTX, server_url

pytestmark = pytest.mark.model
__all__ = ["server_url"]  # the fixture, imported to be shared


@pytest.fixture(scope="module")
def local_counter() -> Iterator[LlamaCppTokenCounter]:
    counter = LlamaCppTokenCounter()  # the served GGUF's tokenizer and template, without the weights
    yield counter
    counter.close()


@pytest.fixture(scope="module")
def chat_template(local_counter: LlamaCppTokenCounter) -> str:
    return local_counter.chat_template


@pytest.fixture(scope="module")
def server_chat_model(server_url: str, chat_template: str) -> Iterator[OpenAICompatibleChatModel]:
    with OpenAICompatibleChatModel(server_url, context_window=N_CTX, chat_template=chat_template) as model:
        yield model


class TestOpenAICompatibleChatModel(ChatModelContract):
    @pytest.fixture
    def chat_model(self, server_chat_model: OpenAICompatibleChatModel) -> ChatModel:
        return server_chat_model


@pytest.fixture(scope="module")
def server_counter(server_url: str, chat_template: str) -> Iterator[ServerTokenCounter]:
    connection = ServerConnection(server_url, timeout_s=60.0)
    counter = ServerTokenCounter(connection, chat_template=chat_template)
    assert counter.kind == "llama-cpp-python" and counter.exact
    yield counter
    connection.close()


class TestServerTokenCounter(TokenCounterContract):
    @pytest.fixture
    def counter(
        self, server_counter: ServerTokenCounter, local_counter: LlamaCppTokenCounter
    ) -> TokenCounter:
        self.local = local_counter
        return server_counter

    def evaluated_tokens(self, counter: TokenCounter, messages: Sequence[ChatMessage]) -> int | None:
        return len(self.local.tokenize_prompt(messages))  # the served GGUF's prompt, tokenized whole


@pytest.fixture(scope="module")
def server_embedder(server_url: str) -> Iterator[OpenAICompatibleEmbedder]:
    embedder = OpenAICompatibleEmbedder(server_url)
    yield embedder
    embedder.close()


class TestOpenAICompatibleEmbedder(EmbedderContract):
    batch_tolerance = 1e-4  # the server embeds one text per request (see the adapter): as llama.cpp's
    long_text_words = 120  # each token comes back as a 576-float vector in JSON: keep it short

    @pytest.fixture
    def embedder(self, server_embedder: OpenAICompatibleEmbedder) -> Embedder:
        return server_embedder
