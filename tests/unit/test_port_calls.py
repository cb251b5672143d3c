"""The two loops that run a plan of port calls: the same plan gives the same result on both, a
failed call is raised inside the plan, and the async loop awaits ``a<method>`` when a port has it."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from memstrata import port_calls
from memstrata.errors import FoldConflict
from memstrata.port_calls import Plan, Ports, arun, run


class Store:
    """A port with a sync method, and an async twin of one of them."""

    def __init__(self) -> None:
        self.threads: list[str] = []

    def scan(self, n: int) -> list[int]:
        self.threads.append(threading.current_thread().name)
        return list(range(n))

    def fold(self, n: int) -> int:
        raise FoldConflict(f"taken: {n}")

    def get(self, n: int) -> str:
        return f"sync {n}"

    async def aget(self, n: int) -> str:
        return f"async {n}"


class Embedder:
    def embed(self, texts: list[str]) -> list[list[float]]:
        return [[float(len(t))] for t in texts]


def plan(n: int) -> Plan[dict[str, Any]]:
    rows: list[int] = yield port_calls.store("scan", n)
    vectors = yield port_calls.embed([str(r) for r in rows])
    try:
        yield port_calls.store("fold", n)
        folded = "folded"
    except FoldConflict as exc:
        folded = str(exc)
    pair = yield port_calls.both(port_calls.store("scan", 2), port_calls.embed(["ab"]))
    got = yield port_calls.store("get", n)
    return {"rows": rows, "vectors": vectors, "folded": folded, "pair": pair, "got": got}


def test_the_same_plan_gives_the_same_result_on_both_loops_but_awaits_a_methods() -> None:
    store = Store()
    synced = run(plan(3), Ports(store, Embedder()))
    awaited = asyncio.run(arun(plan(3), Ports(store, Embedder())))
    assert synced == {**awaited, "got": "sync 3"}
    assert awaited["got"] == "async 3"
    assert synced["folded"] == "taken: 3" and synced["pair"] == ([0, 1], [[2.0]])
    # The async loop ran the sync-only store methods in worker threads, never on the loop's thread.
    assert all(name != "MainThread" for name in store.threads[2:])


def test_a_failure_the_plan_does_not_catch_is_raised_by_both_loops() -> None:
    def failing() -> Plan[None]:
        yield port_calls.store("fold", 1)

    with pytest.raises(FoldConflict):
        run(failing(), Ports(Store(), Embedder()))
    with pytest.raises(FoldConflict):
        asyncio.run(arun(failing(), Ports(Store(), Embedder())))


def test_pending_work_is_called_by_the_sync_loop_and_awaited_by_the_async_one() -> None:
    def waits(source: Any) -> Plan[int]:
        value: int = yield port_calls.pending(source)
        return value + 1

    assert run(waits(lambda: 41), Ports(None, None)) == 42

    async def awaited() -> int:
        task = asyncio.ensure_future(asyncio.sleep(0, result=41))
        return await arun(waits(task), Ports(None, None))

    assert asyncio.run(awaited()) == 42
