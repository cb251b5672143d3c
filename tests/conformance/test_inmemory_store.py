from __future__ import annotations

from memstrata.testing import InMemoryEpisodeStore
from memstrata.testing.contracts import EpisodeStoreContract
from memstrata.testing.contracts.store import DIM


class TestInMemoryEpisodeStore(EpisodeStoreContract):
    def make_store(self) -> InMemoryEpisodeStore:
        return InMemoryEpisodeStore(DIM)
