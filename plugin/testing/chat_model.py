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
    ) -> ChatResult:
        """The next scripted reply, cut to ``max_tokens``.

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
        completion_tokens = self._counter.count(text)
        finish_reason = "stop"
        if completion_tokens > max_tokens:
            text = self._cut(text, max_tokens)
            completion_tokens, finish_reason = self._counter.count(text), "length"
        if json_schema is not None:
            try:
                json.loads(text)
            except json.JSONDecodeError as exc:
                raise OutputParseError(f"the scripted reply is not JSON: {exc}; got {text[:200]!r}") from exc
        return ChatResult(
            text=text,
            usage=TokenUsage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens),
            finish_reason=finish_reason,
            model="scripted",
        )

    def _cut(self, text: str, max_tokens: int) -> str:
        """The longest prefix of ``text`` that counts at most ``max_tokens`` (binary search)."""
        low, high = 0, len(text)
        while low < high:
            middle = (low + high + 1) // 2
            if self._counter.count(text[:middle]) <= max_tokens:
                low = middle
            else:
                high = middle - 1
        return text[:low]

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float = 0.0
    ) -> Iterator[str]:
        """:meth:`complete`'s reply in word-sized pieces (its errors are raised here, at the call)."""
        text = self.complete(messages, max_tokens=max_tokens, temperature=temperature).text
        return iter(re.findall(r"\S+\s*|\s+", text))
