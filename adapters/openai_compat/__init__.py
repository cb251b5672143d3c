"""Models behind OpenAI-compatible HTTP servers: llama.cpp's ``llama-server``, llama-cpp-python's
server, vLLM, or any ``/v1/chat/completions`` / ``/v1/embeddings`` endpoint (httpx).

- :class:`OpenAICompatibleChatModel`: chat, streaming, JSON-schema constrained output; timeouts,
  retries with backoff on 429/5xx/connection errors.
- :class:`OpenAICompatibleEmbedder`: ``/v1/embeddings``, batched, unit-length vectors.
- :class:`ServerTokenCounter`: the server's own tokenizer when it exposes one, else tiktoken.
- :class:`TiktokenCounter`: the offline ``cl100k_base`` estimate.
"""

from .chat_model import OpenAICompatibleChatModel
from .embedder import OpenAICompatibleEmbedder
from .tokens import ServerTokenCounter, TiktokenCounter

__all__ = ["OpenAICompatibleChatModel", "OpenAICompatibleEmbedder", "ServerTokenCounter", "TiktokenCounter"]
