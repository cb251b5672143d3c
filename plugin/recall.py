"""Recall: embed the query with a little recent context, then hybrid-search the scope.

The hybrid search is the one every caller uses (:func:`memstrata.fusion.hybrid_ranks`: two
rank-only single-retriever legs, fused): the full-text leg starts at once and the vector leg as
soon as the query is embedded, so the text leg's time hides behind the embedding's. Every fused
candidate is re-weighed by the speakers and days the query names (:mod:`memstrata.cues`; the rank
rows carry each candidate's speaker and time), and only the top ``k`` are then read whole.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import wait
from datetime import datetime

from memstrata import port_calls
from memstrata.caches import make_room
from memstrata.concurrency import background
from memstrata.cues import query_cues
from memstrata.errors import InvalidInput
from memstrata.fusion import Ranked, ahybrid_ranks, fuse_more, hybrid_ranks, ranked_hit
from memstrata.neighbours import NeighbourWindow, merge_neighbours, neighbour_anchors, session_key
from memstrata.port_calls import Plan, Ports, acall, arun, run
from memstrata.ports import Embedder, EpisodeStore
from memstrata.query_parts import query_parts
from memstrata.schemas import (
    Episode,
    EpisodeKind,
    RecallHit,
    Scope,
    SearchFilters,
    SearchQuery,
    check_text,
    utc_now,
)
from memstrata.schemas.config import RecallConfig


def query_text(query: str, recent: Sequence[Episode], *, context_turns: int) -> str:
    """The text embedded for a query: the last ``context_turns`` turns, then the query."""
    context = [e.text for e in recent[-context_turns:]] if context_turns else []
    return "\n".join([*context, query])


def embedding_text(episode: Episode, previous: Episode | None) -> str:
    """The text embedded for a stored turn: the turn with its speaker, after the turn before it
    (a reply like "Yes, last Tuesday" is findable by what it answers). The stored text itself is
    unchanged."""
    own = f"{episode.speaker}: {episode.text}" if episode.speaker else episode.text
    if previous is None:
        return own
    before = f"{previous.speaker}: {previous.text}" if previous.speaker else previous.text
    return f"{before}\n{own}"


_SessionKey = tuple[str, str, str | None]
Recent = Sequence[Episode] | Callable[[], Sequence[Episode]] | Awaitable[Sequence[Episode]]
"""The latest turns of the conversation: given, or being read (a function or an awaitable)."""
_MAX_SESSIONS_NOTED = 10_000
_MAX_SPEAKERS = 1_000


class Recaller:
    """Finds the episodes of a scope that matter for a query.

    It keeps the episodes it has read or been shown (:meth:`remember`), keyed by id and ``seq``, so
    that recall reads back from the store only the winners it does not hold. That is exact: a
    stored row never changes except ``superseded_by`` (set by a fold), which the rank rows carry
    and which is patched in; an id forgotten and stored again gets a new ``seq``; and only ids the
    scoped search returned are looked up, so one scope never sees another's episodes.

    Args:
        store: the episode store.
        embedder: the same embedder the episodes were stored with.
        config: k, candidates, recency.
        max_cached: episodes kept (the oldest half is dropped when full); 0 keeps none.
    """

    def __init__(
        self,
        store: EpisodeStore,
        embedder: Embedder,
        config: RecallConfig = RecallConfig(),
        *,
        max_cached: int = 20_000,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.config = config
        self._max_cached = max_cached
        self._held: dict[tuple[uuid.UUID, int], Episode] = {}
        self._lock = threading.Lock()
        # Per session, the turns this process last saw end it: the query is embedded with them
        # while the session's recent turns are read, and again only if the read shows others.
        self._latest: dict[_SessionKey, tuple[Episode, ...]] = {}
        # Per user and agent, the speaker names seen (query parts leave them out).
        self._speakers: dict[tuple[str, str], set[str]] = {}
        self.missed_guesses = 0
        """How often a query was embedded twice (its session ended otherwise than last seen)."""

    def note_latest(self, scope: Scope, turns: Sequence[Episode]) -> None:
        """Record the latest turns of ``scope``'s session (oldest first): the guess :meth:`recall`
        embeds the next query with while it reads them (see its ``recent``)."""
        key = (scope.user_id, scope.agent_id, scope.session_id)
        kept = tuple(turns[-self.config.context_turns :]) if self.config.context_turns else ()
        with self._lock:
            make_room(self._latest, 1, _MAX_SESSIONS_NOTED)
            self._latest[key] = kept

    def remember(self, episodes: Iterable[Episode]) -> None:
        """Hold stored episodes (they must carry their ``seq``) for later recalls."""
        if not self._max_cached:
            return
        stored = {(e.id, e.seq): e for e in episodes if e.seq is not None}
        self._add_speakers(
            {(e.scope.user_id, e.scope.agent_id, e.speaker) for e in stored.values() if e.speaker}
        )
        with self._lock:
            make_room(self._held, len(stored), self._max_cached)
            self._held.update(stored)

    def drop(self, scope: Scope, ids: Sequence[uuid.UUID] | None = None) -> None:
        """Let go of held episodes: ``ids``, or all of ``scope``'s user and agent when None."""
        wanted = None if ids is None else set(ids)
        with self._lock:
            if wanted is None:
                self._speakers.pop((scope.user_id, scope.agent_id), None)
            for key, e in list(self._held.items()):
                same_owner = e.scope.user_id == scope.user_id and e.scope.agent_id == scope.agent_id
                if same_owner and (wanted is None or e.id in wanted):
                    del self._held[key]

    def _hits(self, scope: Scope, top: Sequence[Ranked], filters: SearchFilters) -> Plan[list[RecallHit]]:
        """The hits of the ``top`` candidates, their episodes attached (held ones with
        ``superseded_by`` as the rank row says, the rest read), with their neighbours."""
        found: dict[uuid.UUID, Episode] = {}
        missing = []
        patched = []
        for t in top:
            episode = self._held.get((t.id, t.seq))
            if episode is None:
                missing.append(t.id)
                continue
            if episode.superseded_by != t.superseded_by:
                episode = episode.model_copy(update={"superseded_by": t.superseded_by})
                patched.append(episode)
            found[t.id] = episode
        read: list[Episode] = (yield port_calls.store("get", scope, missing)) if missing else []
        self.remember([*read, *patched])
        found.update((e.id, e) for e in read)
        hits = [ranked_hit(t, found[t.id]) for t in top if t.id in found]  # else forgotten meanwhile
        return (yield from self._with_neighbours(scope, hits, filters))

    def recall(
        self,
        query: str,
        *,
        scope: Scope,
        recent: Recent = (),
        now: datetime | None = None,
        k: int | None = None,
        filters: SearchFilters = SearchFilters(),
    ) -> list[RecallHit]:
        """Ranked hits for ``query`` (best first) in ``scope``'s user and agent.

        Args:
            query: the latest user turn.
            recent: the latest turns of the conversation (their text joins the query embedding), or
                a function returning them, e.g. the result of a read already running. Then the
                query is embedded while they are read, with the turns this process last saw end
                the session (:meth:`note_latest`; none for a session it has not seen), and embedded
                again only when the read shows that the session ends otherwise (another process
                wrote to it): the vector is always that of the text :func:`query_text` gives.
            now: the time recency is measured from (default: now).
            k: hits to return (default: the config's).
            filters: narrowing inside the scope.

        Raises:
            InvalidInput: the query holds a NUL byte or a lone surrogate.
        """
        leg, k = self._leg(query, scope=scope, now=now, k=k, filters=filters)
        # The text leg needs no vector: it runs while the query is embedded (both wait on other
        # processes' or native code's work, so two threads overlap on two cores). The parts of the
        # query are embedded and searched meanwhile too.
        parts = self._parts(query, scope)
        ports = Ports(self.store, self.embedder)
        part_legs = background(run, self._part_calls(parts, leg), ports) if parts else None
        try:
            fused = hybrid_ranks(
                self.store,
                leg,
                vector=lambda: run(self._query_vector(query, scope, recent), ports),
                k=2 * leg.candidates,
            )
        finally:
            if part_legs is not None:
                wait([part_legs])  # never leave a search running on a connection the caller may close
        top = self._top(query, scope, leg, fused, parts, part_legs.result() if part_legs is not None else [])
        return run(self._hits(scope, top[:k], filters), ports)

    def _leg(
        self, query: str, *, scope: Scope, now: datetime | None, k: int | None, filters: SearchFilters
    ) -> tuple[SearchQuery, int]:
        """The search of ``query`` (both legs in one, one "now" for both legs and the cues), and
        the hits to return."""
        try:
            check_text(query)
        except ValueError as exc:
            raise InvalidInput(f"the query cannot be searched: {exc}") from None
        k = k or self.config.k
        candidates = max(self.config.candidates, k)
        leg = SearchQuery(
            scope=scope,
            text=query,
            k=candidates,
            candidates=candidates,
            filters=filters,
            recency_half_life_days=self.config.recency_half_life_days,
            now=now or utc_now(),
        )
        return leg, k

    def _top(
        self,
        query: str,
        scope: Scope,
        leg: SearchQuery,
        fused: list[Ranked],
        parts: Sequence[str],
        part_rows: Sequence[Sequence[Ranked]],
    ) -> list[Ranked]:
        """The fused candidates with the query parts' legs added, re-weighed by the query's cues."""
        self._note_speakers(scope, fused)
        if parts:
            weight = self.config.part_weight / len(parts)  # the parts together weigh part_weight
            fused = fuse_more(fused, part_rows, weight=weight, rrf_k=leg.rrf_k, k=len(fused))
        assert leg.now is not None
        return self._cued(query, fused, leg.now)

    def _parts(self, query: str, scope: Scope) -> list[str]:
        """The parts of ``query`` searched alone (:mod:`memstrata.query_parts`), without the
        speaker names recall has seen in ``scope``'s user and agent; none when parts are off."""
        if self.config.part_weight <= 0:
            return []
        with self._lock:  # another thread may be adding names
            names = tuple(self._speakers.get((scope.user_id, scope.agent_id), ()))
        return query_parts(query, names)

    @staticmethod
    def _part_calls(parts: list[str], leg: SearchQuery) -> Plan[list[list[Ranked]]]:
        """Each part embedded and searched by vector alone. (By text alone, parts found less on
        LoCoMo: the whole query's text leg already matches their words.)"""
        vectors = yield port_calls.embed(parts)
        ranked: list[list[Ranked]] = []
        for v in vectors:
            ranked.append(
                (yield port_calls.store("rank", leg.model_copy(update={"vector": tuple(v), "text": ""})))
            )
        return ranked

    def _note_speakers(self, scope: Scope, fused: Sequence[Ranked]) -> None:
        """Remember the speakers of ``scope``'s user and agent (left out of query parts)."""
        self._add_speakers({(scope.user_id, scope.agent_id, t.speaker) for t in fused if t.speaker})

    def _add_speakers(self, seen: set[tuple[str, str, str]]) -> None:
        with self._lock:
            for user, agent, speaker in seen:
                names = self._speakers.get((user, agent))
                if names is None:
                    make_room(self._speakers, 1, _MAX_SESSIONS_NOTED)
                    names = self._speakers[(user, agent)] = set()
                if len(names) < _MAX_SPEAKERS:
                    names.add(speaker)

    def _with_neighbours(
        self, scope: Scope, hits: list[RecallHit], filters: SearchFilters
    ) -> Plan[list[RecallHit]]:
        """``hits`` with the session neighbours of the best ones (:mod:`memstrata.neighbours`).
        Neighbours honour no filter but the session's, so a filtered search gets none."""
        config = self.config
        if not config.neighbour_anchors or filters != SearchFilters():
            return hits
        window = NeighbourWindow(
            anchors=config.neighbour_anchors,
            after=config.neighbours_after,
            before=config.neighbours_before,
            weight=config.neighbour_weight,
        )
        anchors = neighbour_anchors(hits, window)
        if not anchors:
            return list(hits)
        # The turns of each anchor's session in write order (one indexed scan per session).
        sessions: dict[tuple[str, str, str], list[Episode]] = {}
        for anchor in anchors:
            key = session_key(anchor.episode)
            if key not in sessions:
                sessions[key] = yield port_calls.store(
                    "scan", scope, kinds=(EpisodeKind.TURN,), session_id=key[2]
                )
        self.remember(e for turns in sessions.values() for e in turns)
        return merge_neighbours(hits, anchors, sessions, window)

    def _query_vector(self, query: str, scope: Scope, recent: Recent) -> Plan[list[float]]:
        """The query's vector (see :meth:`recall`'s ``recent``)."""
        context_turns = self.config.context_turns
        if isinstance(recent, Sequence):
            [vector] = yield port_calls.embed([query_text(query, recent, context_turns=context_turns)])
            return list(vector)
        key = (scope.user_id, scope.agent_id, scope.session_id)
        guess = query_text(query, self._latest.get(key, ()), context_turns=context_turns)
        [vector] = yield port_calls.embed([guess])
        turns: Sequence[Episode] = yield port_calls.pending(recent)
        self.note_latest(scope, turns)
        text = query_text(query, turns, context_turns=context_turns)
        if text != guess:
            self.missed_guesses += 1
            [vector] = yield port_calls.embed([text])
        return list(vector)

    async def arecall(
        self,
        query: str,
        *,
        scope: Scope,
        store: object,
        recent: Recent = (),
        now: datetime | None = None,
        k: int | None = None,
        filters: SearchFilters = SearchFilters(),
    ) -> list[RecallHit]:
        """:meth:`recall` on asyncio, through ``store`` (an async store, or this one in worker
        threads): ``recent`` may be an awaitable (a task reading them)."""
        leg, k = self._leg(query, scope=scope, now=now, k=k, filters=filters)
        ports = Ports(store, self.embedder)
        parts = self._parts(query, scope)
        part_legs = asyncio.ensure_future(arun(self._part_calls(parts, leg), ports)) if parts else None
        try:
            fused = await ahybrid_ranks(
                lambda q: acall(ports, port_calls.store("rank", q)),
                leg,
                vector=arun(self._query_vector(query, scope, recent), ports),
                k=2 * leg.candidates,
            )
        finally:
            if part_legs is not None:
                await asyncio.wait([part_legs])
        top = self._top(query, scope, leg, fused, parts, part_legs.result() if part_legs is not None else [])
        return await arun(self._hits(scope, top[:k], filters), ports)

    def _cued(self, query: str, fused: list[Ranked], now: datetime) -> list[Ranked]:
        """``fused`` re-weighed by the speakers, days and time spans ``query`` names
        (:mod:`memstrata.cues`)."""
        config = self.config
        speaker_boost, date_boost, span_boost = config.speaker_boost, config.date_boost, config.span_boost
        if speaker_boost <= 1 and date_boost <= 1 and span_boost <= 1:
            return fused
        today = now.date() if span_boost > 1 else None
        cues = query_cues(query, {t.speaker for t in fused if t.speaker}, today=today)
        if not cues:
            return fused
        weighed = [
            t._replace(
                score=t.score
                * cues.weight(
                    t.speaker,
                    t.occurred_at,
                    speaker_boost=speaker_boost,
                    date_boost=date_boost,
                    span_boost=span_boost,
                )
            )
            for t in fused
        ]
        weighed.sort(key=lambda t: (-t.score, -t.seq))
        return weighed
