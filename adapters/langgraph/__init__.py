"""LangGraph adapter: :class:`MemstrataStore`, a ``langgraph.store.base.BaseStore`` backed by
memstrata's episode store (Postgres + pgvector in production), with semantic search.

Needs the ``langchain`` extra (``pip install memstrata[langchain]``).
"""

from .mapping import NamespaceMapping
from .store import MemstrataStore

__all__ = ["MemstrataStore", "NamespaceMapping"]
