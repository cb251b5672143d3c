"""An in-memory episode store for tests: the same contract as the Postgres store, in a dict."""

from __future__ import annotations

import math
import threading
import uuid
from collections.abc import Sequence

from memstrata.errors import FoldConflict, InvalidEpisode
from memstrata.fusion import Ranked, fused_score, recency_weight
from memstrata.ports import Vector
from memstrata.schemas import (
    Episode,
    EpisodeKind,
    RecallHit,
    ScanOrder,
    Scope,
    SearchQuery,
    utc_now,
)
from memstrata.validation import (
    DEFAULT_MAX_TEXT_BYTES,
    check_batch,
    check_episode,
    check_scope,
    check_vector,
)

from .words import terms as _terms

__all__ = ["InMemoryEpisodeStore"]


class InMemoryEpisodeStore:
    """An :class:`~memstrata.ports.EpisodeStore` in a dict, guarded by a lock. For tests only.

    Text ranking is a BM25 over lower-cased words; vector ranking is exact cosine.
    """

    def __init__(self, dimensions: int, *, max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES) -> None:
        self._dimensions = dimensions
        self._max_text_bytes = max_text_bytes
        self._rows: dict[uuid.UUID, tuple[Episode, list[float]]] = {}
        self._seq = 0
        self._lock = threading.Lock()

    @property
    def dimensions(self) -> int:
        return self._dimensions

    def put(self, episodes: Sequence[Episode], vectors: Sequence[Vector]) -> list[Episode]:
        check_batch(episodes, vectors, dimensions=self._dimensions, max_text_bytes=self._max_text_bytes)
        with self._lock:
            by_key: dict[tuple[str, str, str | None], Episode] = {
                (e.scope.user_id, e.scope.agent_id, e.idempotency_key): e
                for e, _ in self._rows.values()
                if e.idempotency_key is not None
            }
            for index, episode in enumerate(episodes):
                if episode.id in self._rows and self._key(episode) not in by_key:
                    raise InvalidEpisode(f"id {episode.id} is already stored", index=index, field="id")
            stored = []
            for episode, vector in zip(episodes, vectors, strict=True):
                existing = by_key.get(self._key(episode)) if episode.idempotency_key is not None else None
                if existing is not None:
                    stored.append(existing)
                    continue
                self._seq += 1
                row = episode.model_copy(update={"seq": self._seq})
                self._rows[row.id] = (row, [float(v) for v in vector])
                if row.idempotency_key is not None:
                    by_key[self._key(row)] = row
                stored.append(row)
            return stored

    @staticmethod
    def _key(episode: Episode) -> tuple[str, str, str | None]:
        return (episode.scope.user_id, episode.scope.agent_id, episode.idempotency_key)

    def fold(self, summary: Episode, vector: Vector) -> Episode:
        check_episode(summary, max_text_bytes=self._max_text_bytes)
        check_vector(vector, dimensions=self._dimensions)
        if not summary.covers:
            raise InvalidEpisode("a fold needs a summary that covers at least one episode", field="covers")
        with self._lock:
            if summary.id in self._rows:
                raise InvalidEpisode(f"id {summary.id} is already stored", field="id")
            for covered in summary.covers:
                row = self._rows.get(covered)
                if row is None or not _same_owner(row[0].scope, summary.scope):
                    raise FoldConflict(f"episode {covered} is not stored in this scope")
                if row[0].superseded_by is not None:
                    raise FoldConflict(f"episode {covered} was already folded into {row[0].superseded_by}")
            self._seq += 1
            stored = summary.model_copy(update={"seq": self._seq})
            self._rows[stored.id] = (stored, [float(v) for v in vector])
            for covered in summary.covers:
                episode, vec = self._rows[covered]
                self._rows[covered] = (episode.model_copy(update={"superseded_by": stored.id}), vec)
            return stored

    def search(self, query: SearchQuery) -> list[RecallHit]:
        check_scope(getattr(query, "scope", None))
        if query.vector is not None:
            check_vector(query.vector, dimensions=self._dimensions)
        with self._lock:
            rows = [(e, v) for e, v in self._rows.values() if self._matches(e, query)]
        vector_ranks: dict[uuid.UUID, tuple[int, float]] = {}
        if query.vector is not None:
            qv = list(query.vector)
            by_distance = sorted(((1.0 - _cosine(qv, v), e.id) for e, v in rows), key=lambda p: p[0])
            for rank, (distance, episode_id) in enumerate(by_distance[: query.candidates], start=1):
                vector_ranks[episode_id] = (rank, distance)
        text_ranks = {
            eid: r
            for r, eid in enumerate(self._bm25([e for e, _ in rows], query.text)[: query.candidates], 1)
        }
        now = query.now or utc_now()
        hits = []
        for episode, _ in rows:
            vr = vector_ranks.get(episode.id)
            tr = text_ranks.get(episode.id)
            if vr is None and tr is None:
                continue
            recency = recency_weight(episode.occurred_at, now, query.recency_half_life_days)
            score = fused_score(vr[0] if vr else None, tr, k=query.rrf_k, recency=recency)
            hits.append(
                RecallHit(
                    episode=episode,
                    score=score,
                    vector_rank=vr[0] if vr else None,
                    vector_distance=vr[1] if vr else None,
                    text_rank=tr,
                    recency=recency,
                )
            )
        hits.sort(key=lambda h: (-h.score, -(h.episode.seq or 0)))
        return hits[: query.k]

    def rank(self, query: SearchQuery) -> list[Ranked]:
        return [
            Ranked(
                h.episode.id,
                h.episode.seq or 0,
                h.vector_rank,
                h.vector_distance,
                h.text_rank,
                h.recency,
                h.score,
                h.episode.speaker,
                h.episode.occurred_at,
                h.episode.superseded_by,
            )
            for h in self.search(query)
        ]

    @staticmethod
    def _matches(episode: Episode, query: SearchQuery) -> bool:
        f = query.filters
        return (
            _same_owner(episode.scope, query.scope)
            and (not f.kinds or episode.kind in f.kinds)
            and (f.session_id is None or episode.scope.session_id == f.session_id)
            and (f.occurred_after is None or episode.occurred_at >= f.occurred_after)
            and (f.occurred_before is None or episode.occurred_at < f.occurred_before)
            and (f.include_superseded or episode.superseded_by is None)
        )

    @staticmethod
    def _bm25(episodes: list[Episode], text: str, k1: float = 1.2, b: float = 0.75) -> list[uuid.UUID]:
        query_terms = set(_terms(text))
        if not query_terms or not episodes:
            return []
        docs = [(e.id, _terms(e.text)) for e in episodes]
        avg_len = sum(len(t) for _, t in docs) / len(docs) or 1.0
        df = {q: sum(1 for _, t in docs if q in t) for q in query_terms}
        scored = []
        for episode_id, terms in docs:
            score = 0.0
            for q in query_terms:
                tf = terms.count(q)
                if tf:
                    idf = math.log(1 + (len(docs) - df[q] + 0.5) / (df[q] + 0.5))
                    score += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(terms) / avg_len))
            if score > 0:
                scored.append((score, episode_id))
        scored.sort(key=lambda p: -p[0])
        return [episode_id for _, episode_id in scored]

    def scan(
        self,
        scope: Scope,
        *,
        kinds: Sequence[EpisodeKind] = (),
        session_id: str | None = None,
        only_current: bool = False,
        order: ScanOrder = "oldest",
        limit: int | None = None,
    ) -> list[Episode]:
        check_scope(scope)
        with self._lock:
            rows = [
                e
                for e, _ in self._rows.values()
                if _same_owner(e.scope, scope)
                and (not kinds or e.kind in kinds)
                and (session_id is None or e.scope.session_id == session_id)
                and (not only_current or e.superseded_by is None)
            ]
        rows.sort(key=lambda e: e.seq or 0, reverse=order == "newest")
        return rows if limit is None else rows[:limit]

    def get(self, scope: Scope, ids: Sequence[uuid.UUID]) -> list[Episode]:
        check_scope(scope)
        with self._lock:
            found = [self._rows[i][0] for i in dict.fromkeys(ids) if i in self._rows]
        return [e for e in found if _same_owner(e.scope, scope)]

    def forget(self, scope: Scope, ids: Sequence[uuid.UUID] | None = None) -> int:
        check_scope(scope)
        with self._lock:
            owned = {i for i, (e, _) in self._rows.items() if _same_owner(e.scope, scope)}
            doomed = owned if ids is None else owned & set(ids)
            # Anything derived from a forgotten episode carries its content: forget it too.
            grew = True
            while grew:
                derived = {i for i in owned - doomed if doomed & set(self._rows[i][0].covers)}
                grew = bool(derived)
                doomed |= derived
            for i in doomed:
                del self._rows[i]
            for i in owned - doomed:
                episode, vec = self._rows[i]
                if episode.superseded_by in doomed:
                    self._rows[i] = (episode.model_copy(update={"superseded_by": None}), vec)
            return len(doomed)


def _same_owner(a: Scope, b: Scope) -> bool:
    return a.user_id == b.user_id and a.agent_id == b.agent_id


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0
