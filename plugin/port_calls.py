"""Memory's operations as plans of port calls, run by a sync or an async loop.

An operation that talks to the store, the embedder or the model (add turns, fold summaries, read
a session, forget) is written once, as a generator that yields each :class:`Call` it needs and
receives its result: what to read, what to write, and what to make of the results is decided
there, with no I/O. :func:`run` makes the calls directly (``Memory.add``); :func:`arun` awaits
them (``Memory.aadd``): a port's ``a<method>`` when it has one (an
:class:`~memstrata.ports.AsyncEpisodeStore`), else ``<method>`` in a worker thread (the embedder,
a chat model without an async path). A failed call is raised inside the plan, so it can catch
what it expects (a ``FoldConflict``, a ``ModelError``).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Generator, Mapping
from concurrent.futures import wait
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, TypeVar

from memstrata.concurrency import background

__all__ = [
    "Call",
    "Plan",
    "Ports",
    "acall",
    "arun",
    "embed",
    "model",
    "one",
    "pending",
    "run",
    "store",
    "summarizer",
]

R = TypeVar("R")
PortName = Literal["store", "embedder", "model", "summarizer", "pending", "both"]


@dataclass(frozen=True, slots=True)
class Call:
    """``port.method(*args, **kwargs)``, as data."""

    port: PortName
    method: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)


Plan: TypeAlias = Generator[Call, Any, R]


@dataclass(frozen=True, slots=True)
class Ports:
    """The objects a plan's calls go to (an async store for :func:`arun`, or a sync one)."""

    store: Any
    embedder: Any
    model: Any = None
    summarizer: Any = None


def store(method: str, /, *args: Any, **kwargs: Any) -> Call:
    """A call to the episode store (``scan``, ``put``, ``fold``, ``get``, ``forget``, ``rank``)."""
    return Call("store", method, args, kwargs)


def embed(texts: list[str]) -> Call:
    """The embedder's ``embed(texts)``."""
    return Call("embedder", "embed", (texts,))


def model(method: str, /, *args: Any, **kwargs: Any) -> Call:
    """A call to the chat model (``complete``)."""
    return Call("model", method, args, kwargs)


def summarizer(method: str, /, *args: Any, **kwargs: Any) -> Call:
    """A call to the model that writes summaries (``complete``)."""
    return Call("summarizer", method, args, kwargs)


def pending(source: Any) -> Call:
    """The result of work already running: ``source()`` for :func:`run` (e.g. a future's
    ``result``), ``await source`` for :func:`arun` (a task)."""
    return Call("pending", "", (source,))


def both(first: Call, second: Call) -> Call:
    """Two calls at once (``first`` in the background, as two legs of a search); their results
    come back as a pair."""
    return Call("both", "", (first, second))


def one(call: Call) -> Plan[Any]:
    """A plan of one call."""
    return (yield call)


def run(plan: Plan[R], ports: Ports) -> R:
    """Run ``plan``, calling the ports directly; returns what it returns."""
    reply: Any = None
    failure: Exception | None = None
    while True:
        try:
            call = plan.send(reply) if failure is None else plan.throw(failure)
        except StopIteration as done:
            result: R = done.value
            return result
        reply, failure = None, None
        try:
            reply = _call(ports, call)
        except Exception as exc:
            failure = exc


def _call(ports: Ports, call: Call) -> Any:
    if call.port == "pending":
        return call.args[0]()
    if call.port == "both":
        first = background(_call, ports, call.args[0])
        try:
            second = _call(ports, call.args[1])
        finally:
            wait([first])  # never leave a call running on a connection the caller may close
        return first.result(), second
    return getattr(getattr(ports, call.port), call.method)(*call.args, **call.kwargs)


async def arun(plan: Plan[R], ports: Ports) -> R:
    """Run ``plan``, awaiting each call (see the module doc); returns what it returns."""
    reply: Any = None
    failure: Exception | None = None
    while True:
        try:
            call = plan.send(reply) if failure is None else plan.throw(failure)
        except StopIteration as done:
            result: R = done.value
            return result
        reply, failure = None, None
        try:
            reply = await acall(ports, call)
        except Exception as exc:
            failure = exc


async def acall(ports: Ports, call: Call) -> Any:
    """Make one call as :func:`arun` makes it."""
    if call.port == "pending":
        source = call.args[0]
        return await source if inspect.isawaitable(source) else source()
    if call.port == "both":
        first = asyncio.ensure_future(acall(ports, call.args[0]))
        try:
            second = await acall(ports, call.args[1])
        finally:
            await asyncio.wait([first])
        return first.result(), second
    port = getattr(ports, call.port)
    native = getattr(port, "a" + call.method, None)
    if native is not None and inspect.iscoroutinefunction(native):
        return await native(*call.args, **call.kwargs)
    return await asyncio.to_thread(getattr(port, call.method), *call.args, **call.kwargs)
