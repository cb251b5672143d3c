from __future__ import annotations

import pytest
from memstrata.testing import InMemoryEpisodeStore

from .store_contract import DIM, EpisodeStoreContract


class TestInMemoryEpisodeStore(EpisodeStoreContract):
    @pytest.fixture
    def store(self) -> InMemoryEpisodeStore:
        return InMemoryEpisodeStore(DIM)
