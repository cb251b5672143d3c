"""Recall: embed the query with a little recent context, then hybrid-search the scope.

The hybrid search runs as two rank-only single-retriever searches (:meth:`EpisodeStore.rank`)
fused here (:func:`memstrata.fusion.fuse_ranks`, the same formula every store uses): the full-text
leg starts at once and the vector leg as soon as the query is embedded, so the text leg's time
hides behind the embedding's. Only the winners are then read whole (building an episode costs
~70 us; the legs return up to twice ``candidates`` of them): the top ``candidates`` when query
cues are on, to be re-weighed by the speakers and days the query names (:mod:`memstrata.cues`),
else the top ``k``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import wait
from datetime import datetime

from memstrata.concurrency import background
from memstrata.cues import query_cues
from memstrata.errors import InvalidInput
from memstrata.fusion import fuse_ranks, ranked_hit
from memstrata.ports import Embedder, EpisodeStore
from memstrata.schemas import Episode, RecallHit, Scope, SearchFilters, SearchQuery, check_text, utc_now
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


class Recaller:
    """Finds the episodes of a scope that matter for a query.

    Args:
        store: the episode store.
        embedder: the same embedder the episodes were stored with.
        config: k, candidates, recency.
    """

    def __init__(
        self, store: EpisodeStore, embedder: Embedder, config: RecallConfig = RecallConfig()
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.config = config

    def recall(
        self,
        query: str,
        *,
        scope: Scope,
        recent: Sequence[Episode] | Callable[[], Sequence[Episode]] = (),
        now: datetime | None = None,
        k: int | None = None,
        filters: SearchFilters = SearchFilters(),
    ) -> list[RecallHit]:
        """Ranked hits for ``query`` (best first) in ``scope``'s user and agent.

        Args:
            query: the latest user turn.
            recent: the latest turns of the conversation (their text joins the query embedding), or
                a function returning them, called once the full-text leg has started (so a scan
                for them overlaps it).
            now: the time recency is measured from (default: now).
            k: hits to return (default: the config's).
            filters: narrowing inside the scope.

        Raises:
            InvalidInput: the query holds a NUL byte or a lone surrogate.
        """
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
            now=now or utc_now(),  # one "now" for both legs
        )
        # The text leg needs no vector: it runs while the query is embedded (both wait on other
        # processes' or native code's work, so two threads overlap on two cores).
        text_leg = background(self.store.rank, leg)
        try:
            turns = recent() if callable(recent) else recent
            text = query_text(query, turns, context_turns=self.config.context_turns)
            [vector] = self.embedder.embed([text])
            vector_ranks = self.store.rank(leg.model_copy(update={"vector": tuple(vector), "text": ""}))
        except BaseException:
            wait([text_leg])  # never leave a search running on a connection the caller may close
            raise
        speaker_boost, date_boost = self.config.speaker_boost, self.config.date_boost
        cued = speaker_boost > 1 or date_boost > 1
        top = fuse_ranks(vector_ranks, text_leg.result(), k=candidates if cued else k, rrf_k=leg.rrf_k)
        found = {e.id: e for e in self.store.get(scope, [t.id for t in top])}
        top = [t for t in top if t.id in found]  # else forgotten meanwhile
        cues = query_cues(query, (e.speaker for e in found.values() if e.speaker)) if cued else None
        if cues:
            top = [
                t._replace(
                    score=t.score
                    * cues.weight(found[t.id], speaker_boost=speaker_boost, date_boost=date_boost)
                )
                for t in top
            ]
            top.sort(key=lambda t: (-t.score, -t.seq))
        return [ranked_hit(t, found[t.id]) for t in top[:k]]
