"""Deterministic doubles for testing agents that use memstrata, with no database and no model.

- :class:`InMemoryEpisodeStore`: passes the same contract suite as the Postgres store.
- :class:`HashingEmbedder`: bag-of-words feature hashing; texts sharing words are close.
- :class:`WordTokenCounter`: counts words and punctuation, plus a fixed cost per message.
- :class:`ScriptedChatModel`: replies from a script (or a function of the prompt), and records
  every prompt it was given.

None of these is a substitute for the real components in production. The contract suites every
implementation of a port must pass are in :mod:`memstrata.testing.contracts` (it needs pytest, so
it is imported only when asked for).
"""

from __future__ import annotations

from .chat_model import ScriptedChatModel
from .embedder import HashingEmbedder
from .store import InMemoryEpisodeStore
from .token_counter import WordTokenCounter

__all__ = ["HashingEmbedder", "InMemoryEpisodeStore", "ScriptedChatModel", "WordTokenCounter"]
