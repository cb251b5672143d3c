"""LangGraph adapter: :class:`MemstrataStore`, a ``langgraph.store.base.BaseStore`` backed by
memstrata's episode store (Postgres + pgvector in production), with semantic search.

Needs the ``langchain`` extra (``pip install memstrata[langchain]``).
"""

from memstrata.adapters.extras import require

require("langgraph", extra="langchain", purpose="memstrata.adapters.langgraph")

from .mapping import NamespaceMapping  # noqa: E402
from .store import MemstrataStore  # noqa: E402

__all__ = ["MemstrataStore", "NamespaceMapping"]
