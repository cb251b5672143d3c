"""The ChatModel contract: replies within ``max_tokens`` with the usage reported, prompts that do not
fit refused with :class:`~memstrata.errors.PromptTooLong` before the model runs, typed errors for
bad arguments, and greedy decoding that repeats itself."""

from __future__ import annotations

import json

import pytest
from memstrata.errors import InvalidInput, OutputParseError, PromptTooLong
from memstrata.ports import ChatModel, StreamingChatModel, TokenCounter
from memstrata.schemas import ChatMessage, ChatResult

__all__ = ["ChatModelContract"]

STORY = [
    ChatMessage(role="system", content="You are a storyteller."),
    ChatMessage(role="user", content="Tell me a long story about a dragon who learns to bake bread."),
]
FILLER = "The quick brown fox jumps over the lazy dog near the river bank. "


def oversized(counter: TokenCounter, window: int) -> list[ChatMessage]:
    """A one-message prompt of more than ``window`` tokens (repeats can merge tokens: grow until it is)."""
    repeats = window // max(counter.count(FILLER), 1) + 1
    while True:
        messages = [ChatMessage(role="user", content=FILLER * repeats)]
        if counter.count_prompt(messages) > window:
            return messages
        repeats += repeats // 4 + 1


class ChatModelContract:
    """Mix into a ``Test...`` class; override :meth:`make_chat_model` or the ``chat_model`` fixture.

    The model must answer a request for a long story with more than ``max_tokens`` tokens (a
    scripted double: give it a long reply).

    Attributes:
        max_tokens: the small budget the generation tests use (keeps real models fast).
        counts_exactly: whether ``usage.prompt_tokens`` must equal ``token_counter.count_prompt``
            (False for a counter that estimates, such as tiktoken for a remote model).
    """

    max_tokens = 6
    counts_exactly = True

    def make_chat_model(self) -> ChatModel:
        raise NotImplementedError("override make_chat_model() or the chat_model fixture")

    @pytest.fixture
    def chat_model(self) -> ChatModel:
        return self.make_chat_model()

    def test_is_a_chat_model(self, chat_model: ChatModel) -> None:
        assert isinstance(chat_model, ChatModel)
        assert isinstance(chat_model.context_window, int) and chat_model.context_window > 0
        assert isinstance(chat_model.token_counter, TokenCounter)

    def test_reply_honours_max_tokens_and_reports_usage(self, chat_model: ChatModel) -> None:
        result = chat_model.complete(STORY, max_tokens=self.max_tokens)
        assert isinstance(result, ChatResult) and result.text.strip()
        assert 1 <= result.usage.completion_tokens <= self.max_tokens
        assert result.finish_reason == "length"  # a long story cannot fit: it was cut
        counted = chat_model.token_counter.count_prompt(STORY)
        if self.counts_exactly:
            assert result.usage.prompt_tokens == counted
        else:
            assert result.usage.prompt_tokens > 0

    def test_greedy_reply_is_deterministic(self, chat_model: ChatModel) -> None:
        first = chat_model.complete(STORY, max_tokens=self.max_tokens, temperature=0.0)
        again = chat_model.complete(STORY, max_tokens=self.max_tokens, temperature=0.0)
        assert again.text == first.text

    def test_reply_ends_before_a_stop_string(self, chat_model: ChatModel) -> None:
        # "e" comes early in any English story: the reply must end before it, never include it.
        result = chat_model.complete(STORY, max_tokens=self.max_tokens, stop=["e"])
        assert "e" not in result.text
        assert result.usage.completion_tokens <= self.max_tokens

    def test_oversized_prompt_is_refused_with_both_counts(self, chat_model: ChatModel) -> None:
        window = chat_model.context_window
        messages = oversized(chat_model.token_counter, window)
        with pytest.raises(PromptTooLong) as info:
            chat_model.complete(messages, max_tokens=self.max_tokens)
        assert info.value.prompt_tokens == chat_model.token_counter.count_prompt(messages) > window
        assert info.value.available_tokens == window - self.max_tokens

    def test_prompt_plus_max_tokens_over_the_window_is_refused(self, chat_model: ChatModel) -> None:
        room = chat_model.context_window - chat_model.token_counter.count_prompt(STORY)
        with pytest.raises(PromptTooLong):
            chat_model.complete(STORY, max_tokens=room + 1)

    @pytest.mark.parametrize(
        ("messages", "max_tokens", "temperature"),
        [(STORY, 0, 0.0), (STORY, -1, 0.0), (STORY, 4, -0.5), ([], 4, 0.0)],
        ids=["zero-max-tokens", "negative-max-tokens", "negative-temperature", "no-messages"],
    )
    def test_bad_arguments_are_typed_errors(
        self, chat_model: ChatModel, messages: list[ChatMessage], max_tokens: int, temperature: float
    ) -> None:
        with pytest.raises(InvalidInput):
            chat_model.complete(messages, max_tokens=max_tokens, temperature=temperature)

    def test_json_schema_reply_is_json_or_a_typed_error(self, chat_model: ChatModel) -> None:
        schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
        messages = [ChatMessage(role="user", content="I live in Lisbon. Which city do I live in?")]
        try:
            result = chat_model.complete(messages, max_tokens=32, json_schema=schema)
        except OutputParseError:
            return  # refusing unparsable output is allowed; returning it as if it were JSON is not
        json.loads(result.text)

    def test_stream_yields_the_reply_of_complete(self, chat_model: ChatModel) -> None:
        if not isinstance(chat_model, StreamingChatModel):
            pytest.skip("not a StreamingChatModel")
        whole = chat_model.complete(STORY, max_tokens=self.max_tokens)
        pieces = list(chat_model.stream(STORY, max_tokens=self.max_tokens))
        assert len(pieces) >= 1 and "".join(pieces) == whole.text

    def test_stream_refuses_an_oversized_prompt_at_the_call(self, chat_model: ChatModel) -> None:
        if not isinstance(chat_model, StreamingChatModel):
            pytest.skip("not a StreamingChatModel")
        messages = oversized(chat_model.token_counter, chat_model.context_window)
        with pytest.raises(PromptTooLong):
            chat_model.stream(messages, max_tokens=self.max_tokens)  # before any piece is read
