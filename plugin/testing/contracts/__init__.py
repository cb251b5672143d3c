"""Contract suites: the tests every implementation of a port must pass, for pytest.

Subclass one in a ``Test...`` class and say how to build your implementation, either by
overriding the factory or, when it needs other fixtures, the fixture of the same name::

    from memstrata.testing.contracts import EmbedderContract

    class TestMyEmbedder(EmbedderContract):
        def make_embedder(self) -> MyEmbedder:
            return MyEmbedder()

This module imports pytest; ``import memstrata.testing`` does not import it.
"""

from __future__ import annotations

from .async_store import AsyncEpisodeStoreContract
from .chat_model import ChatModelContract
from .embedder import EmbedderContract
from .store import EpisodeStoreContract
from .token_counter import TokenCounterContract

__all__ = [
    "AsyncEpisodeStoreContract",
    "ChatModelContract",
    "EmbedderContract",
    "EpisodeStoreContract",
    "TokenCounterContract",
]
