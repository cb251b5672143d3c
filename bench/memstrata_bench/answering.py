"""Answering LoCoMo questions from a context with the local model (``--answer``).

Every system's context is put in the same prompt, so the answers differ only by the context:
memstrata's memory text, or a plain truncation of the conversation to the same budget (what a
user without memory gets). Greedy decoding, at most 32 new tokens.
"""

from __future__ import annotations

from memstrata.errors import ModelError, PromptTooLong
from memstrata.ports import ChatModel
from memstrata.schemas import ChatMessage

__all__ = ["ANSWER_INSTRUCTIONS", "ModelAnswerer", "answer_messages"]

ANSWER_INSTRUCTIONS = (
    "You answer questions about a long conversation between two people, using only the excerpts "
    "given. Reply with the answer alone, in a few words, with no explanation. Give dates as "
    "day month year."
)
ANSWER_MAX_TOKENS = 32


def answer_messages(question: str, context: str) -> list[ChatMessage]:
    """The prompt: fixed instructions, then the excerpts and the question."""
    excerpts = context.strip() or "(none)"
    return [
        ChatMessage(role="system", content=ANSWER_INSTRUCTIONS),
        ChatMessage(role="user", content=f"Excerpts:\n{excerpts}\n\nQuestion: {question}\nAnswer:"),
    ]


class ModelAnswerer:
    """Answers a question from a context with a chat model; counts its failures.

    Args:
        model: the chat model (the default local one in the bench).
    """

    def __init__(self, model: ChatModel) -> None:
        self._model = model
        self.failures = 0

    def __call__(self, question: str, context: str) -> str:
        """The model's answer, or "" when the model fails or the prompt does not fit."""
        try:
            result = self._model.complete(
                answer_messages(question, context), max_tokens=ANSWER_MAX_TOKENS, temperature=0.0
            )
        except (ModelError, PromptTooLong):
            self.failures += 1
            return ""
        return result.text.strip().splitlines()[0].strip() if result.text.strip() else ""
