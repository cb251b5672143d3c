"""Recall: embed the query with a little recent context, then hybrid-search the scope."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from memstrata.ports import Embedder, EpisodeStore
from memstrata.schemas import Episode, RecallHit, Scope, SearchFilters, SearchQuery
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
        recent: Sequence[Episode] = (),
        now: datetime | None = None,
        k: int | None = None,
        filters: SearchFilters = SearchFilters(),
    ) -> list[RecallHit]:
        """Ranked hits for ``query`` (best first) in ``scope``'s user and agent.

        Args:
            query: the latest user turn.
            recent: the latest turns of the conversation (their text joins the query embedding).
            now: the time recency is measured from (default: now).
            k: hits to return (default: the config's).
            filters: narrowing inside the scope.
        """
        [vector] = self.embedder.embed([query_text(query, recent, context_turns=self.config.context_turns)])
        return self.store.search(
            SearchQuery(
                scope=scope,
                vector=tuple(vector),
                text=query,
                k=k or self.config.k,
                candidates=max(self.config.candidates, k or self.config.k),
                filters=filters,
                recency_half_life_days=self.config.recency_half_life_days,
                now=now,
            )
        )
