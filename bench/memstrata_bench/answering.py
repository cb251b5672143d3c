"""Answering LoCoMo questions with the local model (``--answer``).

memstrata is answered through its own product path (``Memory.context`` then ``Memory.answer``:
the messages, cap, stop strings and decoding of ``Memory.chat``). Every other context (memstrata's
memory text, the plain truncation, the gold evidence) goes into one short excerpt prompt, the same
for all, so those answers differ only by the context. Every reply is generated with the same
model, cap, stop strings and greedy decoding.

Small models often open with a label (``Excerpts:``, ``Answer:``) on a line of its own, so the
scored answer is the first non-empty line that is not a bare label, with such a label stripped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from memstrata.errors import ModelError, PromptTooLong
from memstrata.ports import ChatModel
from memstrata.schemas import ChatMessage, ChatResult

__all__ = [
    "EXCERPT_INSTRUCTION",
    "AnswerReply",
    "ExcerptAnswerer",
    "excerpt_messages",
    "extract_answer",
    "reply_of",
]

EXCERPT_INSTRUCTION = "Answer the question in a few words, using only the excerpts."
"""The one-line instruction of the excerpt prompt (the same for every context answered with it)."""

_LABEL = re.compile(
    r"^\s*[*#]*\s*(?:excerpts?|answer|question|notes?|reply|response)\s*[*]*\s*:\s*[*]*\s*", re.IGNORECASE
)

_ECHOED_QUESTION = re.compile(r"^\s*[*#]*\s*question\s*[*]*\s*:", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class AnswerReply:
    """One reply of the model: the whole text, the line scored, its size and whether it hit the cap."""

    text: str
    answer: str
    tokens: int
    at_cap: bool
    failed: bool = False


def extract_answer(text: str) -> str:
    """The answer in a reply: its first non-empty line that is not a bare label such as
    ``Excerpts:`` or ``Answer:`` nor an echoed ``Question: ...``, with a leading label stripped."""
    for line in text.splitlines():
        if _ECHOED_QUESTION.match(line):
            continue
        body = _LABEL.sub("", line, count=1).strip()
        if body:
            return body
    return ""


def reply_of(result: ChatResult) -> AnswerReply:
    """A model result as a scored reply."""
    text = result.text.strip()
    return AnswerReply(
        text=text,
        answer=extract_answer(text),
        tokens=result.usage.completion_tokens,
        at_cap=result.finish_reason == "length",
    )


FAILED = AnswerReply(text="", answer="", tokens=0, at_cap=False, failed=True)
"""The reply recorded when the model fails or the prompt does not fit (scored as empty)."""


def excerpt_messages(question: str, context: str) -> list[ChatMessage]:
    """The excerpt prompt: a one-line instruction, the excerpts, then the question."""
    excerpts = context.strip() or "(none)"
    return [
        ChatMessage(role="system", content=EXCERPT_INSTRUCTION),
        ChatMessage(role="user", content=f"{excerpts}\n\nQuestion: {question}"),
    ]


class ExcerptAnswerer:
    """Answers a question from a context with the excerpt prompt; counts failures.

    Args:
        model: the chat model (the default local one in the bench).
        max_tokens: the reply cap (the bench passes memstrata's, so every system has the same).
        stop: stop strings (the bench passes memstrata's).
    """

    def __init__(self, model: ChatModel, *, max_tokens: int, stop: Sequence[str] = ()) -> None:
        self._model = model
        self.max_tokens = max_tokens
        self.stop = tuple(stop)
        self.failures = 0

    def __call__(self, question: str, context: str) -> AnswerReply:
        """The model's reply; :data:`FAILED` when the model fails or the prompt does not fit."""
        try:
            result = self._model.complete(
                excerpt_messages(question, context),
                max_tokens=self.max_tokens,
                temperature=0.0,
                stop=self.stop,
            )
        except (ModelError, PromptTooLong):
            self.failures += 1
            return FAILED
        return reply_of(result)
