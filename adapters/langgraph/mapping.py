"""How LangGraph store items live in an episode store: pure functions, no I/O.

The mapping (see :class:`NamespaceMapping`):

- namespace ``("memories", "alice", ...)``: the label at ``user_label`` (default 1) is the user,
  so ``("memories", user_id)`` -- LangGraph's usual layout -- keeps each user's items in that
  user's scope, isolated like every memstrata episode. Namespaces too short to name a user
  (``("docs",)``) belong to ``shared_user``. The agent is ``agent_id`` (default "default", so a
  ``Memory`` for the same user recalls the items too).
- the namespace itself, joined with "." (LangGraph forbids "." in labels), is the episode's
  ``session_id``; namespace, key, value and creation time are kept in the episode's metadata
  under ``"langgraph.store"``.
- an item is a FACT episode whose text is what is embedded: the texts at the index fields
  (LangGraph's JSON paths, ``["$"]`` = the whole value), joined with newlines -- one vector per
  item, where LangGraph's own stores keep one per field.
- each (namespace, key) has two deterministic episode ids ("slots"). A put writes the free slot,
  then deletes the older version, so a crash between the two leaves the old or the new value,
  never none; reads take the newest slot.
- a catalog of namespaces (one FACT episode per namespace in the ``catalog_user`` scope) makes
  ``list_namespaces`` and searches across users possible: the episode store has no way to list users.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from langgraph.store.base import Item, ListNamespacesOp, MatchCondition, SearchItem
from langgraph.store.base.embed import get_text_at_path, tokenize_path
from memstrata.schemas import Episode, EpisodeKind, Scope

__all__ = [
    "METADATA_KEY",
    "NamespaceMapping",
    "index_text",
    "item_of",
    "matches_filter",
    "record_of",
    "select_namespaces",
    "session_of",
    "slot_ids",
    "under",
]

METADATA_KEY = "langgraph.store"
_SLOTS = uuid.UUID("6f1d8c52-8f3e-4f0e-9a57-3c1b2f7d4e90")
_MAX_SESSION = 256


@dataclass(frozen=True)
class NamespaceMapping:
    """Where a namespace's items live.

    Attributes:
        user_label: the namespace label that is the user id.
        agent_id: the agent every item belongs to.
        shared_user: the user of namespaces too short to have a ``user_label``.
        catalog_user: the pseudo-user holding the namespace catalog.
    """

    user_label: int = 1
    agent_id: str = "default"
    shared_user: str = "_langgraph_shared"
    catalog_user: str = "_langgraph_namespaces"

    def user(self, namespace: Sequence[str]) -> str:
        """The user a namespace's items belong to."""
        return namespace[self.user_label] if len(namespace) > self.user_label else self.shared_user

    def scope(self, namespace: Sequence[str]) -> Scope:
        """The scope of a namespace's items."""
        return Scope(user_id=self.user(namespace), agent_id=self.agent_id, session_id=session_of(namespace))

    def user_scope(self, user: str) -> Scope:
        """A user's scope (searches cover every session of it)."""
        return Scope(user_id=user, agent_id=self.agent_id)

    def prefix_user(self, prefix: Sequence[str]) -> str | None:
        """The one user every namespace under ``prefix`` belongs to, or None if several may."""
        return prefix[self.user_label] if len(prefix) > self.user_label else None

    def catalog_scope(self, namespace: Sequence[str] | None = None) -> Scope:
        """The catalog's scope (the entry of ``namespace`` when given)."""
        session = session_of(namespace) if namespace is not None else "default"
        return Scope(user_id=self.catalog_user, agent_id=self.agent_id, session_id=session)

    def catalog_entry(self, namespace: Sequence[str], now: datetime) -> Episode:
        """The catalog episode recording that ``namespace`` holds items (idempotent by key)."""
        joined = session_of(namespace)
        return Episode(
            scope=self.catalog_scope(namespace),
            kind=EpisodeKind.FACT,
            text=joined,
            occurred_at=now,
            created_at=now,
            metadata={METADATA_KEY: {"namespace": list(namespace)}},
            idempotency_key=f"namespace:{joined}",
        )


def session_of(namespace: Sequence[str]) -> str:
    """The session id standing for a namespace: its labels joined with ".", hashed when long."""
    joined = ".".join(namespace)
    if len(joined) <= _MAX_SESSION:
        return joined
    return "ns-" + hashlib.sha256(json.dumps(list(namespace)).encode()).hexdigest()


