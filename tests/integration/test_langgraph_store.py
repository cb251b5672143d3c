"""MemstrataStore against LangGraph's expectations for a ``BaseStore``.

LangGraph publishes a conformance suite for checkpointers only (langgraph-checkpoint-conformance),
none for stores. These tests take the contract from ``BaseStore``'s documentation and from the
cases LangGraph's own store tests check on its in-memory store (libs/checkpoint/tests/test_store.py:
namespace validation, list_namespaces with prefix/suffix/wildcards/depth/paging, filters, semantic
search, the async face), run on the real Postgres store with the real MiniLM embedder, and on the
in-memory doubles.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypedDict

import pytest
from langgraph.graph import START, StateGraph
from langgraph.runtime import Runtime
from langgraph.store.base import (
    GetOp,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
)
from memstrata.adapters.langgraph import MemstrataStore
from memstrata.errors import InvalidEpisode
from memstrata.ports import Embedder, EpisodeStore
from memstrata.schemas import EpisodeKind, Scope
from memstrata.testing import HashingEmbedder, InMemoryEpisodeStore

MakeStore = Callable[..., MemstrataStore]


@pytest.fixture(scope="module")
def minilm() -> Embedder:
    from memstrata.adapters.embeddings import default_embedder

    return default_embedder()


@pytest.fixture(scope="module", params=[pytest.param("postgres", marks=pytest.mark.postgres), "in-memory"])
def backend(request: pytest.FixtureRequest) -> Iterator[tuple[EpisodeStore, Embedder]]:
    if request.param == "in-memory":
        yield InMemoryEpisodeStore(64), HashingEmbedder(64)
        return
    from memstrata.adapters.postgres import PostgresEpisodeStore

    dsn = request.getfixturevalue("postgres_dsn")
    embedder = request.getfixturevalue("minilm")
    with PostgresEpisodeStore.from_conn_string(
        dsn, dimensions=embedder.dimensions, schema="memstrata_langgraph"
    ) as store:
        store.setup()
        yield store, embedder


@pytest.fixture
def make_store(backend: tuple[EpisodeStore, Embedder]) -> MakeStore:
    """A store whose catalog is private to the test (a fresh agent id), so listings are exact."""
    episodes, embedder = backend

    def make(**options: Any) -> MemstrataStore:
        options.setdefault("agent_id", f"agent-{uuid.uuid4().hex[:8]}")
        return MemstrataStore(episodes, embedder, **options)

    return make


@pytest.fixture
def store(make_store: MakeStore) -> MemstrataStore:
    return make_store()


def test_put_get_update_delete(store: MemstrataStore) -> None:
    ns = ("memories", "alice")
    assert store.get(ns, "food") is None
    store.put(ns, "food", {"text": "Alice is allergic to peanuts", "n": 1})
    first = store.get(ns, "food")
    assert first is not None
    assert (first.namespace, first.key, first.value) == (
        ns,
        "food",
        {"text": "Alice is allergic to peanuts", "n": 1},
    )
    assert first.created_at.tzinfo is not None
    store.put(ns, "food", {"text": "Alice is allergic to shellfish", "n": 2})
    second = store.get(ns, "food")
    assert second is not None and second.value["n"] == 2
    assert second.created_at == first.created_at and second.updated_at > first.updated_at
    # One stored version, not two: the old one was deleted after the new one was written.
    stored = store.store.scan(
        Scope(user_id="alice", agent_id=store.mapping.agent_id), kinds=(EpisodeKind.FACT,)
    )
    assert [e.metadata["langgraph.store"]["value"]["n"] for e in stored] == [2]
    store.delete(ns, "food")
    assert store.get(ns, "food") is None
    store.delete(ns, "never-stored")  # deleting nothing is fine


@pytest.mark.parametrize("namespace", [(), ("the", "thing.about"), ("some", "fun", ""), ("langgraph", "foo")])
def test_invalid_namespaces_are_refused(store: MemstrataStore, namespace: tuple[str, ...]) -> None:
    with pytest.raises(InvalidNamespaceError):
        store.put(namespace, "key", {"a": 1})
    with pytest.raises(InvalidNamespaceError):
        asyncio.run(store.aput(namespace, "key", {"a": 1}))


def test_langgraph_label_allowed_below_the_root(store: MemstrataStore) -> None:
    ns = ("foo", "langgraph", "foo")
    store.put(ns, "bar", {"foo": "bar"})
    assert store.get(ns, "bar").value == {"foo": "bar"}  # type: ignore[union-attr]
    assert store.search(ns)[0].value == {"foo": "bar"}
    store.delete(ns, "bar")
    assert store.get(ns, "bar") is None


def test_list_namespaces(store: MemstrataStore) -> None:
    namespaces = [
        ("a", "b", "c"),
        ("a", "b", "d", "e"),
        ("a", "b", "d", "i"),
        ("a", "b", "f"),
        ("a", "c", "f"),
        ("b", "a", "f"),
        ("users", "123"),
        ("users", "456", "settings"),
        ("admin", "users", "789"),
    ]
    assert store.list_namespaces() == []
    for i, ns in enumerate(namespaces):
        store.put(ns, f"id_{i}", {"data": f"value_{i:02d}"})
    assert store.list_namespaces() == sorted(namespaces)
    assert store.list_namespaces(prefix=("a", "b")) == sorted(namespaces[:4])
    assert store.list_namespaces(suffix=("f",)) == [("a", "b", "f"), ("a", "c", "f"), ("b", "a", "f")]
    assert store.list_namespaces(prefix=("a",), suffix=("f",)) == [("a", "b", "f"), ("a", "c", "f")]
    assert store.list_namespaces(prefix=("a", "b"), max_depth=3) == [
        ("a", "b", "c"),
        ("a", "b", "d"),
        ("a", "b", "f"),
    ]
    assert store.list_namespaces(prefix=("a", "b"), limit=2) == [("a", "b", "c"), ("a", "b", "d", "e")]
    assert store.list_namespaces(prefix=("a", "b"), offset=2) == [("a", "b", "d", "i"), ("a", "b", "f")]
    assert store.list_namespaces(prefix=("a", "*", "f")) == [("a", "b", "f"), ("a", "c", "f")]
    assert store.list_namespaces(suffix=("*", "f")) == [("a", "b", "f"), ("a", "c", "f"), ("b", "a", "f")]
    assert store.list_namespaces(prefix=("nonexistent",)) == []
    assert store.list_namespaces(prefix=("users", "123")) == [("users", "123")]
    assert store.list_namespaces(max_depth=1) == [("a",), ("admin",), ("b",), ("users",)]
    # A namespace whose last item is deleted is no longer listed.
    store.delete(("users", "123"), "id_6")
    assert store.list_namespaces(prefix=("users",)) == [("users", "456", "settings")]


def test_search_filters_paging_and_order(store: MemstrataStore) -> None:
    ns = ("docs", "u1")
    for i in range(6):
        store.put(ns, f"d{i}", {"kind": "even" if i % 2 == 0 else "odd", "score": i, "tags": {"lang": "en"}})
    store.put(("docs", "u1", "sub"), "deep", {"kind": "even", "score": 10})
    newest_first = [item.key for item in store.search(ns, limit=10)]
    assert newest_first == ["deep", "d5", "d4", "d3", "d2", "d1", "d0"]
    assert [i.key for i in store.search(ns, filter={"kind": "odd"})] == ["d5", "d3", "d1"]
    assert [i.key for i in store.search(ns, filter={"score": {"$gte": 4}, "kind": "even"})] == ["deep", "d4"]
    assert [i.key for i in store.search(ns, filter={"score": {"$ne": 0, "$lt": 3}})] == ["d2", "d1"]
    assert [i.key for i in store.search(ns, filter={"tags": {"lang": "en"}}, limit=2, offset=1)] == [
        "d4",
        "d3",
    ]
    assert [i.key for i in store.search(("docs", "u1", "sub"))] == ["deep"]
    assert all(i.score is None for i in store.search(ns))


def test_semantic_search_ranks_by_meaning(store: MemstrataStore) -> None:
    ns = ("memories", f"user-{uuid.uuid4().hex[:6]}")
    store.put(ns, "pet", {"text": "My dog Rex loves chasing tennis balls in the park."})
    store.put(ns, "work", {"text": "The quarterly sales report is due on Friday."})
    store.put(ns, "food", {"text": "I cannot eat peanuts because of a severe allergy."})
    results = store.search(ns, query="my dog Rex and the tennis balls", limit=2)
    assert results[0].key == "pet"
    assert results[0].score is not None and results[0].score >= results[1].score  # type: ignore[operator]
    assert len(results) == 2
    assert (
        store.search(ns, query="peanuts allergy", filter={"text": {"$ne": "nothing"}}, limit=1)[0].key
        == "food"
    )


def test_index_fields_and_unindexed_items(make_store: MakeStore) -> None:
    store = make_store(index_fields=("summary",))
    ns = ("notes", "bob")
    store.put(ns, "a", {"summary": "violin lessons on Tuesdays", "body": "unrelated words about taxes"})
    store.put(ns, "b", {"summary": "taxes are due in April", "body": "violin"}, index=False)
    store.put(ns, "c", {"other": "no summary field here"})
    by_query = store.search(ns, query="violin lessons")
    assert [i.key for i in by_query] == ["a"]  # "b" is not indexed, "c" has no text to index
    assert sorted(i.key for i in store.search(ns)) == ["a", "b", "c"]  # all found without a query
    store.put(ns, "b", {"summary": "taxes are due in April"}, index=["summary"])
    assert "b" in [i.key for i in store.search(ns, query="taxes due April")]


def test_batch_runs_puts_first_and_last_put_wins(store: MemstrataStore) -> None:
    ns = ("batch", "carol")
    results = store.batch(
        [
            GetOp(ns, "k"),
            PutOp(ns, "k", {"v": 1}),
            PutOp(ns, "k", {"v": 2}),
            SearchOp(ns),
            ListNamespacesOp(),
            PutOp(ns, "gone", {"v": 0}),
            PutOp(ns, "gone", None),
        ]
    )
    assert results[0].value == {"v": 2}  # type: ignore[union-attr]
    assert results[1] is None and results[2] is None
    assert [i.value for i in results[3]] == [{"v": 2}]  # type: ignore[union-attr]
    assert results[4] == [ns]


def test_async_face(store: MemstrataStore) -> None:
    async def scenario() -> None:
        ns = ("async", "dave")
        await store.aput(ns, "k", {"text": "hello"})
        item = await store.aget(ns, "k")
        assert item is not None and item.value == {"text": "hello"}
        assert [i.key for i in await store.asearch(ns, filter={"text": "hello"})] == ["k"]
        assert await store.alist_namespaces(prefix=("async",)) == [ns]
        await store.adelete(ns, "k")
        assert await store.aget(ns, "k") is None

    asyncio.run(scenario())


def test_users_are_isolated_scopes(store: MemstrataStore) -> None:
    alice, bob = f"alice-{uuid.uuid4().hex[:6]}", f"bob-{uuid.uuid4().hex[:6]}"
    store.put(("memories", alice), "secret", {"text": "Alice's locker code is 4711"})
    store.put(("memories", bob), "hobby", {"text": "Bob plays chess"})
    assert [i.key for i in store.search(("memories", bob), query="locker code 4711")] == ["hobby"]
    # Stored in the user's own memstrata scope; a search over ("memories",) spans both users.
    agent = store.mapping.agent_id
    assert [e.text for e in store.store.scan(Scope(user_id=bob, agent_id=agent))] == [
        '{"text": "Bob plays chess"}'
    ]
    assert {i.namespace for i in store.search(("memories",))} == {("memories", alice), ("memories", bob)}


def test_bad_values_store_nothing(store: MemstrataStore) -> None:
    ns = ("bad", "erin")
    with pytest.raises(InvalidEpisode):
        store.put(ns, "k", {"when": object()})
    with pytest.raises(InvalidEpisode):
        store.put(ns, "k", {"text": "nul \x00 byte"})
    assert store.get(ns, "k") is None
    assert store.list_namespaces(prefix=("bad",)) == []
    with pytest.raises(NotImplementedError):
        store.put(ns, "k", {"a": 1}, ttl=5)


class _State(TypedDict):
    user: str
    answer: str


def test_swaps_into_a_langgraph_graph(store: MemstrataStore) -> None:
    def remember(state: _State, runtime: Runtime[None]) -> dict[str, str]:
        assert runtime.store is not None
        runtime.store.put(("memories", state["user"]), "colour", {"text": "favourite colour is teal"})
        found = runtime.store.search(("memories", state["user"]), query="favourite colour")
        return {"answer": found[0].value["text"]}

    graph = StateGraph(_State).add_node("remember", remember).add_edge(START, "remember").compile(store=store)
    assert graph.invoke({"user": "frank", "answer": ""})["answer"] == "favourite colour is teal"
    assert store.get(("memories", "frank"), "colour") is not None


@pytest.mark.postgres
def test_abatch_on_the_async_store_returns_what_batch_returns(postgres_dsn: str, minilm: Embedder) -> None:
    """The same ops through ``batch`` (sync store) and ``abatch`` (``AsyncPostgresEpisodeStore``),
    each for a user of its own: the same items, hits, scores and namespaces."""
    from memstrata.adapters.postgres import AsyncPostgresEpisodeStore, PostgresEpisodeStore

    schema, dims, agent = "memstrata_langgraph", minilm.dimensions, f"agent-{uuid.uuid4().hex[:8]}"

    def ops(user: str) -> list[Op]:
        ns = ("memories", user)
        return [
            PutOp(ns, "pet", {"text": "Biscuit is a beagle who loves the beach"}),
            PutOp(ns, "car", {"text": "The car is a blue Volvo estate"}, index=False),
            PutOp(ns, "pet", {"text": "Biscuit is a beagle who loves long beach walks"}),
            PutOp(ns, "gone", {"text": "temporary"}),
            PutOp(ns, "gone", None),
            GetOp(ns, "pet"),
            GetOp(ns, "gone"),
            SearchOp(ns, query="which dog likes the beach", limit=3),
            SearchOp(ns, filter={"text": "The car is a blue Volvo estate"}),
            ListNamespacesOp(match_conditions=(MatchCondition("prefix", ns),)),
        ]

    def plain(results: list[Any], user: str) -> list[Any]:
        def one(r: Any) -> Any:
            if isinstance(r, list):
                return [one(x) for x in r]
            if isinstance(r, Item | SearchItem):
                return (r.key, r.value, getattr(r, "score", None))
            return tuple("USER" if part == user else part for part in r) if isinstance(r, tuple) else r

        return [one(r) for r in results]

    sync_user, async_user = f"sync-{uuid.uuid4().hex[:6]}", f"async-{uuid.uuid4().hex[:6]}"
    with PostgresEpisodeStore.from_conn_string(postgres_dsn, dimensions=dims, schema=schema) as episodes:
        episodes.setup()
        expected = plain(MemstrataStore(episodes, minilm, agent_id=agent).batch(ops(sync_user)), sync_user)

        async def on_async() -> list[Result]:
            async with AsyncPostgresEpisodeStore.from_conn_string(
                postgres_dsn, dimensions=dims, schema=schema
            ) as a:
                return await MemstrataStore(episodes, minilm, agent_id=agent, async_store=a).abatch(
                    ops(async_user)
                )

        got = plain(asyncio.run(on_async()), async_user)
    assert got == expected
    assert (
        expected[5][1] == {"text": "Biscuit is a beagle who loves long beach walks"} and expected[6] is None
    )
    assert [hit[0] for hit in expected[7]] == ["pet"] and expected[8][0][0] == "car"
