"""What a fault-injection worker does, and the journal it keeps.

A trial's plan is a function of its seed alone, so the harness that kills the worker rebuilds
the same plan and knows every turn the worker meant to write. The journal records ``begin i``
before operation ``i`` and ``ack i`` after it returned, each line flushed and fsynced: an
acknowledged operation is one a client was told succeeded.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Literal

from memstrata.memory import Memory
from memstrata.schemas import Scope, Turn

from memstrata_bench.reliability.components import chat_reply

__all__ = [
    "BATCH_SIZES",
    "Journal",
    "JournalState",
    "Operation",
    "expected_turns",
    "plan",
    "read_journal",
    "run_step",
]

OpKind = Literal["add", "compress", "chat"]
BATCH_SIZES = (1, 2, 3, 5, 8, 12, 20, 31, 32, 40)
"""Turns per ``add``; 32 and up take the store's binary COPY path, smaller ones INSERTs."""
_NAMES = ("Maria", "Tomas", "Aiko", "Lena", "Omar", "Priya", "Jonas", "Chen")
_PLACES = ("Lisbon", "Osaka", "Nairobi", "Quito", "Tallinn", "Hobart", "Oslo", "Accra")
_THINGS = ("bikes", "lemons", "tickets", "books", "plants", "lamps", "maps", "kites")
_VERBS = ("bought", "sold", "found", "lost", "packed", "painted", "borrowed", "mended")
_BASE_TIME = datetime(2025, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Operation:
    """One step of a worker's plan.

    Attributes:
        index: position in the plan.
        kind: ``add`` a batch of turns, ``compress(force=True)``, or ``chat``.
        session: the scope's session the step writes to.
        turns: the batch (``add``).
        text: the user's message (``chat``).
        key: the chat's idempotency key (``chat``).
        occurred_at: when the chat happened (``chat``).
    """

    index: int
    kind: OpKind
    session: str
    turns: tuple[Turn, ...] = ()
    text: str = ""
    key: str = ""
    occurred_at: datetime = _BASE_TIME

    def scope(self, user_id: str) -> Scope:
        return Scope(user_id=user_id, session_id=self.session)

    def expected(self) -> dict[str, str]:
        """The turns this step stores: idempotency key -> text."""
        if self.kind == "add":
            return {t.idempotency_key or "": t.content for t in self.turns}
        if self.kind == "chat":
            return {f"{self.key}:user": self.text, f"{self.key}:assistant": chat_reply(self.text)}
        return {}


def _sentence(rng: random.Random, marker: str) -> str:
    who, verb, n, what, where = (
        rng.choice(_NAMES),
        rng.choice(_VERBS),
        rng.randint(2, 99),
        rng.choice(_THINGS),
        rng.choice(_PLACES),
    )
    return f"{who} {verb} {n} {what} in {where} [{marker}]"


def plan(seed: int, user_id: str, *, operations: int = 200) -> list[Operation]:
    """The worker's steps for one trial: about 60% ``add`` (1-40 turns), 20% ``chat`` and 20%
    ``compress``, over two sessions, with times one minute apart."""
    rng = random.Random(seed)
    steps: list[Operation] = []
    minute = 0
    session = "s0"
    for index in range(operations):
        if rng.random() < 0.05:
            session = "s1" if session == "s0" else "s0"
        roll = rng.random()
        if roll < 0.6:
            size = rng.choice(BATCH_SIZES)
            turns = []
            for i in range(size):
                minute += 1
                turns.append(
                    Turn(
                        role="user" if i % 2 == 0 else "assistant",
                        content=_sentence(rng, f"{user_id} {index}.{i}"),
                        occurred_at=_BASE_TIME + timedelta(minutes=minute),
                        idempotency_key=f"{user_id}:{index}:{i}",
                    )
                )
            steps.append(Operation(index, "add", session, turns=tuple(turns)))
        elif roll < 0.8:
            minute += 1
            text = f"What did {rng.choice(_NAMES)} do in {rng.choice(_PLACES)}? [{user_id} {index}]"
            when = _BASE_TIME + timedelta(minutes=minute)
            steps.append(
                Operation(index, "chat", session, text=text, key=f"{user_id}:{index}", occurred_at=when)
            )
            minute += 1
        else:
            steps.append(Operation(index, "compress", session))
    return steps


def expected_turns(steps: list[Operation]) -> dict[str, str]:
    """Every turn of these steps: idempotency key -> text."""
    found: dict[str, str] = {}
    for step in steps:
        found.update(step.expected())
    return found


def run_step(memory: Memory, step: Operation, user_id: str) -> None:
    """Do one step as a client would (a retry is the same call, with the same keys)."""
    scope = step.scope(user_id)
    if step.kind == "add":
        memory.add(step.turns, scope=scope)
    elif step.kind == "chat":
        memory.chat(step.text, scope=scope, occurred_at=step.occurred_at, idempotency_key=step.key)
    else:
        memory.compress(scope=scope, force=True)


class Journal:
    """Append-only record of a worker's progress; every line is on disk when ``record`` returns."""

    def __init__(self, path: Path) -> None:
        self._file: IO[str] = path.open("a", encoding="utf-8")

    def record(self, event: Literal["begin", "ack"], index: int) -> None:
        self._file.write(f"{event} {index}\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


@dataclass(frozen=True)
class JournalState:
    """What a journal says: operations acknowledged (a prefix of the plan) and the one begun
    but not acknowledged, if any."""

    acked: int
    in_flight: int | None


def read_journal(path: Path) -> JournalState:
    """Read a worker's journal (a torn last line, from a kill mid-write, is ignored).

    Raises:
        RuntimeError: acknowledgements out of order (the worker is broken, not the store).
    """
    acked, begun = 0, None
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    for line in text.split("\n")[:-1]:  # complete lines only
        event, _, number = line.partition(" ")
        if not number.isdigit():
            continue
        index = int(number)
        if event == "begin":
            begun = index
        elif event == "ack":
            if index != acked:
                raise RuntimeError(f"journal {path}: ack {index} after {acked} acknowledgements")
            acked += 1
    return JournalState(acked=acked, in_flight=begun if begun is not None and begun >= acked else None)
