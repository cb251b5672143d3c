from __future__ import annotations

from memstrata.testing import InMemoryEpisodeStore
from memstrata.testing.contracts import EpisodeStoreContract


class TestInMemoryEpisodeStore(EpisodeStoreContract):
    def make_store(self) -> InMemoryEpisodeStore:
        return InMemoryEpisodeStore(self.dimensions)
