"""How the Postgres store fails: typed errors, nothing half-written, no password in sight."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from memstrata.adapters.postgres import EmbeddedPostgres, PostgresEpisodeStore
from memstrata.errors import ConfigError, InvalidEpisode, StoreUnavailable
from memstrata.fusion import hybrid_search
from memstrata.schemas import Episode, Scope, SearchQuery
from memstrata.testing import HashingEmbedder

pytestmark = pytest.mark.postgres

EMBED = HashingEmbedder(16)


def episodes(scope: Scope, texts: list[str]) -> list[Episode]:
    return [Episode(scope=scope, text=t) for t in texts]


def test_an_unreachable_server_is_store_unavailable_without_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dsn = "postgresql://bob:hunter2-secret@127.0.0.1:1/app?connect_timeout=2"
    caplog.set_level(logging.DEBUG)
    with (
        pytest.raises(StoreUnavailable) as info,
        PostgresEpisodeStore.from_conn_string(dsn, dimensions=16, timeout=2),
    ):
        pass
    assert "bob:***@127.0.0.1:1/app" in str(info.value)
    chain = [info.value, info.value.__cause__, info.value.__context__]
    assert not any("hunter2-secret" in str(e) for e in chain if e is not None)
    assert "hunter2-secret" not in caplog.text


def test_a_server_that_goes_down_makes_operations_store_unavailable(postgres_test_root: Path) -> None:
    server = EmbeddedPostgres(postgres_test_root / "goes-down")
    url = server.start()
    with PostgresEpisodeStore.from_conn_string(url, dimensions=16, schema="down", timeout=2) as store:
        store.setup()
        scope = Scope(user_id="u")
        store.put(episodes(scope, ["before the outage"]), EMBED.embed(["before the outage"]))
        server.stop()  # the only user: the server stops
        with pytest.raises(StoreUnavailable):
            hybrid_search(store, SearchQuery(scope=scope, text="outage"))
        with pytest.raises(StoreUnavailable):
            store.put(episodes(scope, ["during the outage"]), EMBED.embed(["during the outage"]))
        assert (
            "://" not in repr(store) and repr(store) == "PostgresEpisodeStore(schema='down', dimensions=16)"
        )


def test_after_a_server_restart_calls_reconnect_or_fail_typed_and_nothing_is_lost(
    postgres_test_root: Path,
) -> None:
    """The server restarts while the pool is open: a call on a stale pooled connection fails with
    StoreUnavailable having written nothing, later calls get new connections; a client retrying
    with the same idempotency keys ends with every episode stored exactly once."""
    server = EmbeddedPostgres(postgres_test_root / "restarts")
    url = server.start()
    scope = Scope(user_id="u")
    try:
        with PostgresEpisodeStore.from_conn_string(
            url, dimensions=16, schema="restart", timeout=2, min_size=2, max_size=3
        ) as store:
            store.setup()

            def put(i: int) -> None:
                batch = [Episode(scope=scope, text=f"note {i}", idempotency_key=f"k{i}")]
                store.put(batch, EMBED.embed([f"note {i}"]))

            put(0)
            server.stop()
            assert server.start() == url
            succeeded = []
            for i in range(1, 8):
                try:
                    put(i)
                    succeeded.append(i)
                except StoreUnavailable:
                    pass
            # At most one failure per pooled connection, and none once a new connection served.
            assert len(succeeded) >= 4 and succeeded == list(range(succeeded[0], 8))
            assert {e.idempotency_key for e in store.scan(scope)} == {f"k{i}" for i in [0, *succeeded]}
            for i in range(1, 8):  # the client retries everything it was not told succeeded, and more
                put(i)
            assert sorted(e.idempotency_key or "" for e in store.scan(scope)) == [f"k{i}" for i in range(8)]
            assert len(hybrid_search(store, SearchQuery(scope=scope, text="note"))) == 8
    finally:
        server.stop()


def test_using_the_store_before_setup_is_a_config_error(postgres_dsn: str) -> None:
    schema = f"nosetup_{uuid.uuid4().hex[:10]}"
    with (
        PostgresEpisodeStore.from_conn_string(postgres_dsn, dimensions=16, schema=schema) as store,
        pytest.raises(ConfigError, match=r"call setup\(\) once"),
    ):
        store.scan(Scope(user_id="u"))


@pytest.fixture(scope="module")
def store(postgres_dsn: str) -> Iterator[PostgresEpisodeStore]:
    with PostgresEpisodeStore.from_conn_string(postgres_dsn, dimensions=16, schema="failures") as store:
        store.setup()
        yield store


def test_text_the_database_rejects_is_invalid_and_writes_nothing(store: PostgresEpisodeStore) -> None:
    """Under the byte limit, but its full-text index would exceed PostgreSQL's 1 MB tsvector limit."""
    scope = Scope(user_id=f"u-{uuid.uuid4().hex}")
    huge = " ".join(f"w{i:06d}q" for i in range(110_000))  # 990 kB of distinct words
    batch = episodes(scope, ["fine", huge])
    with pytest.raises(InvalidEpisode, match="tsvector"):
        store.put(batch, EMBED.embed(["fine", "x"]))
    assert store.scan(scope) == []


def test_writing_an_id_stored_by_another_agent_of_the_user_names_the_item(
    store: PostgresEpisodeStore,
) -> None:
    scope = Scope(user_id=f"u-{uuid.uuid4().hex}")
    [stored] = store.put(episodes(scope, ["first"]), EMBED.embed(["first"]))
    other_agent = scope.model_copy(update={"agent_id": "other"})
    clash = Episode(id=stored.id, scope=other_agent, text="second")
    with pytest.raises(InvalidEpisode) as info:
        store.put([*episodes(other_agent, ["ok"]), clash], EMBED.embed(["ok", "second"]))
    assert info.value.index == 1 and info.value.field == "id"
    assert store.scan(other_agent) == []


def test_numpy_vectors_are_accepted_and_checked(store: PostgresEpisodeStore) -> None:
    import numpy as np

    scope = Scope(user_id=f"u-{uuid.uuid4().hex}")
    vectors = np.asarray(EMBED.embed(["a", "b"]), dtype=np.float32)
    assert [e.seq is not None for e in store.put(episodes(scope, ["a", "b"]), vectors)] == [True, True]  # type: ignore[arg-type]  # put takes numpy matrices beyond its Sequence type
    vectors[1, 3] = np.inf
    with pytest.raises(InvalidEpisode) as info:
        store.put(episodes(scope, ["c", "d"]), vectors)  # type: ignore[arg-type]  # put takes numpy matrices beyond its Sequence type
    assert info.value.index == 1
    assert len(store.scan(scope)) == 2
