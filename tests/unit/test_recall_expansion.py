"""Neighbour expansion, query parts and the fusion of further legs, through a real Recaller over
the in-memory store."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from memstrata.fusion import Ranked, fuse_more
from memstrata.query_parts import MAX_PARTS, query_parts
from memstrata.recall import Recaller
from memstrata.schemas import Episode, Scope, SearchFilters
from memstrata.schemas.config import RecallConfig
from memstrata.testing import HashingEmbedder, InMemoryEpisodeStore

T0 = datetime(2023, 6, 3, 14, 0, tzinfo=UTC)
USER = "u"


def _session(name: str, texts: list[str], start: datetime) -> list[Episode]:
    scope = Scope(user_id=USER, session_id=name)
    return [
        Episode(
            scope=scope,
            text=text,
            role="user",
            speaker="Ann" if i % 2 == 0 else "Bob",
            occurred_at=start + timedelta(seconds=5 * i),
        )
        for i, text in enumerate(texts)
    ]


def _recaller(config: RecallConfig) -> Recaller:
    store = InMemoryEpisodeStore(64)
    embedder = HashingEmbedder(64)
    first = _session(
        "s1",
        ["Where did you go hiking last weekend?", "Up the Rockies with my brother.", "Nice!", "Thanks."],
        T0,
    )
    second = _session("s2", ["I bought a violin.", "What colour?", "A red one."], T0 + timedelta(days=3))
    for turns in (first, second):
        store.put(turns, embedder.embed([t.text for t in turns]))
    return Recaller(store, embedder, config)


def _texts(recaller: Recaller, query: str, **kw: Any) -> list[str]:
    hits = recaller.recall(query, scope=Scope(user_id=USER, session_id="q"), now=T0 + timedelta(days=9), **kw)
    return [h.episode.text for h in hits]


def test_a_hit_brings_its_reply_right_after_it() -> None:
    query = "Where did you go hiking last weekend?"
    alone = _texts(_recaller(RecallConfig(candidates=1, k=1)), query)
    assert alone == ["Where did you go hiking last weekend?"]
    config = RecallConfig(candidates=1, k=1, neighbour_anchors=1, neighbours_after=1, neighbours_before=1)
    assert _texts(_recaller(config), query) == [
        "Where did you go hiking last weekend?",
        "Up the Rockies with my brother.",  # the reply; nothing is before the first turn
    ]
    wider = RecallConfig(candidates=1, k=1, neighbour_anchors=1, neighbours_after=2, neighbours_before=0)
    assert _texts(_recaller(wider), query)[1:] == ["Up the Rockies with my brother.", "Nice!"]


def test_neighbours_stay_in_their_session_and_keep_a_better_own_score() -> None:
    config = RecallConfig(
        candidates=2, k=2, neighbour_anchors=2, neighbours_after=1, neighbours_before=1, neighbour_weight=0.5
    )
    hits = _recaller(config).recall("What colour violin?", scope=Scope(user_id=USER, session_id="q"), now=T0)
    sessions = {h.episode.scope.session_id for h in hits}
    assert len({h.episode.id for h in hits}) == len(hits)  # each turn once
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert "s2" in sessions
    # a filtered recall gets no neighbours (they would not honour the filter)
    filtered = _recaller(config).recall(
        "What colour violin?",
        scope=Scope(user_id=USER, session_id="q"),
        filters=SearchFilters(session_id="s2"),
    )
    assert len(filtered) <= 2


def test_query_parts_are_content_runs_names_and_quotes_without_speakers() -> None:
    parts = query_parts(
        'What did Melanie paint after the "charity race" in Rocky Mountain Park?', ["Melanie"]
    )
    assert parts[0] == "charity race"
    assert "Rocky Mountain Park" in parts and "paint" in parts
    assert all("Melanie" not in p for p in parts)
    assert len(parts) <= MAX_PARTS
    assert query_parts("What did Melanie paint?", ["Melanie"]) == []  # one part: nothing to split


def test_fuse_more_adds_shares_and_new_candidates() -> None:
    def row(seq: int, score: float = 0.0) -> Ranked:
        return Ranked(uuid.UUID(int=seq), seq, None, None, 1, 1.0, score)

    fused = [row(1, 0.02), row(2, 0.015)]
    more = fuse_more(fused, [[row(2), row(3)]], weight=1.0, rrf_k=60, k=10)
    assert [r.seq for r in more] == [2, 1, 3]
    assert more[0].score == 0.015 + 1 / 61
    assert more[2].score == 1 / 62 and more[2].text_rank is None
    assert fuse_more(fused, [], weight=1.0, rrf_k=60, k=1) == [fused[0]]


def test_recall_with_parts_finds_what_one_part_names() -> None:
    config = RecallConfig(part_weight=1.0, k=7, candidates=7)
    texts = _texts(_recaller(config), "Did Ann buy a violin before going hiking?")
    assert "I bought a violin." in texts and "Where did you go hiking last weekend?" in texts
