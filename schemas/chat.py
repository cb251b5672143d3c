"""Chat messages and model results, in the OpenAI shape every adapter speaks."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from ._model import FrozenModel
from .episodes import CleanText, Role, ToolCall


class _Frozen(FrozenModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ChatMessage(_Frozen):
    """One message sent to a chat model."""

    role: Role
    content: CleanText
    name: CleanText | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: CleanText | None = None

    def to_openai(self) -> dict[str, Any]:
        """This message as an OpenAI ``/v1/chat/completions`` message dict."""
        message: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.name:
            message["name"] = self.name
        if self.tool_calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in self.tool_calls
            ]
        if self.tool_call_id:
            message["tool_call_id"] = self.tool_call_id
        return message


class TokenUsage(_Frozen):
    """Tokens a model call evaluated and generated, as the model reports them."""

    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)


class ChatResult(_Frozen):
    """What a chat model returned."""

    text: str
    usage: TokenUsage
    finish_reason: Literal["stop", "length", "tool_calls"] | str = "stop"
    model: str = ""
