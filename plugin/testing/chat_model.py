"""A chat model for tests: replies from a script, and keeps every prompt it was given."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from memstrata.errors import ModelError, OutputParseError
from memstrata.ports import TokenCounter
from memstrata.schemas import ChatMessage, ChatResult, TokenUsage
from memstrata.validation import check_chat_request

from .token_counter import WordTokenCounter

__all__ = ["ScriptedChatModel"]


class ScriptedChatModel:
    """A chat model that answers from a script, held to the same rules as a real one: the prompt
    must fit the window, a reply longer than ``max_tokens`` is cut (``finish_reason="length"``),
    and a reply asked for with ``json_schema`` must be JSON.

    Args:
        replies: answers returned in order (cycling is not done: running out raises), or a
            function from the prompt's messages to the answer.
        context_window: the window it claims, enforced with ``token_counter``.
        token_counter: defaults to :class:`WordTokenCounter`.
    """

    def __init__(
        self,
        replies: Sequence[str] | Callable[[Sequence[ChatMessage]], str],
        *,
        context_window: int = 2048,
        token_counter: TokenCounter | None = None,
    ) -> None:
        self._replies: Callable[[Sequence[ChatMessage]], str]
        if callable(replies):
            self._replies = replies
        else:
            script = iter(list(replies))

            def next_reply(_: Sequence[ChatMessage]) -> str:
                try:
                    return next(script)
                except StopIteration:
                    raise ModelError("ScriptedChatModel ran out of scripted replies") from None

            self._replies = next_reply
        self._window = context_window
        self._counter = token_counter or WordTokenCounter()
        self.prompts: list[list[ChatMessage]] = []

    @property
    def context_window(self) -> int:
        return self._window

    @property
    def token_counter(self) -> TokenCounter:
        return self._counter

    def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        temperature: float = 0.0,
        json_schema: dict[str, Any] | None = None,
        stop: Sequence[str] = (),
    ) -> ChatResult:
        """The next scripted reply, ended before the first ``stop`` string and cut to ``max_tokens``.

        Raises:
            InvalidInput, PromptTooLong: as a real model (see :func:`memstrata.validation.check_chat_request`).
            ModelError: the script ran out.
            OutputParseError: ``json_schema`` was given and the reply is not JSON.
        """
        prompt_tokens = check_chat_request(
            self._counter,
            messages,
            max_tokens=max_tokens,
            temperature=temperature,
            window=self._window,
            model_label="ScriptedChatModel",
        )
        self.prompts.append(list(messages))
        text = self._replies(messages)
        for marker in stop:
            text = text.split(marker, 1)[0] if marker else text
        finish_reason = "stop"
        if self._counter.count(text) > max_tokens:  # cut at the cap, as a real model is
            words = re.findall(r"\S+\s*", text)
            while words and self._counter.count("".join(words).rstrip()) > max_tokens:
                words.pop()
            text, finish_reason = "".join(words).rstrip(), "length"
        if json_schema is not None:
            try:
                json.loads(text)
            except json.JSONDecodeError as exc:
                raise OutputParseError(f"the scripted reply is not JSON: {exc}; got {text[:200]!r}") from exc
        return ChatResult(
            text=text,
            usage=TokenUsage(prompt_tokens=prompt_tokens, completion_tokens=self._counter.count(text)),
            finish_reason=finish_reason,
            model="scripted",
        )

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        temperature: float = 0.0,
        stop: Sequence[str] = (),
    ) -> Iterator[str]:
        """:meth:`complete`'s reply in word-sized pieces (its errors are raised here, at the call)."""
        text = self.complete(messages, max_tokens=max_tokens, temperature=temperature, stop=stop).text
        return iter(re.findall(r"\S+\s*|\s+", text))
