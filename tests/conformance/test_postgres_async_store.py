"""The store contract through the async Postgres store: it must return what the sync one does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from memstrata.adapters.postgres import AsyncPostgresEpisodeStore, PostgresEpisodeStore
from memstrata.testing.contracts import AsyncEpisodeStoreContract
from memstrata.testing.contracts.async_store import BlockingStore, blocking_store
from memstrata.testing.contracts.store import DIM

pytestmark = pytest.mark.postgres

SCHEMA = "memstrata_contract"


@pytest.fixture(scope="module", params=["copy", "executemany"])
def blocking(request: pytest.FixtureRequest, postgres_dsn: str) -> Iterator[BlockingStore]:
    with PostgresEpisodeStore.from_conn_string(postgres_dsn, dimensions=DIM, schema=SCHEMA) as store:
        store.setup()
    with blocking_store(
        lambda: AsyncPostgresEpisodeStore.from_conn_string(
            postgres_dsn, dimensions=DIM, schema=SCHEMA, write_method=request.param
        )
    ) as face:
        yield face


class TestAsyncPostgresEpisodeStore(AsyncEpisodeStoreContract):
    """Both write paths (binary COPY and pipelined INSERTs), as for the sync store."""

    @pytest.fixture
    def store(self, blocking: BlockingStore) -> BlockingStore:
        return blocking
