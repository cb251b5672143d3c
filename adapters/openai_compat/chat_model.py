"""A model behind an OpenAI-compatible ``/v1/chat/completions`` endpoint (llama-server, llama-cpp-python's
server, vLLM, ...), as a memstrata chat model."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
from memstrata.errors import ConfigError, ModelError, OutputParseError
from memstrata.ports import TokenCounter
from memstrata.schemas import ChatMessage, ChatResult, TokenUsage
from memstrata.schemas.model_config import JsonMode, OpenAICompatibleConfig
from memstrata.validation import check_chat_request
from pydantic import SecretStr

from .connection import ServerConnection
from .tokens import ServerTokenCounter

CHAT_PATH = "/v1/chat/completions"

_log = logging.getLogger(__name__)

__all__ = ["OpenAICompatibleChatModel"]


class OpenAICompatibleChatModel:
    """A :class:`~memstrata.ports.StreamingChatModel` talking to an OpenAI-compatible server.

    Prompts are counted before they are sent, and one that does not fit raises
    :class:`~memstrata.errors.PromptTooLong` instead of being cut by the server. The constructor
    sends nothing when ``context_window`` is given; otherwise it asks the server for it right away
    (so ``context_window`` is plain data afterwards, and ``isinstance`` checks against the ports,
    which read it, never touch the network).

    Args:
        base_url: the server, with or without ``/v1`` (``http://127.0.0.1:8080``).
        model: the model name to request; None takes the first one ``/v1/models`` lists.
        api_key: bearer token (a ``str`` or ``SecretStr``; never shown).
        context_window: the server's window; None asks the server now (llama-server's ``/props``,
            vLLM's ``/v1/models``).
        token_counter: how prompts are counted; None uses :class:`ServerTokenCounter` (the server's
            tokenizer when it has an endpoint for it). Pass ``LlamaCppTokenCounter(path)`` when the
            served GGUF is at hand: exact, and no HTTP round trip per count.
        chat_template: the served model's Jinja template, for servers that cannot render one.
        timeout_s: seconds to wait for an answer.
        max_retries: retries after HTTP 429/5xx, connection errors and timeouts.
        backoff_s: the first retry's delay, doubling each time.
        json_mode: ``json_object`` (llama.cpp servers: ``{"type": "json_object", "schema": ...}``)
            or ``json_schema`` (OpenAI, vLLM).
        transport: an httpx transport, to inject failures in tests.

    Raises:
        ConfigError: a bad setting; ``context_window`` not given and the server does not report it.
        ModelUnavailable: ``context_window`` not given and the server cannot be reached.
    """

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        api_key: str | SecretStr | None = None,
        context_window: int | None = None,
        token_counter: TokenCounter | None = None,
        chat_template: str | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        json_mode: JsonMode = "json_object",
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        config = OpenAICompatibleConfig(
            base_url=base_url,
            model=model,
            api_key=SecretStr(api_key) if isinstance(api_key, str) else api_key,
            context_window=context_window,
            chat_template=chat_template,
            timeout_s=timeout_s,
            max_retries=max_retries,
            backoff_s=backoff_s,
            json_mode=json_mode,
        )
        self._config = config
        self._connection = ServerConnection(
            config.base_url,
            api_key=config.api_key,
            timeout_s=config.timeout_s,
            max_retries=config.max_retries,
            backoff_s=config.backoff_s,
            transport=transport,
        )
        self._counter = token_counter or ServerTokenCounter(self._connection, chat_template=chat_template)
        self._model = config.model
        self._lock = threading.Lock()
        try:
            self._window = config.context_window or self._discover_window()
        except BaseException:
            self._connection.close()
            raise

    @classmethod
    def from_config(
        cls,
        config: OpenAICompatibleConfig,
        *,
        token_counter: TokenCounter | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> OpenAICompatibleChatModel:
        """Build from an :class:`~memstrata.schemas.model_config.OpenAICompatibleConfig`."""
        return cls(
            config.base_url,
            model=config.model,
            api_key=config.api_key,
            context_window=config.context_window,
            token_counter=token_counter,
            chat_template=config.chat_template,
            timeout_s=config.timeout_s,
            max_retries=config.max_retries,
            backoff_s=config.backoff_s,
            json_mode=config.json_mode,
            transport=transport,
        )

    @property
    def base_url(self) -> str:
        """The server's root URL (without ``/v1``)."""
        return self._connection.root

    @property
    def token_counter(self) -> TokenCounter:
        """The counter prompts are checked with."""
        return self._counter

    @property
    def context_window(self) -> int:
        """The server's window in tokens (configured, or reported by the server at construction)."""
        return self._window

    @property
    def model(self) -> str | None:
        """The model name sent with requests (asked of ``/v1/models`` the first time when not set)."""
        with self._lock:
            if self._model is None:
                self._model = self._discover_model() or ""
            return self._model or None

    def _discover_window(self) -> int:
        props = self._connection.get_json("/props", optional=True)
        if isinstance(props, dict):
            settings = props.get("default_generation_settings")
            n_ctx = settings.get("n_ctx") if isinstance(settings, dict) else None
            if isinstance(n_ctx, int) and n_ctx > 0:
                return n_ctx
        for entry in self._models():
            length = entry.get("max_model_len")
            if isinstance(length, int) and length > 0:
                return length
        raise ConfigError(
            f"the server at {self.base_url} does not report its context window: pass context_window= "
            "(or set MEMSTRATA_MODEL_N_CTX) to the window it was started with"
        )

    def _discover_model(self) -> str | None:
        for entry in self._models():
            if isinstance(entry.get("id"), str):
                return str(entry["id"])
        return None

    def _models(self) -> list[dict[str, Any]]:
        listing = self._connection.get_json("/v1/models", optional=True)
        data = listing.get("data") if isinstance(listing, dict) else None
        return [entry for entry in data if isinstance(entry, dict)] if isinstance(data, list) else []

    def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        temperature: float = 0.0,
        json_schema: dict[str, Any] | None = None,
        stop: Sequence[str] = (),
    ) -> ChatResult:
        """Generate a reply; with ``json_schema`` the server constrains it to that schema.

        Returns:
            The reply, with the token usage the server reports (counted here when it reports none).

        Raises:
            InvalidInput: no messages, ``max_tokens`` < 1, or a negative temperature.
            PromptTooLong: prompt plus ``max_tokens`` exceeds the window (nothing is sent).
            OutputParseError: ``json_schema`` was given and the reply is not JSON.
            ModelUnavailable: the server cannot be reached or keeps failing (after retries).
            ModelError: the server refused the request or answered something that is not a completion.
            ConfigError: the server refused the API key, or has no chat endpoint.
        """
        prompt_tokens = self._check_request(messages, max_tokens, temperature)
        body = self._body(messages, max_tokens, temperature, stop)
        if json_schema is not None:
            body["response_format"] = self._response_format(json_schema)
        answer = self._connection.post_json(CHAT_PATH, body)
        try:
            choice = answer["choices"][0]
            text = choice["message"].get("content") or ""
            finish_reason = choice.get("finish_reason") or "stop"
            if not isinstance(text, str):
                raise TypeError(f"content is {type(text).__name__}")
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise ModelError(
                f"the server at {self.base_url} answered something that is not a chat completion: "
                f"{str(answer)[:200]!r}"
            ) from exc
        usage = _usage(answer.get("usage")) or TokenUsage(
            prompt_tokens=prompt_tokens, completion_tokens=self._counter.count(text)
        )
        if usage.prompt_tokens != prompt_tokens and getattr(self._counter, "exact", True):
            _log.warning(
                "token count mismatch for %s: counted %d prompt tokens, the server reports %d",
                self.base_url,
                prompt_tokens,
                usage.prompt_tokens,
            )
        if json_schema is not None:
            try:
                json.loads(text)
            except json.JSONDecodeError as exc:
                cut = " (cut at max_tokens: raise it)" if finish_reason == "length" else ""
                raise OutputParseError(
                    f"the server's constrained output is not valid JSON{cut}: {exc}; got {text[:200]!r}"
                ) from exc
        return ChatResult(
            text=text,
            usage=usage,
            finish_reason=finish_reason,
            model=str(answer.get("model") or self.model or ""),
        )

    def warm(self, messages: Sequence[ChatMessage]) -> int:
        """Fill a llama.cpp server's prompt cache with the start of a coming prompt: one request
        for a single token (llama-server keeps it with ``cache_prompt``; llama-cpp-python's server
        keeps its last prompt). Other servers are sent nothing: no cache there can be relied on.

        Returns:
            The prompt tokens sent (0 when nothing was sent).

        Raises:
            As :meth:`complete`.
        """
        if not isinstance(self._counter, ServerTokenCounter):
            return 0
        if self._counter.kind not in ("llama-server", "llama-cpp-python"):
            return 0
        return self.complete(messages, max_tokens=1).usage.prompt_tokens

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        temperature: float = 0.0,
        stop: Sequence[str] = (),
    ) -> Iterator[str]:
        """Yield the reply in pieces as the server sends them (server-sent events).

        Raises:
            As :meth:`complete`; a connection lost mid-stream raises ModelError.
        """
        self._check_request(messages, max_tokens, temperature)
        body = self._body(messages, max_tokens, temperature, stop)
        body["stream"] = True
        return self._stream(body)

    def _stream(self, body: dict[str, Any]) -> Iterator[str]:
        with self._connection.stream_lines(CHAT_PATH, body) as lines:
            for line in lines:
                if not line.startswith("data:"):
                    continue  # blank separators, comments and pings
                data = line[len("data:") :].strip()
                if data == "[DONE]":
                    return
                try:
                    piece = json.loads(data)["choices"][0]["delta"].get("content")
                except (json.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError) as exc:
                    raise ModelError(
                        f"the server at {self.base_url} streamed an unreadable event: {data[:200]!r}"
                    ) from exc
                if piece:
                    yield str(piece)

    def _body(
        self, messages: Sequence[ChatMessage], max_tokens: int, temperature: float, stop: Sequence[str]
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "messages": [m.to_openai() for m in messages],
            "max_tokens": max_tokens,
            "temperature": temperature,
        }
        if stop:
            body["stop"] = list(stop)[:4]  # OpenAI accepts at most four
        if isinstance(self._counter, ServerTokenCounter) and self._counter.kind == "llama-server":
            # llama-server reuses the longest common prefix of a slot's last prompt only when asked;
            # memstrata lays prompts out so that prefix is most of the prompt. Other servers (OpenAI)
            # refuse unknown fields, so it is sent to llama-server alone.
            body["cache_prompt"] = True
        if self.model:
            body["model"] = self.model
        return body

    def _response_format(self, schema: dict[str, Any]) -> dict[str, Any]:
        if self._config.json_mode == "json_schema":
            return {"type": "json_schema", "json_schema": {"name": "memstrata_output", "schema": schema}}
        return {"type": "json_object", "schema": schema}

    def _check_request(self, messages: Sequence[ChatMessage], max_tokens: int, temperature: float) -> int:
        return check_chat_request(
            self._counter,
            messages,
            max_tokens=max_tokens,
            temperature=temperature,
            window=self.context_window,
            model_label="the server",
        )

    def close(self) -> None:
        """Close the HTTP connections."""
        self._connection.close()

    def __enter__(self) -> OpenAICompatibleChatModel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"OpenAICompatibleChatModel({self.base_url!r}, model={self._model!r})"


def _usage(raw: Any) -> TokenUsage | None:
    if not isinstance(raw, dict):
        return None
    prompt, completion = raw.get("prompt_tokens"), raw.get("completion_tokens")
    if isinstance(prompt, int) and isinstance(completion, int) and prompt >= 0 and completion >= 0:
        return TokenUsage(prompt_tokens=prompt, completion_tokens=completion)
    return None
