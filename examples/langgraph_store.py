"""LangGraph's long-term memory store, backed by memstrata (Postgres + pgvector, MiniLM).

``MemstrataStore`` is a ``langgraph.store.base.BaseStore``: swap it in where LangGraph takes a store.
Namespaces ``("memories", user_id)`` map to the user's memstrata scope, so what a graph saves is
also recalled by memstrata's ``Memory`` for that user. No chat model is needed here.
Run: ``python examples/langgraph_store.py``.
"""

from __future__ import annotations

import uuid
from typing import TypedDict

from langgraph.graph import START, StateGraph
from langgraph.runtime import Runtime
from memstrata import Scope
from memstrata.adapters.defaults import open_memory
from memstrata.adapters.langgraph import MemstrataStore


class State(TypedDict):
    user_id: str
    note: str
    found: list[str]


def save_and_search(state: State, runtime: Runtime[None]) -> dict[str, list[str]]:
    """A graph node: store the note under the user's namespace, then search by meaning."""
    assert runtime.store is not None
    namespace = ("memories", state["user_id"])
    runtime.store.put(namespace, str(uuid.uuid4()), {"text": state["note"]})
    hits = runtime.store.search(namespace, query="what pet does the user have?", limit=2)
    return {"found": [hit.value["text"] for hit in hits]}


def main() -> None:
    user = f"example-store-{uuid.uuid4().hex[:8]}"
    with open_memory(with_model=False) as memory:
        store = MemstrataStore(memory.store, memory.embedder, index_fields=["text"])
        try:
            namespace = ("memories", user)
            store.put(namespace, "diet", {"text": "Vegetarian, and allergic to peanuts.", "kind": "health"})
            store.put(namespace, "work", {"text": "Works night shifts at the harbour.", "kind": "job"})
            print("namespaces:", store.list_namespaces(prefix=("memories",), max_depth=2)[:3], "...")

            graph = (
                StateGraph(State)
                .add_node(save_and_search)
                .add_edge(START, "save_and_search")
                .compile(store=store)
            )
            result = graph.invoke({"user_id": user, "note": "Has a grey cat called Miso.", "found": []})
            print("graph search:", result["found"])
            assert result["found"][0] == "Has a grey cat called Miso."

            health = store.search(namespace, filter={"kind": "health"})
            print("filter search:", [item.value["text"] for item in health])
            assert [item.key for item in health] == ["diet"]

            # The same items are memstrata episodes of the user: Memory.recall finds them too.
            hits = memory.recall("food allergy", scope=Scope(user_id=user), k=1)
            print("memstrata recall:", hits[0].episode.text)
            assert "peanuts" in hits[0].episode.text
            print("ok")
        finally:
            memory.forget(scope=Scope(user_id=user))


if __name__ == "__main__":
    main()
