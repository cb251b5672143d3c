"""The OpenAI wire format the server speaks: the request it accepts, the completions and stream
chunks it sends, and OpenAI-style error bodies for memstrata's errors."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from memstrata.errors import (
    ConfigError,
    InvalidInput,
    MemstrataError,
    ModelError,
    PromptTooLong,
    StoreUnavailable,
)
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ChatCompletionRequest",
    "completion_body",
    "error_body",
    "error_status",
    "new_completion_id",
    "sse",
    "stream_chunk",
    "text_content",
]


class ChatCompletionRequest(BaseModel):
    """A ``/v1/chat/completions`` request. OpenAI fields the server does not use are accepted
    and ignored (``top_p``, ``presence_penalty``, ...); the ones it cannot honour are refused."""

    model_config = ConfigDict(extra="allow")

    model: str | None = None
    messages: list[dict[str, Any]] = Field(min_length=1)
    stream: bool = False
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    user: str | None = None
    n: int | None = None
    tools: list[Any] | None = None
    stream_options: dict[str, Any] | None = None

    def refusal(self) -> str | None:
        """Why the server cannot serve this request, or None."""
        if self.n not in (None, 1):
            return f"n={self.n}: this server returns one choice per request"
        if self.tools:
            return "tools are not supported by memstrata serve (use the LangChain middleware for agents)"
        return None

    @property
    def include_usage(self) -> bool:
        """Whether a streamed answer ends with a usage chunk."""
        return bool((self.stream_options or {}).get("include_usage"))


def text_content(content: Any) -> Any:
    """A message's content as text: OpenAI content parts (``[{"type": "text", "text": ...}]``)
    joined; other part types (images, audio) dropped. Anything else is returned as is."""
    if isinstance(content, list):
        return "".join(
            part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text"
        )
    return content


def new_completion_id() -> str:
    """A fresh ``chatcmpl-...`` id."""
    return f"chatcmpl-{uuid.uuid4().hex}"


def completion_body(
    completion_id: str,
    model: str,
    text: str,
    finish_reason: str,
    prompt_tokens: int,
    completion_tokens: int,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """A non-streamed ``chat.completion`` (with memstrata's accounting under ``memstrata``)."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish_reason,
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "memstrata": extra,
    }


def stream_chunk(
    completion_id: str,
    model: str,
    delta: dict[str, Any] | None,
    finish_reason: str | None = None,
    usage: dict[str, int] | None = None,
) -> dict[str, Any]:
    """A ``chat.completion.chunk``; ``delta=None`` makes the usage-only chunk (no choices)."""
    chunk: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": []
        if delta is None
        else [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
    }
    if usage is not None:
        chunk["usage"] = usage
    return chunk


def sse(data: dict[str, Any] | str) -> str:
    """One server-sent event (JSON with non-ASCII escaped: a lone surrogate from the model could
    not be sent as UTF-8)."""
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"


def error_status(exc: BaseException) -> int:
    """The HTTP status for an error: 400 misuse, 502 upstream model, 503 store, 500 otherwise."""
    if isinstance(exc, InvalidInput):
        return 400
    if isinstance(exc, ModelError):
        return 502
    if isinstance(exc, StoreUnavailable):
        return 503
    return 500


def error_body(
    exc: BaseException | str, *, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """An OpenAI-style error body: ``{"error": {"message", "type", "param", "code"}}``."""
    message = str(exc)
    kind, default_code = "server_error", "internal_error"
    if isinstance(exc, (str, InvalidInput)):
        kind, default_code = "invalid_request_error", "invalid_request"
    if isinstance(exc, PromptTooLong):
        default_code = "context_length_exceeded"
    elif isinstance(exc, ModelError):
        kind, default_code = "upstream_error", "upstream_failed"
    elif isinstance(exc, StoreUnavailable):
        kind, default_code = "server_error", "store_unavailable"
    elif isinstance(exc, ConfigError):
        default_code = "server_misconfigured"
    elif isinstance(exc, BaseException) and not isinstance(exc, MemstrataError):
        message = f"internal error: {type(exc).__name__}"
    return {"error": {"message": message, "type": kind, "param": param, "code": code or default_code}}
