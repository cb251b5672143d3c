"""A token counter for tests: words and punctuation marks, with a fixed cost per message."""

from __future__ import annotations

from collections.abc import Sequence

from memstrata.errors import InvalidInput
from memstrata.schemas import ChatMessage

from .words import WORD

__all__ = ["WordTokenCounter"]


class WordTokenCounter:
    """Counts words and punctuation marks; each message costs ``per_message`` extra tokens.

    Args:
        per_message: tokens a message costs beyond its words (a template's role markers).
        prompt_overhead: tokens a prompt costs beyond its messages (the generation prompt).
    """

    def __init__(self, *, per_message: int = 4, prompt_overhead: int = 2) -> None:
        self.per_message = per_message
        self.prompt_overhead = prompt_overhead

    def count(self, text: str) -> int:
        return len(WORD.findall(text))

    def count_many(self, texts: Sequence[str]) -> list[int]:
        return [self.count(t) for t in texts]

    def count_prompt(self, messages: Sequence[ChatMessage]) -> int:
        """Raises InvalidInput on no messages, as a real chat template does."""
        if not messages:
            raise InvalidInput("a chat prompt needs at least one message")
        return self.prompt_overhead + sum(self.per_message + self.count(m.content) for m in messages)
