"""Failure handling of the OpenAI-compatible adapters, by injecting failures with httpx.MockTransport.

The happy paths (and retries ending in a real answer) are tested against a real server in
tests/integration/test_openai_compat.py.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from memstrata.adapters.openai_compat import OpenAICompatibleChatModel, OpenAICompatibleEmbedder
from memstrata.errors import ConfigError, InvalidInput, ModelError, ModelUnavailable, PromptTooLong
from memstrata.schemas import ChatMessage
from memstrata.testing import WordTokenCounter

SECRET = "sk-do-not-leak"
PROMPT = [ChatMessage(role="user", content="hello there")]


class Recorder:
    """A MockTransport handler that answers with ``respond`` and records every request."""

    def __init__(self, respond: Callable[[httpx.Request], httpx.Response]) -> None:
        self.respond = respond
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.respond(request)


def chat_model(handler: Recorder, *, max_retries: int = 3, backoff_s: float = 0.0) -> OpenAICompatibleChatModel:
    return OpenAICompatibleChatModel(
        "http://model.invalid/v1",
        model="m",
        api_key=SECRET,
        context_window=2048,
        token_counter=WordTokenCounter(),
        max_retries=max_retries,
        backoff_s=backoff_s,
        transport=httpx.MockTransport(handler),
    )


def test_retries_5xx_then_reports_unavailable() -> None:
    handler = Recorder(lambda r: httpx.Response(503, json={"error": {"message": "loading model"}}))
    with pytest.raises(ModelUnavailable, match=r"HTTP 503.*3 attempts: loading model") as info:
        chat_model(handler, max_retries=2).complete(PROMPT, max_tokens=4)
    assert len(handler.requests) == 3
    assert SECRET not in str(info.value)
    assert handler.requests[0].headers["Authorization"] == f"Bearer {SECRET}"


def test_honours_retry_after_on_429() -> None:
    handler = Recorder(lambda r: httpx.Response(429, headers={"Retry-After": "0"}, text="slow down"))
    with pytest.raises(ModelUnavailable, match="HTTP 429"):
        chat_model(handler, max_retries=1, backoff_s=30.0).complete(PROMPT, max_tokens=4)
    assert len(handler.requests) == 2  # the 30 s backoff was replaced by Retry-After: 0


def test_connection_errors_are_retried_then_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    handler = Recorder(refuse)
    with pytest.raises(ModelUnavailable, match=r"cannot reach the model server.*is it running"):
        chat_model(handler, max_retries=2).complete(PROMPT, max_tokens=4)
    assert len(handler.requests) == 3


def test_client_errors_are_not_retried() -> None:
    handler = Recorder(lambda r: httpx.Response(401, json={"error": {"message": "bad key"}}))
    with pytest.raises(ConfigError, match="MEMSTRATA_API_KEY"):
        chat_model(handler).complete(PROMPT, max_tokens=4)
    handler = Recorder(lambda r: httpx.Response(400, json={"detail": "messages: field required"}))
    with pytest.raises(ModelError, match=r"HTTP 400.*field required"):
        chat_model(handler).complete(PROMPT, max_tokens=4)
    assert len(handler.requests) == 1


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>gateway</html>"),
        httpx.Response(200, json={"object": "list", "data": []}),
        httpx.Response(200, json={"choices": [{"message": {"content": 42}}]}),
        httpx.Response(200, json=["not", "an", "object"]),
    ],
    ids=["not-json", "wrong-shape", "content-not-text", "json-array"],
)
def test_garbage_answers_are_model_errors(response: httpx.Response) -> None:
    with pytest.raises(ModelError, match=r"not JSON|not a chat completion"):
        chat_model(Recorder(lambda r: response)).complete(PROMPT, max_tokens=4)


def test_garbage_stream_event_is_a_model_error() -> None:
    body = b'data: {"choices": [{"delta": {"content": "Hi"}}]}\n\ndata: {oops\n\n'
    handler = Recorder(lambda r: httpx.Response(200, content=body, headers={"content-type": "text/event-stream"}))
    pieces = chat_model(handler).stream(PROMPT, max_tokens=4)
    assert next(pieces) == "Hi"
    with pytest.raises(ModelError, match="unreadable event"):
        next(pieces)


def test_requests_that_cannot_fit_are_refused_before_sending() -> None:
    handler = Recorder(lambda r: httpx.Response(500))
    model = chat_model(handler)
    with pytest.raises(PromptTooLong) as info:
        model.complete(PROMPT, max_tokens=2047)
    assert info.value.prompt_tokens == WordTokenCounter().count_prompt(PROMPT)
    assert info.value.available_tokens == 1
    with pytest.raises(InvalidInput):
        model.complete(PROMPT, max_tokens=0)
    assert handler.requests == []


def test_unknown_window_is_a_config_error_at_construction() -> None:
    handler = Recorder(lambda r: httpx.Response(404, json={"detail": "Not Found"}))
    with pytest.raises(ConfigError, match="context_window"):
        OpenAICompatibleChatModel("http://model.invalid", transport=httpx.MockTransport(handler))
    assert [r.url.path for r in handler.requests] == ["/props", "/v1/models"]


def test_configured_models_satisfy_the_ports_without_sending_anything() -> None:
    from memstrata.ports import Embedder, StreamingChatModel

    handler = Recorder(lambda r: httpx.Response(500))
    transport = httpx.MockTransport(handler)
    chat = OpenAICompatibleChatModel("http://model.invalid", context_window=4096, transport=transport)
    embedder = OpenAICompatibleEmbedder("http://model.invalid", dimensions=8, transport=transport)
    assert isinstance(chat, StreamingChatModel) and isinstance(embedder, Embedder)
    assert handler.requests == []


def test_embedder_rejects_malformed_answers() -> None:
    one_vector = {"data": [{"index": 0, "embedding": [1.0, 0.0]}]}
    embedder = OpenAICompatibleEmbedder(
        "http://model.invalid", transport=httpx.MockTransport(lambda r: httpx.Response(200, json=one_vector))
    )
    assert embedder.dimensions == 2  # probed at construction
    with pytest.raises(ModelError, match="1 embeddings for 2 texts"):
        embedder.embed(["a", "b"])
    zero = {"data": [{"index": 0, "embedding": [0.0, 0.0]}]}
    embedder = OpenAICompatibleEmbedder(
        "http://model.invalid",
        dimensions=2,
        transport=httpx.MockTransport(lambda r: httpx.Response(200, json=zero)),
    )
    with pytest.raises(ModelError, match="zero"):
        embedder.embed(["a"])
