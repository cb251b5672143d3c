"""The TokenCounter contract: counts are deterministic, a batch counts as its items do one by one,
and a prompt counts every message's text plus the template around it."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from memstrata.errors import InvalidInput
from memstrata.ports import TokenCounter
from memstrata.schemas import ChatMessage

__all__ = ["TokenCounterContract"]

TEXTS = [
    "hello world",
    "",
    "Lisbon — café ☕ <|im_end|> 東京 🥜",
    "  leading and trailing spaces  ",
    "line one\nline two\n\nline four",
    "hello world",
    "x " * 300,
]
CONVERSATION = [
    ChatMessage(role="system", content="You answer in one short sentence."),
    ChatMessage(role="user", content="I moved to Lisbon in March 2024 — café every morning ☕."),
    ChatMessage(role="assistant", content="Noted: Lisbon since March 2024."),
    ChatMessage(role="user", content="My sister Ana visits on 12 May. What should I cook?"),
]


class TokenCounterContract:
    """Mix into a ``Test...`` class; override :meth:`make_counter` or the ``counter`` fixture."""

    def make_counter(self) -> TokenCounter:
        raise NotImplementedError("override make_counter() or the counter fixture")

    def evaluated_tokens(self, counter: TokenCounter, messages: Sequence[ChatMessage]) -> int | None:
        """The tokens the model itself evaluates for this prompt, where that can be learned without
        the counter's shortcuts (e.g. by tokenizing the rendered prompt whole); None skips the check."""
        return None

    @pytest.fixture
    def counter(self) -> TokenCounter:
        return self.make_counter()

    def test_is_a_token_counter(self, counter: TokenCounter) -> None:
        assert isinstance(counter, TokenCounter)

    def test_empty_text_is_zero_tokens_and_any_other_at_least_one(self, counter: TokenCounter) -> None:
        assert counter.count("") == 0
        for text in TEXTS:
            if text:
                assert counter.count(text) >= 1, text

    def test_longer_text_counts_more(self, counter: TokenCounter) -> None:
        assert counter.count("x " * 300) > counter.count("x " * 30) > counter.count("x")

    def test_count_many_equals_count(self, counter: TokenCounter) -> None:
        assert counter.count_many(TEXTS) == [counter.count(t) for t in TEXTS]
        assert counter.count_many(TEXTS[::-1]) == [counter.count(t) for t in TEXTS[::-1]]
        assert counter.count_many([]) == []

    def test_counts_are_deterministic(self, counter: TokenCounter) -> None:
        first = [counter.count(t) for t in TEXTS]
        assert [counter.count(t) for t in TEXTS] == first
        assert counter.count_prompt(CONVERSATION) == counter.count_prompt(CONVERSATION)

    def test_a_prompt_counts_every_message_and_more(self, counter: TokenCounter) -> None:
        total = counter.count_prompt(CONVERSATION)
        # The template adds tokens around each message and the generation prompt at the end.
        assert total > sum(counter.count(m.content) for m in CONVERSATION)
        for end in range(1, len(CONVERSATION)):
            assert counter.count_prompt(CONVERSATION[:end]) < counter.count_prompt(CONVERSATION[: end + 1])

    def test_prompt_count_equals_what_the_model_evaluates(self, counter: TokenCounter) -> None:
        conversations = [
            CONVERSATION[:1],
            CONVERSATION[:2],
            CONVERSATION,
            [ChatMessage(role="user", content=TEXTS[2])],
        ]
        for messages in conversations:
            evaluated = self.evaluated_tokens(counter, messages)
            if evaluated is None:
                pytest.skip("evaluated_tokens() not given for this counter")
            assert counter.count_prompt(messages) == evaluated

    def test_longer_message_counts_more_in_a_prompt(self, counter: TokenCounter) -> None:
        short = [ChatMessage(role="user", content="Tell me about Lisbon.")]
        long = [ChatMessage(role="user", content="Tell me about Lisbon. " * 20)]
        assert (
            counter.count_prompt(long) - counter.count_prompt(short)
            >= counter.count("Tell me about Lisbon. " * 19) - 2
        )

    def test_no_messages_is_a_typed_error(self, counter: TokenCounter) -> None:
        with pytest.raises(InvalidInput):
            counter.count_prompt([])
