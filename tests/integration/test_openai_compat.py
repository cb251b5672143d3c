"""The OpenAI-compatible adapters against a real server: llama-cpp-python's own
(``python -m llama_cpp.server``) serving the default model on a loopback port, started here.

Failures are injected with an httpx transport that fails the first requests and then passes
them to the real server, so a retry ends in the server's real answer.
"""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from memstrata.adapters.llamacpp import LlamaCppTokenCounter, default_model_path
from memstrata.adapters.openai_compat import OpenAICompatibleChatModel, OpenAICompatibleEmbedder
from memstrata.errors import ConfigError, ModelUnavailable
from memstrata.schemas import ChatMessage

pytestmark = pytest.mark.model

N_CTX = 2048
CONVERSATIONS = [
    [
        ChatMessage(role="system", content="You answer in one short sentence."),
        ChatMessage(role="user", content="What is the capital of France?"),
    ],
    [
        ChatMessage(role="system", content="You are terse."),
        ChatMessage(role="user", content="I moved to Lisbon in March 2024 — café every morning ☕."),
        ChatMessage(role="assistant", content="Noted: Lisbon since March 2024."),
        ChatMessage(role="user", content="My sister Ana visits on 12 May; no peanuts 🥜. What to avoid?"),
    ],
]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """llama-cpp-python's server on the default model (embeddings on), stopped at the end."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(default_model_path()),
        "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", str(N_CTX), "--embedding", "true",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                pytest.fail(f"the server exited with {process.returncode}:\n{log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the server did not start within 90 s:\n{log_path.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@pytest.fixture(scope="module")
def local_counter() -> Iterator[LlamaCppTokenCounter]:
    counter = LlamaCppTokenCounter()  # the served GGUF's tokenizer, vocabulary only
    yield counter
    counter.close()


@pytest.fixture
def model(server_url: str, local_counter: LlamaCppTokenCounter) -> Iterator[OpenAICompatibleChatModel]:
    with OpenAICompatibleChatModel(
        f"{server_url}/v1", context_window=N_CTX, chat_template=local_counter.chat_template
    ) as chat_model:
        yield chat_model


class FlakyTransport(httpx.BaseTransport):
    """Fails the first requests (an HTTP status, or a refused connection), then passes to the server."""

    def __init__(self, failures: list[int | None]) -> None:
        self.failures = list(failures)  # a status, or None for a refused connection
        self.attempts = 0
        self.real = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.attempts += 1
        if self.failures:
            status = self.failures.pop(0)
            if status is None:
                raise httpx.ConnectError("injected: connection refused", request=request)
            return httpx.Response(status, json={"error": {"message": "injected failure"}})
        return self.real.handle_request(request)

    def close(self) -> None:
        self.real.close()


def test_counts_via_the_server_tokenizer_equal_usage(model: OpenAICompatibleChatModel) -> None:
    counter = model.token_counter
    for messages in CONVERSATIONS:
        result = model.complete(messages, max_tokens=8)
        assert result.text
        assert 1 <= result.usage.completion_tokens <= 8
        assert counter.count_prompt(messages) == result.usage.prompt_tokens
    assert getattr(counter, "kind", None) == "llama-cpp-python"
    assert getattr(counter, "exact", None) is True


def test_the_served_gguf_counter_equals_usage(server_url: str, local_counter: LlamaCppTokenCounter) -> None:
    with OpenAICompatibleChatModel(
        server_url, context_window=N_CTX, token_counter=local_counter
    ) as chat_model:
        result = chat_model.complete(CONVERSATIONS[1], max_tokens=4)
        assert local_counter.count_prompt(CONVERSATIONS[1]) == result.usage.prompt_tokens


def test_text_counts_use_the_server_tokenizer(server_url: str, local_counter: LlamaCppTokenCounter) -> None:
    with OpenAICompatibleChatModel(server_url, context_window=N_CTX) as chat_model:
        counter = chat_model.token_counter
        assert getattr(counter, "exact", None) is False  # no template: prompts are estimated
        for text in ("hello world", "Lisbon — café ☕ <|im_end|> 東京", "x " * 300):
            assert counter.count(text) == local_counter.count(text)


def test_model_name_is_discovered_and_window_is_not(server_url: str) -> None:
    with OpenAICompatibleChatModel(server_url, context_window=N_CTX) as chat_model:
        assert chat_model.model == str(default_model_path())  # the server's /v1/models id
    with pytest.raises(ConfigError, match="context_window"):
        OpenAICompatibleChatModel(server_url)  # llama-cpp-python's server does not report it


def test_stream_yields_the_same_text_as_complete(model: OpenAICompatibleChatModel) -> None:
    whole = model.complete(CONVERSATIONS[0], max_tokens=12)
    pieces = list(model.stream(CONVERSATIONS[0], max_tokens=12))
    assert len(pieces) > 1 and "".join(pieces) == whole.text


def test_json_schema_output_parses(model: OpenAICompatibleChatModel) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    messages = [ChatMessage(role="user", content="I live in Lisbon. Which city do I live in?")]
    result = model.complete(messages, max_tokens=32, json_schema=schema)
    assert isinstance(json.loads(result.text)["city"], str)


def test_embeddings(server_url: str) -> None:
    embedder = OpenAICompatibleEmbedder(server_url)
    flight = "My flight to Tokyo leaves on Thursday."
    texts = [flight, "The dog needs its vaccinations.", flight]
    vectors = embedder.embed(texts)
    assert embedder.dimensions == 576 == len(vectors[0])  # SmolLM2-135M's hidden size
    assert all(math.isclose(math.fsum(x * x for x in v), 1.0, rel_tol=1e-6) for v in vectors)
    alone = embedder.embed([texts[0]])[0]
    cosine = math.fsum(a * b for a, b in zip(vectors[0], vectors[2], strict=True))
    assert cosine > 0.99999  # the same text gets the same vector wherever it sits in a batch
    assert math.fsum(a * b for a, b in zip(vectors[0], alone, strict=True)) > 0.99999
    assert math.fsum(a * b for a, b in zip(vectors[0], vectors[1], strict=True)) < 0.999
    embedder.close()


def test_retries_end_in_the_real_answer(server_url: str, local_counter: LlamaCppTokenCounter) -> None:
    flaky = FlakyTransport([503, None, 429])
    with OpenAICompatibleChatModel(
        server_url,
        model="smollm2",  # configured: the only requests are the chat completion's attempts
        context_window=N_CTX,
        token_counter=local_counter,
        max_retries=3,
        backoff_s=0.05,
        transport=flaky,
    ) as chat_model:
        started = time.perf_counter()
        result = chat_model.complete(CONVERSATIONS[0], max_tokens=4)
        elapsed = time.perf_counter() - started
    assert flaky.attempts == 4 and not flaky.failures and result.text
    assert result.usage.prompt_tokens == local_counter.count_prompt(CONVERSATIONS[0])
    assert elapsed >= 0.05 + 0.1 + 0.2  # exponential backoff between the attempts


def test_retries_give_up_after_max_retries(server_url: str, local_counter: LlamaCppTokenCounter) -> None:
    flaky = FlakyTransport([503, 503, 503])
    with (
        OpenAICompatibleChatModel(
            server_url,
            model="smollm2",
            context_window=N_CTX,
            token_counter=local_counter,
            max_retries=2,
            backoff_s=0.0,
            transport=flaky,
        ) as chat_model,
        pytest.raises(ModelUnavailable, match=r"HTTP 503.*3 attempts"),
    ):
        chat_model.complete(CONVERSATIONS[0], max_tokens=4)
    assert flaky.attempts == 3


def test_server_down_is_unavailable(local_counter: LlamaCppTokenCounter) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with (
        OpenAICompatibleChatModel(
            url, context_window=N_CTX, token_counter=local_counter, max_retries=1, backoff_s=0.01
        ) as chat_model,
        pytest.raises(ModelUnavailable, match="cannot reach the model server"),
    ):
        chat_model.complete(CONVERSATIONS[0], max_tokens=4)
    with pytest.raises(ModelUnavailable, match="is it running"):
        OpenAICompatibleEmbedder(url, max_retries=0)  # probes its dimensions
    embedder = OpenAICompatibleEmbedder(url, dimensions=576, max_retries=0)
    with pytest.raises(ModelUnavailable, match="is it running"):
        embedder.embed(["hello"])
    embedder.close()
    # Without a counter of its own, the first count already needs the server.
    with (
        OpenAICompatibleChatModel(url, context_window=N_CTX, max_retries=0) as chat_model,
        pytest.raises(ModelUnavailable),
    ):
        chat_model.token_counter.count("hello")


def test_warm_fills_the_servers_prompt_cache(
    model: OpenAICompatibleChatModel, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The request after a warm evaluates only what follows the warmed messages (llama-cpp-python's
    server logs each prefix hit with the tokens it still evaluated)."""
    log = next(tmp_path_factory.getbasetemp().glob("llama-server*/server.log"))
    start = [
        ChatMessage(role="system", content="You answer from the notes. Summary: Ana visits on 12 May."),
        ChatMessage(role="user", content="I moved to Lisbon in March 2024."),
        ChatMessage(role="assistant", content="Noted: Lisbon since March 2024."),
    ]
    assert model.warm(start) == model.token_counter.count_prompt(start)
    before = log.read_text(errors="replace")
    prompt = [*start, ChatMessage(role="user", content="When does Ana visit?")]
    model.complete(prompt, max_tokens=4)
    hits = log.read_text(errors="replace")[len(before) :].split("prefix-match hit, remaining ")
    assert len(hits) > 1, "no prefix hit logged"
    remaining = int(hits[-1].split()[0])
    assert (
        0 < remaining < model.token_counter.count_prompt(prompt) - model.token_counter.count_prompt(start) + 4
    )
