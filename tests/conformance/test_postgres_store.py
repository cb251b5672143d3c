from __future__ import annotations

from collections.abc import Iterator

import pytest
from memstrata.adapters.postgres import PostgresEpisodeStore
from memstrata.testing.contracts import EpisodeStoreContract
from memstrata.testing.contracts.store import DIM

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def shared_store(postgres_dsn: str) -> Iterator[PostgresEpisodeStore]:
    with PostgresEpisodeStore.from_conn_string(
        postgres_dsn, dimensions=DIM, schema="memstrata_contract"
    ) as store:
        store.setup()
        yield store


class TestPostgresEpisodeStore(EpisodeStoreContract):
    """Binary COPY for every batch (``auto`` would use INSERTs for the contract's small batches)."""

    @pytest.fixture
    def store(self, shared_store: PostgresEpisodeStore) -> PostgresEpisodeStore:
        # Every contract test uses fresh user ids, so one schema serves them all.
        return shared_store


@pytest.fixture(scope="module")
def executemany_store(postgres_dsn: str) -> Iterator[PostgresEpisodeStore]:
    with PostgresEpisodeStore.from_conn_string(
        postgres_dsn, dimensions=DIM, schema="memstrata_contract", write_method="executemany"
    ) as store:
        store.setup()
        yield store


class TestPostgresEpisodeStoreExecutemany(EpisodeStoreContract):
    """The same contract with the other write path (pipelined INSERTs instead of binary COPY)."""

    @pytest.fixture
    def store(self, executemany_store: PostgresEpisodeStore) -> PostgresEpisodeStore:
        return executemany_store