def slot_ids(namespace: Sequence[str], key: str) -> tuple[uuid.UUID, uuid.UUID]:
    """The two episode ids a (namespace, key) item alternates between."""
    name = json.dumps([list(namespace), key], ensure_ascii=False)
    return uuid.uuid5(_SLOTS, name), uuid.uuid5(_SLOTS, name + "#1")


def index_text(value: Mapping[str, Any], fields: Sequence[str] | None) -> str | None:
    """The text to embed for ``value``: the texts at ``fields`` joined, or None when there is
    nothing to index (``fields`` empty or None, or no text at those paths)."""
    texts: list[str] = []
    for field in fields or ():
        path: str | list[str] = "$" if field == "$" else tokenize_path(field)
        texts.extend(get_text_at_path(dict(value), path))
    joined = "\n".join(t for t in texts if t.strip())
    return joined or None


def item_of(episode: Episode, score: float | None = None, *, search: bool = False) -> Item:
    """The LangGraph item an episode holds (a ``SearchItem`` with ``search``)."""
    record = episode.metadata[METADATA_KEY]
    fields = {
        "namespace": tuple(record["namespace"]),
        "key": record["key"],
        "value": record["value"],
        "created_at": datetime.fromisoformat(record["created_at"]),
        "updated_at": episode.created_at,
    }
    return SearchItem(**fields, score=score) if search else Item(**fields)


def record_of(episode: Episode) -> Mapping[str, Any] | None:
    """The item record in an episode's metadata, or None if the episode is not a store item."""
    record = episode.metadata.get(METADATA_KEY)
    return record if isinstance(record, Mapping) and "key" in record else None


def under(record: Mapping[str, Any], prefix: Sequence[str]) -> bool:
    """Whether an item record's namespace starts with ``prefix``."""
    namespace = record["namespace"]
    return len(namespace) >= len(prefix) and list(namespace[: len(prefix)]) == list(prefix)


def matches_filter(value: Mapping[str, Any], conditions: Mapping[str, Any] | None) -> bool:
    """LangGraph's filter semantics: each key equals the value, or satisfies its operators
    (``$eq``, ``$ne``, ``$gt``, ``$gte``, ``$lt``, ``$lte``); dicts compare recursively."""
    return all(_compare(value.get(k), v) for k, v in (conditions or {}).items())


def _compare(actual: Any, wanted: Any) -> bool:
    if isinstance(wanted, Mapping):
        if any(str(k).startswith("$") for k in wanted):
            return all(_operator(actual, op, operand) for op, operand in wanted.items())
        return isinstance(actual, Mapping) and all(_compare(actual.get(k), v) for k, v in wanted.items())
    if isinstance(wanted, (list, tuple)):
        return (
            isinstance(actual, (list, tuple))
            and len(actual) == len(wanted)
            and all(_compare(a, w) for a, w in zip(actual, wanted, strict=True))
        )
    return bool(actual == wanted)


def _operator(actual: Any, op: str, operand: Any) -> bool:
    if op == "$eq":
        return bool(actual == operand)
    if op == "$ne":
        return bool(actual != operand)
    if op not in ("$gt", "$gte", "$lt", "$lte"):
        raise ValueError(f"unsupported filter operator {op!r} (use $eq, $ne, $gt, $gte, $lt, $lte)")
    try:
        a, b = float(actual), float(operand)
    except (TypeError, ValueError):
        return False
    return {"$gt": a > b, "$gte": a >= b, "$lt": a < b, "$lte": a <= b}[op]


def _matches(namespace: tuple[str, ...], condition: MatchCondition) -> bool:
    path = tuple(condition.path)
    if len(namespace) < len(path):
        return False
    labels = (
        namespace[: len(path)]
        if condition.match_type == "prefix"
        else namespace[len(namespace) - len(path) :]
    )
    return all(p == "*" or p == n for n, p in zip(labels, path, strict=True))


def select_namespaces(namespaces: Iterable[tuple[str, ...]], op: ListNamespacesOp) -> list[tuple[str, ...]]:
    """``list_namespaces`` over known namespaces: match conditions, depth, sorting, paging."""
    chosen = [ns for ns in namespaces if all(_matches(ns, c) for c in op.match_conditions or ())]
    if op.max_depth is not None:
        chosen = [ns[: op.max_depth] for ns in chosen]
    return sorted(set(chosen))[op.offset : op.offset + op.limit]
