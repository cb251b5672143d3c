"""``MemstrataStore``: a LangGraph ``BaseStore`` on memstrata's episode store.

Swap it in wherever LangGraph takes a store (``create_agent(..., store=...)``,
``graph.compile(store=...)``): ``put``/``get``/``delete``/``search`` (semantic with ``query``,
hybrid vector + full text, with ``filter``, ``limit``, ``offset``)/``list_namespaces``, sync and
async (both run the same steps, :mod:`memstrata.port_calls`). Items are memstrata episodes in the user's scope (see :mod:`.mapping` for the layout), so a
``Memory`` for the same user recalls them, ``Memory.forget`` forgets them, ``Memory.export``
exports them.

Semantics worth knowing:

- puts in a batch run first (the last one per item wins), then the reads in order, as in
  LangGraph's Postgres store;
- search with ``query`` ranks by memstrata's hybrid relevance: ``score`` is the reciprocal-rank
  fusion of the vector and full-text ranks (higher is better; it is not a cosine similarity).
  Items put with ``index=False`` are found by filter-only searches, not by ``query`` searches;
- without ``query``, results come newest update first;
- TTLs are not supported (``supports_ttl = False``: ``put(..., ttl=...)`` raises NotImplementedError).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from langgraph.store.base import (
    BaseStore,
    GetOp,
    ListNamespacesOp,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    validate_op_namespace,
)
from memstrata import port_calls
from memstrata.errors import ConfigError, InvalidEpisode
from memstrata.fusion import hybrid_search_calls
from memstrata.port_calls import Plan, Ports, arun, run
from memstrata.ports import AsyncEpisodeStore, Embedder, EpisodeStore, Vector
from memstrata.schemas import Episode, EpisodeKind, Scope, SearchFilters, SearchQuery, utc_now

from .mapping import (
    METADATA_KEY,
    NamespaceMapping,
    index_text,
    item_of,
    matches_filter,
    record_of,
    select_namespaces,
    session_of,
    slot_ids,
    under,
)

__all__ = ["MemstrataStore"]

_FACTS = (EpisodeKind.FACT,)
_PUT_ATTEMPTS = 3
_MAX_K = 1000

ItemKey = tuple[tuple[str, ...], str]


class MemstrataStore(BaseStore):
    """LangGraph's ``BaseStore`` over an :class:`~memstrata.ports.EpisodeStore` and an embedder.

    Args:
        store: where items live (``PostgresEpisodeStore``; it must be set up).
        embedder: embeds items' index texts and search queries.
        index_fields: the JSON paths embedded by default (LangGraph's ``IndexConfig.fields``);
            ``("$",)`` embeds the whole value. A put's ``index=`` overrides them.
        user_label: which namespace label is the user id (``("memories", user_id)`` -> 1).
        agent_id: the agent the items belong to.
        async_store: the episode store's async face (``AsyncPostgresEpisodeStore``) for
            ``abatch``; without one, ``abatch`` runs the episode store in worker threads.

    Raises (from every operation):
        InvalidNamespaceError: a bad namespace (LangGraph's rules).
        InvalidEpisode: a value memstrata cannot store (not JSON, too large).
        StoreUnavailable: the database failed.
    """

    supports_ttl = False

    def __init__(
        self,
        store: EpisodeStore,
        embedder: Embedder,
        *,
        index_fields: Sequence[str] = ("$",),
        user_label: int = 1,
        agent_id: str = "default",
        async_store: AsyncEpisodeStore | None = None,
    ) -> None:
        if store.dimensions != embedder.dimensions:
            raise ConfigError(
                f"the store holds {store.dimensions}-d vectors but the embedder makes {embedder.dimensions}-d ones"
            )
        self.store = store
        self.async_store = async_store
        self.embedder = embedder
        self.index_fields = tuple(index_fields)
        self.mapping = NamespaceMapping(user_label=user_label, agent_id=agent_id)
        # Episodes need a vector; unindexed items and catalog entries get this fixed unit vector.
        self._unindexed: list[float] = [1.0] + [0.0] * (store.dimensions - 1)

    # -- BaseStore ---------------------------------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run a batch: every put first (last per item wins), then the reads in order."""
        return run(self._batch(list(ops)), Ports(self.store, self.embedder))

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """:meth:`batch` on asyncio: the same steps, on the episode store's async face when one is
        given (``async_store``), else on the episode store in worker threads."""
        store = self.async_store if self.async_store is not None else self.store
        return await arun(self._batch(list(ops)), Ports(store, self.embedder))

    def _batch(self, ops: list[Op]) -> Plan[list[Result]]:
        for op in ops:
            validate_op_namespace(op)
        puts: dict[ItemKey, PutOp] = {}
        for op in ops:
            if isinstance(op, PutOp):
                puts[(tuple(op.namespace), op.key)] = op
        if puts:
            yield from self._apply(list(puts.values()))
        results: list[Result] = [None] * len(ops)
        gets = [(i, op) for i, op in enumerate(ops) if isinstance(op, GetOp)]
        if gets:
            found = yield from self._current([(tuple(op.namespace), op.key) for _, op in gets])
            for i, op in gets:
                episode = found.get((tuple(op.namespace), op.key))
                results[i] = item_of(episode) if episode is not None else None
        for i, op in enumerate(ops):
            if isinstance(op, SearchOp):
                results[i] = yield from self._search(op)
            elif isinstance(op, ListNamespacesOp):
                results[i] = select_namespaces((yield from self._namespaces()), op)
        return results

    # -- reads -------------------------------------------------------------------------------

    def _current(self, keys: Sequence[ItemKey]) -> Plan[dict[ItemKey, Episode]]:
        """The newest stored version of each item (missing items are left out)."""
        versions = yield from self._versions(keys)
        return {k: v[-1] for k, v in versions.items() if v}

    def _versions(self, keys: Sequence[ItemKey]) -> Plan[dict[ItemKey, list[Episode]]]:
        """Every stored version of each item, oldest first (at most two)."""
        by_user: dict[str, list[ItemKey]] = defaultdict(list)
        for key in keys:
            by_user[self.mapping.user(key[0])].append(key)
        versions: dict[ItemKey, list[Episode]] = {k: [] for k in keys}
        for user, group in by_user.items():
            owner = {slot: key for key in group for slot in slot_ids(*key)}
            stored: list[Episode] = yield port_calls.store("get", self.mapping.user_scope(user), list(owner))
            for episode in stored:
                record = record_of(episode)
                if record is not None:
                    versions[owner[episode.id]].append(episode)
        for found in versions.values():
            found.sort(key=lambda e: (e.seq or 0, e.created_at))
        return versions

    def _search(self, op: SearchOp) -> Plan[list[SearchItem]]:
        prefix = tuple(op.namespace_prefix)
        wanted = max(0, op.offset) + max(0, op.limit)
        user = self.mapping.prefix_user(prefix)
        if user is not None:
            users = [user]
        else:
            users = sorted({self.mapping.user(ns) for ns in (yield from self._namespaces(prefix))})
        vector = (yield port_calls.embed([op.query]))[0] if op.query else None
        found: list[tuple[float, Episode]] = []
        for name in users:
            scope = self.mapping.user_scope(name)
            if op.query:
                found += yield from self._ranked(scope, op, vector, wanted)
            else:
                facts: list[Episode] = yield port_calls.store("scan", scope, kinds=_FACTS)
                found += [(0.0, e) for e in facts if self._keeps(e, prefix, op)]
        if op.query:
            found.sort(key=lambda pair: pair[0], reverse=True)
        else:  # newest update first
            found.sort(key=lambda pair: (pair[1].created_at, pair[1].seq or 0), reverse=True)
        page = found[max(0, op.offset) : wanted]
        return [_search_item(e, score if op.query else None) for score, e in page]

    def _ranked(
        self, scope: Scope, op: SearchOp, vector: Vector | None, wanted: int
    ) -> Plan[list[tuple[float, Episode]]]:
        k = min(_MAX_K, max(40, 4 * wanted))
        while True:
            query = SearchQuery(
                scope=scope,
                vector=tuple(vector) if vector is not None else None,
                text=op.query or "",
                k=k,
                candidates=max(k, 60),
                filters=SearchFilters(kinds=_FACTS),
            )
            hits = yield from hybrid_search_calls(query)
            kept = [
                (h.score, h.episode)
                for h in hits
                if self._keeps(h.episode, tuple(op.namespace_prefix), op)
                and h.episode.metadata[METADATA_KEY].get("indexed", True)
            ]
            if len(kept) >= wanted or len(hits) < k or k >= _MAX_K:
                return kept
            k = _MAX_K

    @staticmethod
    def _keeps(episode: Episode, prefix: tuple[str, ...], op: SearchOp) -> bool:
        record = record_of(episode)
        return record is not None and under(record, prefix) and matches_filter(record["value"], op.filter)

    def _namespaces(self, prefix: tuple[str, ...] = ()) -> Plan[list[tuple[str, ...]]]:
        """Namespaces holding items (from the catalog), under ``prefix``."""
        entries: list[Episode] = yield port_calls.store("scan", self.mapping.catalog_scope(), kinds=_FACTS)
        found = {tuple(e.metadata[METADATA_KEY]["namespace"]) for e in entries if METADATA_KEY in e.metadata}
        return sorted(ns for ns in found if ns[: len(prefix)] == prefix)

    # -- writes ------------------------------------------------------------------------------

    def _apply(self, puts: Sequence[PutOp]) -> Plan[None]:
        writes = [p for p in puts if p.value is not None]
        for attempt in range(_PUT_ATTEMPTS):
            try:
                yield from self._write(writes)
                break
            except InvalidEpisode as exc:
                # A concurrent put took the same slot: read the versions again and retry.
                if exc.field != "id" or attempt == _PUT_ATTEMPTS - 1:
                    raise
        deletes = [(tuple(p.namespace), p.key) for p in puts if p.value is None]
        if deletes:
            yield from self._delete(deletes)

    def _write(self, writes: Sequence[PutOp]) -> Plan[None]:
        if not writes:
            return
        keys = [(tuple(p.namespace), p.key) for p in writes]
        versions = yield from self._versions(keys)
        # Free a slot where both hold a version (a crash mid-put): the newer one stays readable.
        yield from self._forget([v[0] for v in versions.values() if len(v) == 2])
        now = utc_now()
        episodes: list[Episode] = []
        texts: list[str | None] = []
        for op, key in zip(writes, keys, strict=True):
            current = versions[key][-1] if versions[key] else None
            fields = None if op.index is False else (self.index_fields if op.index is None else op.index)
            try:
                text = index_text(op.value or {}, fields)
            except (TypeError, ValueError) as exc:
                raise InvalidEpisode(f"item {op.key!r} in {key[0]}: the value is not JSON: {exc}") from exc
            texts.append(text)
            episodes.append(self._episode(op, key, current, text, now))
        indexed = [t for t in texts if t is not None]
        embedded = iter((yield port_calls.embed(indexed)) if indexed else [])
        vectors: list[Vector] = [next(embedded) if t is not None else self._unindexed for t in texts]
        catalog = [self.mapping.catalog_entry(ns, now) for ns in dict.fromkeys(k[0] for k in keys)]
        yield port_calls.store("put", [*episodes, *catalog], [*vectors, *([self._unindexed] * len(catalog))])
        yield from self._forget([versions[k][-1] for k in keys if versions[k]])

    def _episode(
        self, op: PutOp, key: ItemKey, current: Episode | None, text: str | None, now: datetime
    ) -> Episode:
        first, second = slot_ids(*key)
        created = current.metadata[METADATA_KEY]["created_at"] if current is not None else now.isoformat()
        value = dict(op.value or {})
        record = {
            "namespace": list(key[0]),
            "key": key[1],
            "value": value,
            "created_at": created,
            "indexed": text is not None,
        }
        try:
            return Episode(
                id=second if current is not None and current.id == first else first,
                scope=self.mapping.scope(key[0]),
                kind=EpisodeKind.FACT,
                text=text if text is not None else _json_text(value),
                occurred_at=now,
                created_at=now,
                metadata={METADATA_KEY: record},
            )
        except ValueError as exc:
            raise InvalidEpisode(f"item {key[1]!r} in {key[0]}: {exc}") from exc

    def _delete(self, keys: Sequence[ItemKey]) -> Plan[None]:
        versions = yield from self._versions(keys)
        yield from self._forget([e for found in versions.values() for e in found])
        for namespace in dict.fromkeys(k[0] for k in keys):
            scope = self.mapping.scope(namespace)
            left: list[Episode] = yield port_calls.store(
                "scan", scope, kinds=_FACTS, session_id=scope.session_id
            )
            if not any(r is not None and tuple(r["namespace"]) == namespace for r in map(record_of, left)):
                catalog = self.mapping.catalog_scope(namespace)
                entries: list[Episode] = yield port_calls.store(
                    "scan", catalog, kinds=_FACTS, session_id=session_of(namespace)
                )
                if entries:
                    yield port_calls.store("forget", catalog, [e.id for e in entries])

    def forget_user(self, user_id: str) -> int:
        """Erase a user: their items (every episode of theirs, through the episode store's own
        ``forget_user`` when it has one) and their namespaces in the catalog.

        Returns:
            How many episodes of the user were deleted (catalog entries not counted).
        """
        catalog = self.mapping.catalog_scope()
        entries = self.store.scan(catalog, kinds=_FACTS)
        theirs = [
            e.id
            for e in entries
            if isinstance(e.metadata.get(METADATA_KEY), dict)
            and self.mapping.user(tuple(e.metadata[METADATA_KEY].get("namespace", ()))) == user_id
        ]
        if theirs:
            self.store.forget(catalog, theirs)
        erase = getattr(self.store, "forget_user", None)
        if callable(erase):
            return int(erase(user_id))
        return self.store.forget(self.mapping.user_scope(user_id))

    def _forget(self, episodes: Sequence[Episode]) -> Plan[None]:
        by_user: dict[str, list[Any]] = defaultdict(list)
        for episode in episodes:
            by_user[episode.scope.user_id].append(episode.id)
        for user, ids in by_user.items():
            yield port_calls.store("forget", self.mapping.user_scope(user), ids)


def _search_item(episode: Episode, score: float | None) -> SearchItem:
    item = item_of(episode, score, search=True)
    assert isinstance(item, SearchItem)
    return item


def _json_text(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)
