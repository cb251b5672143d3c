"""One HTTP connection to an OpenAI-compatible server: timeouts, retries with backoff, typed errors.

Retried: HTTP 429 and 5xx answers, connection errors and timeouts, up to ``max_retries`` times,
waiting ``backoff_s * 2**attempt`` (or the server's ``Retry-After``, at most 60 s) in between.
A stream is retried only until its response starts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from memstrata.errors import ConfigError, ModelError, ModelUnavailable
from pydantic import SecretStr

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# Statuses that mean "this server has no such endpoint" when probing optional endpoints.
ABSENT_STATUSES = frozenset({400, 404, 405, 415, 422, 501})
MAX_RETRY_DELAY_S = 60.0

__all__ = ["ServerConnection", "error_message"]


class ServerConnection:
    """A pooled HTTP client for one server.

    Args:
        base_url: the server, with or without a trailing ``/v1``.
        api_key: sent as ``Authorization: Bearer ...``; never logged or shown.
        timeout_s: seconds to wait for an answer (connecting: at most 10 s).
        max_retries: retries after a retryable failure.
        backoff_s: delay before the first retry; doubles each time.
        transport: an httpx transport (tests inject failures through it).
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: SecretStr | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        root = base_url.rstrip("/")
        self.root = root[: -len("/v1")] if root.endswith("/v1") else root
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        headers = {"Accept": "application/json"}
        if api_key is not None:
            headers["Authorization"] = f"Bearer {api_key.get_secret_value()}"
        self._client = httpx.Client(
            base_url=self.root,
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)),
            transport=transport,
        )

    def post_json(self, path: str, body: dict[str, Any], *, optional: bool = False) -> Any:
        """POST a JSON body and return the decoded JSON answer.

        Args:
            path: e.g. ``/v1/chat/completions``.
            body: the request.
            optional: return None instead of raising when the server lacks the endpoint.

        Raises:
            ModelUnavailable: unreachable, timed out, or still failing (429/5xx) after the retries.
            ConfigError: the server refused the API key, or has no such endpoint (not ``optional``).
            ModelError: any other refusal, or an answer that is not JSON.
        """
        response = self._send("POST", path, body)
        return self._decode(response, path, optional=optional)

    def get_json(self, path: str, *, optional: bool = False) -> Any:
        """GET and return the decoded JSON answer (see :meth:`post_json`)."""
        response = self._send("GET", path, None)
        return self._decode(response, path, optional=optional)

    @contextmanager
    def stream_lines(self, path: str, body: dict[str, Any]) -> Iterator[Iterator[str]]:
        """POST and yield the answer's lines as they arrive (for server-sent events).

        Raises:
            ModelUnavailable, ConfigError, ModelError: as :meth:`post_json`, before the first line;
            ModelError when the connection breaks mid-stream.
        """
        response = self._send("POST", path, body, stream=True)
        try:
            if response.status_code >= 400:
                response.read()
                self._raise_for(response, path)
            yield self._lines(response, path)
        finally:
            response.close()

    def _lines(self, response: httpx.Response, path: str) -> Iterator[str]:
        try:
            yield from response.iter_lines()
        except httpx.HTTPError as exc:
            raise ModelError(f"the stream from {self.root}{path} broke off: {exc!r}") from exc

    def _send(
        self, method: str, path: str, body: dict[str, Any] | None, *, stream: bool = False
    ) -> httpx.Response:
        attempt = 0
        while True:
            backoff = self.backoff_s * 2**attempt
            try:
                request = self._client.build_request(method, path, json=body)
                response = self._client.send(request, stream=stream)
            except httpx.TimeoutException as exc:
                if attempt >= self.max_retries:
                    raise ModelUnavailable(
                        f"the model server at {self.root} did not answer {path} within {self.timeout_s:g} s"
                        f"{_attempts(attempt)}; raise timeout_s or check the server's load"
                    ) from exc
                delay = backoff
            except httpx.TransportError as exc:
                if attempt >= self.max_retries:
                    raise ModelUnavailable(
                        f"cannot reach the model server at {self.root} ({type(exc).__name__}: {exc})"
                        f"{_attempts(attempt)}; is it running? (MEMSTRATA_MODEL_URL)"
                    ) from exc
                delay = backoff
            else:
                if response.status_code not in RETRY_STATUSES or attempt >= self.max_retries:
                    return response  # an error status is raised with the server's message by the caller
                retry_after = _retry_after(response)
                delay = retry_after if retry_after is not None else backoff
                response.close()
            time.sleep(min(delay, MAX_RETRY_DELAY_S))
            attempt += 1

    def _decode(self, response: httpx.Response, path: str, *, optional: bool) -> Any:
        if optional and response.status_code in ABSENT_STATUSES:
            return None
        if response.status_code >= 400:
            self._raise_for(response, path)
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelError(
                f"the server at {self.root} answered {path} with something that is not JSON: "
                f"{response.text[:200]!r}"
            ) from exc

    def _raise_for(self, response: httpx.Response, path: str) -> None:
        status = response.status_code
        where = f"the model server at {self.root}"
        message = error_message(response)
        if status in (401, 403):
            raise ConfigError(
                f"{where} refused the credentials (HTTP {status}): set MEMSTRATA_API_KEY. {message}"
            )
        if status == 404:
            raise ConfigError(
                f"{where} has no {path} (HTTP 404): check MEMSTRATA_MODEL_URL (and the model name). {message}"
            )
        if status in RETRY_STATUSES:
            raise ModelUnavailable(
                f"{where} answered HTTP {status} to {path} after {self.max_retries + 1} attempts: {message}"
            )
        raise ModelError(f"{where} refused {path} (HTTP {status}): {message}")

    def close(self) -> None:
        """Close the pooled connections."""
        self._client.close()

    def __repr__(self) -> str:
        return f"ServerConnection({self.root!r})"


def error_message(response: httpx.Response) -> str:
    """The human part of an error answer (OpenAI's ``error.message``, FastAPI's ``detail``, or text)."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text[:300]
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and "message" in error:
            return str(error["message"])[:300]
        if isinstance(error, str):
            return error[:300]
        if "detail" in body:
            return str(body["detail"])[:300]
    return str(body)[:300]


def _attempts(attempt: int) -> str:
    return f" (after {attempt + 1} attempts)" if attempt else ""


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
