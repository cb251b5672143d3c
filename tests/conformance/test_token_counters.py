"""The TokenCounter contract against every counter in the repository but the server's (see
test_openai_compat_ports.py): the testing double, tiktoken's offline estimate, and llama.cpp's
tokenizer of the default GGUF."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
from memstrata.adapters.llamacpp import LlamaCppTokenCounter
from memstrata.adapters.openai_compat import TiktokenCounter
from memstrata.ports import TokenCounter
from memstrata.schemas import ChatMessage
from memstrata.testing import WordTokenCounter
from memstrata.testing.contracts import TokenCounterContract


class TestWordTokenCounter(TokenCounterContract):
    def make_counter(self) -> WordTokenCounter:
        return WordTokenCounter()


class TestTiktokenCounter(TokenCounterContract):
    def make_counter(self) -> TiktokenCounter:
        return TiktokenCounter()


@pytest.fixture(scope="module")
def llamacpp_counter() -> Iterator[LlamaCppTokenCounter]:
    counter = LlamaCppTokenCounter()  # vocabulary only
    yield counter
    counter.close()


class TestLlamaCppTokenCounter(TokenCounterContract):
    @pytest.fixture
    def counter(self, llamacpp_counter: LlamaCppTokenCounter) -> TokenCounter:
        return llamacpp_counter

    def evaluated_tokens(self, counter: TokenCounter, messages: Sequence[ChatMessage]) -> int | None:
        assert isinstance(counter, LlamaCppTokenCounter)
        return len(counter.tokenize_prompt(messages))  # the prompt tokenized whole, as llama.cpp does
