"""The EpisodeStore contract: every store implementation runs these tests.

A subclass overrides :meth:`EpisodeStoreContract.make_store` or the ``store`` fixture, returning a
store of ``DIM`` dimensions whose scopes no other test uses (tests use fresh user ids, so one
database can serve them all).
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from memstrata.errors import FoldConflict, InvalidEpisode, InvalidInput
from memstrata.fusion import fuse_ranks
from memstrata.ports import EpisodeStore
from memstrata.schemas import Episode, EpisodeKind, Scope, SearchFilters, SearchQuery
from memstrata.testing.embedder import HashingEmbedder

DIM = 64
EMBED = HashingEmbedder(DIM)
T0 = datetime(2024, 5, 8, 13, 56, tzinfo=UTC)


def fresh_scope(session: str = "s1", agent: str = "default") -> Scope:
    return Scope(user_id=f"u-{uuid.uuid4().hex[:12]}", agent_id=agent, session_id=session)


def turns(
    scope: Scope, texts: list[str], *, start: datetime = T0, step: timedelta = timedelta(minutes=1)
) -> list[Episode]:
    return [
        Episode(scope=scope, text=t, role="user" if i % 2 == 0 else "assistant", occurred_at=start + i * step)
        for i, t in enumerate(texts)
    ]


def put(store: EpisodeStore, episodes: list[Episode]) -> list[Episode]:
    return store.put(episodes, EMBED.embed([e.text for e in episodes]))


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


TEXTS = [
    "Caroline went to the LGBTQ support group on Tuesday.",
    "Melanie painted a sunrise over the lake last year.",
    "The pottery class starts at 6 pm on Thursdays.",
    "Caroline is researching adoption agencies.",
    "We camped near the mountains with the kids in June.",
    "My grandmother gave me a necklace from Sweden.",
]


__all__ = ["DIM", "EpisodeStoreContract"]


class EpisodeStoreContract:
    """Mix into a ``Test...`` class; override :meth:`make_store` or the ``store`` fixture.

    Attributes:
        dimensions: the vector length the store must hold.
    """

    dimensions = DIM

    def make_store(self) -> EpisodeStore:
        raise NotImplementedError("override make_store() or the store fixture")

    @pytest.fixture
    def store(self) -> EpisodeStore:
        return self.make_store()

    def test_put_then_get_round_trips_every_field(self, store: EpisodeStore) -> None:
        scope = fresh_scope()
        original = Episode(
            scope=scope,
            kind=EpisodeKind.FACT,
            text="Ünïcode ✓ 'quotes' \"double\" ; DROP TABLE episodes; -- \U0001f600",
            role=None,
            speaker="Caroline",
            occurred_at=T0,
            importance=0.9,
            level=0,
            covers=(uuid.uuid4(),),
            metadata={"nested": {"list": [1, 2.5, "x", None, True]}, "k": "v"},
            idempotency_key="key-1",
        )
        [stored] = put(store, [original])
        assert stored.seq is not None
        [got] = store.get(scope, [original.id])
        assert got.model_dump(exclude={"seq", "created_at"}) == original.model_dump(
            exclude={"seq", "created_at"}
        )
        assert got.seq == stored.seq

    def test_seq_follows_write_order(self, store: EpisodeStore) -> None:
        scope = fresh_scope()
        stored = put(store, turns(scope, TEXTS[:3])) + put(store, turns(scope, TEXTS[3:]))
        seqs = [e.seq or 0 for e in stored]
        assert all(e.seq is not None for e in stored)
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        assert [e.text for e in store.scan(scope)] == TEXTS
        assert [e.text for e in store.scan(scope, order="newest", limit=2)] == TEXTS[::-1][:2]

    @pytest.mark.parametrize(
        "bad",
        [
            "nul",
            "surrogate",
            "blank",
            "oversize",
            "dimension",
            "nan",
        ],
    )
    def test_batch_with_one_bad_item_writes_nothing(self, store: EpisodeStore, bad: str) -> None:
        scope = fresh_scope()
        good = turns(scope, TEXTS[:3])
        vectors = EMBED.embed(TEXTS[:3])
        if bad in ("nul", "surrogate", "blank", "oversize"):
            text = {"nul": "a\x00b", "surrogate": "a\ud800b", "blank": "   ", "oversize": "x" * 1_000_001}[
                bad
            ]
            good[1] = Episode.model_construct(**{**dict(good[1]), "text": text})
        elif bad == "dimension":
            vectors[1] = vectors[1][:-1]
        else:
            vectors[1] = [float("nan")] * DIM
        with pytest.raises(InvalidEpisode) as info:
            store.put(good, vectors)
        assert info.value.index == 1
        assert isinstance(info.value, InvalidInput)
        assert store.scan(scope) == []

    def test_idempotency_key_prevents_duplicates(self, store: EpisodeStore) -> None:
        scope = fresh_scope()
        first = Episode(scope=scope, text="hello", role="user", idempotency_key="turn-1")
        [a] = put(store, [first])
        retry = Episode(scope=scope, text="hello", role="user", idempotency_key="turn-1")
        [b] = put(store, [retry])
        assert b.id == a.id
        assert len(store.scan(scope)) == 1

    def test_same_id_twice_is_an_error_and_writes_nothing(self, store: EpisodeStore) -> None:
        scope = fresh_scope()
        [a] = put(store, turns(scope, ["one"]))
        again = Episode(id=a.id, scope=scope, text="two", role="user")
        with pytest.raises(InvalidEpisode):
            put(store, [*turns(scope, ["three"]), again])
        assert [e.text for e in store.scan(scope)] == ["one"]

    def test_search_never_crosses_users_or_agents(self, store: EpisodeStore) -> None:
        mine = fresh_scope()
        theirs = fresh_scope()
        other_agent = mine.model_copy(update={"agent_id": "other"})
        put(store, turns(mine, TEXTS))
        put(store, turns(theirs, TEXTS))
        put(store, turns(other_agent, TEXTS))
        query = SearchQuery(scope=mine, vector=tuple(EMBED.embed([TEXTS[0]])[0]), text=TEXTS[0], k=50)
        hits = store.search(query)
        assert len(hits) == len(TEXTS)
        assert {(h.episode.scope.user_id, h.episode.scope.agent_id) for h in hits} == {
            (mine.user_id, "default")
        }
        assert (
            store.get(mine, [h.episode.id for h in store.search(query.model_copy(update={"scope": theirs}))])
            == []
        )

    def test_two_single_retriever_searches_fuse_into_the_hybrid_search(self, store: EpisodeStore) -> None:
        """What recall does (the text leg runs while the query is embedded) must rank exactly as
        one hybrid search does, recency included."""
        scope = fresh_scope()
        texts = [f"{t} (note {i})" for i in range(4) for t in TEXTS]
        speakers = ("Caroline", "Melanie", None)
        put(
            store,
            [
                e.model_copy(update={"speaker": speakers[i % 3]})
                for i, e in enumerate(turns(scope, texts, step=timedelta(days=3)))
            ],
        )
        for question in ("When did Caroline go to the support group?", "necklace grandmother Sweden note"):
            hybrid = SearchQuery(
                scope=scope,
                vector=tuple(EMBED.embed([question])[0]),
                text=question,
                k=7,
                candidates=9,
                recency_half_life_days=20.0,
                now=T0 + timedelta(days=90),
            )
            legs = hybrid.model_copy(update={"k": hybrid.candidates})
            expected = store.search(hybrid)
            # Rank-only legs (what recall runs) fuse to the same ranking, as does a rank-only hybrid.
            ranked = fuse_ranks(
                store.rank(legs.model_copy(update={"text": ""})),
                store.rank(legs.model_copy(update={"vector": None})),
                k=hybrid.k,
                rrf_k=hybrid.rrf_k,
            )
            for leg in (legs.model_copy(update={"text": ""}), legs.model_copy(update={"vector": None})):
                # A leg alone ranks as the search with that retriever alone (one full statement).
                alone = store.search(leg)
                assert [(r.id, r.vector_rank, r.text_rank) for r in store.rank(leg)] == [
                    (h.episode.id, h.vector_rank, h.text_rank) for h in alone
                ]
                assert [r.score for r in store.rank(leg)] == pytest.approx([h.score for h in alone], rel=1e-9)
            for candidates in (ranked, store.rank(hybrid)):
                assert [r.id for r in candidates] == [h.episode.id for h in expected]
                assert [r.score for r in candidates] == pytest.approx([h.score for h in expected], rel=1e-9)
                assert [(r.vector_rank, r.text_rank) for r in candidates] == [
                    (h.vector_rank, h.text_rank) for h in expected
                ]
                # what recall's query cues weigh before any episode is read
                assert [(r.seq, r.speaker, r.occurred_at, r.superseded_by) for r in candidates] == [
                    (h.episode.seq, h.episode.speaker, h.episode.occurred_at, h.episode.superseded_by)
                    for h in expected
                ]
            for mine in ranked:  # and both follow the formula itself, not just each other
                parts = [1.0 / (hybrid.rrf_k + r) for r in (mine.vector_rank, mine.text_rank) if r]
                assert mine.score == pytest.approx(sum(parts) * mine.recency, rel=1e-9)
            scores = [h.score for h in expected]
            assert scores == sorted(scores, reverse=True) and expected[0].recency < 1.0

    @pytest.mark.parametrize("scope", [None, "alice", {"user_id": "alice"}])
    def test_every_call_without_a_scope_is_a_typed_error(self, store: EpisodeStore, scope: object) -> None:
        bad: Any = scope
        with pytest.raises(InvalidInput, match="needs a memstrata Scope"):
            store.scan(bad)
        with pytest.raises(InvalidInput, match="needs a memstrata Scope"):
            store.get(bad, [uuid.uuid4()])
        with pytest.raises(InvalidInput, match="needs a memstrata Scope"):
            store.forget(bad)
        query = SearchQuery.model_construct(scope=bad, vector=None, text="hello", k=5)
        with pytest.raises(InvalidInput, match="needs a memstrata Scope"):
            store.search(query)
        with pytest.raises(InvalidInput, match="needs a memstrata Scope"):
            store.rank(query)

    def test_vector_ranks_match_exact_cosine(self, store: EpisodeStore) -> None:
        scope = fresh_scope()
        put(store, turns(scope, TEXTS))
        qv = EMBED.embed(["Caroline adoption agencies research"])[0]
        hits = store.search(SearchQuery(scope=scope, vector=tuple(qv), k=len(TEXTS)))
        vectors = dict(zip(TEXTS, EMBED.embed(TEXTS), strict=True))
        expected = sorted(TEXTS, key=lambda t: -cosine(qv, vectors[t]))
        ranked = sorted((h for h in hits if h.vector_rank), key=lambda h: h.vector_rank or 0)
        assert [h.episode.text for h in ranked] == expected
        for h in ranked:
            assert h.vector_distance == pytest.approx(1 - cosine(qv, vectors[h.episode.text]), abs=1e-5)

    def test_text_search_finds_keyword_without_vector(self, store: EpisodeStore) -> None:
        scope = fresh_scope()
        put(store, turns(scope, TEXTS))
        hits = store.search(SearchQuery(scope=scope, text="When does the pottery class start?", k=3))
        assert hits and hits[0].episode.text == TEXTS[2]
        assert hits[0].text_rank == 1 and hits[0].vector_rank is None

    def test_fused_score_is_reciprocal_rank_fusion(self, store: EpisodeStore) -> None:
        scope = fresh_scope()
        put(store, turns(scope, TEXTS))
        q = "Caroline adoption"
        hits = store.search(
            SearchQuery(scope=scope, vector=tuple(EMBED.embed([q])[0]), text=q, k=10, rrf_k=60)
        )
        assert hits[0].episode.text == TEXTS[3]
        for h in hits:
            expected = sum(1 / (60 + r) for r in (h.vector_rank, h.text_rank) if r is not None)
            assert h.score == pytest.approx(expected, rel=1e-6)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)

    def test_recency_prefers_newer_of_equal_matches(self, store: EpisodeStore) -> None:
        scope = fresh_scope()
        old = Episode(scope=scope, text="The dentist appointment is booked.", occurred_at=T0)
        new = Episode(
            scope=scope, text="The dentist appointment is booked.", occurred_at=T0 + timedelta(days=60)
        )
        put(store, [new, old])
        q = SearchQuery(
            scope=scope,
            vector=tuple(EMBED.embed(["dentist appointment"])[0]),
            text="dentist appointment",
            recency_half_life_days=30,
            now=T0 + timedelta(days=61),
        )
        hits = store.search(q)
        assert [h.episode.id for h in hits] == [new.id, old.id]
        assert hits[0].recency > hits[1].recency
        assert hits[1].recency == pytest.approx(0.5 + 0.5 * 2 ** (-61 / 30), rel=1e-4)

    def test_filters(self, store: EpisodeStore) -> None:
        scope = fresh_scope(session="s1")
        other_session = scope.model_copy(update={"session_id": "s2"})
        a = put(store, turns(scope, TEXTS[:3]))
        b = put(store, turns(other_session, TEXTS[3:], start=T0 + timedelta(days=10)))
        fact = Episode(scope=scope, kind=EpisodeKind.FACT, text="Caroline likes pottery", occurred_at=T0)
        put(store, [fact])
        base = SearchQuery(
            scope=scope, vector=tuple(EMBED.embed(["Caroline pottery"])[0]), text="Caroline pottery", k=50
        )

        def ids(**filters: Any) -> set[uuid.UUID]:
            return {
                h.episode.id
                for h in store.search(base.model_copy(update={"filters": SearchFilters(**filters)}))
            }

        assert ids(kinds=(EpisodeKind.FACT,)) == {fact.id}
        assert ids(session_id="s2") == {e.id for e in b}
        assert ids(occurred_after=T0 + timedelta(days=5)) == {e.id for e in b}
        assert ids(occurred_before=T0 + timedelta(days=5)) == {e.id for e in a} | {fact.id}

    def test_fold_supersedes_covered_and_keeps_them_recallable(self, store: EpisodeStore) -> None:
        scope = fresh_scope()
        stored = put(store, turns(scope, TEXTS))
        covered = tuple(e.id for e in stored[:4])
        summary = Episode(
            scope=scope, kind=EpisodeKind.SUMMARY, level=1, text="Summary of four turns.", covers=covered
        )
        folded = store.fold(summary, EMBED.embed([summary.text])[0])
        assert folded.seq is not None and folded.seq > (stored[-1].seq or 0)
        current = store.scan(scope, only_current=True)
        assert [e.id for e in current] == [stored[4].id, stored[5].id, summary.id]
        assert all(e.superseded_by == summary.id for e in store.get(scope, list(covered)))
        hits = store.search(SearchQuery(scope=scope, text="pottery class", k=5))
        assert stored[2].id in {h.episode.id for h in hits}
        not_superseded = store.search(
            SearchQuery(
                scope=scope, text="pottery class", k=5, filters=SearchFilters(include_superseded=False)
            )
        )
        assert stored[2].id not in {h.episode.id for h in not_superseded}

    def test_second_fold_of_same_turns_conflicts_and_writes_nothing(self, store: EpisodeStore) -> None:
        scope = fresh_scope()
        stored = put(store, turns(scope, TEXTS))
        first = Episode(
            scope=scope, kind=EpisodeKind.SUMMARY, level=1, text="first", covers=(stored[0].id, stored[1].id)
        )
        store.fold(first, EMBED.embed(["first"])[0])
        second = Episode(
            scope=scope, kind=EpisodeKind.SUMMARY, level=1, text="second", covers=(stored[1].id, stored[2].id)
        )
        with pytest.raises(FoldConflict):
            store.fold(second, EMBED.embed(["second"])[0])
        assert store.get(scope, [second.id]) == []
        assert store.get(scope, [stored[2].id])[0].superseded_by is None

    def test_fold_of_another_users_episode_conflicts(self, store: EpisodeStore) -> None:
        mine, theirs = fresh_scope(), fresh_scope()
        [their_turn] = put(store, turns(theirs, ["secret"]))
        summary = Episode(
            scope=mine, kind=EpisodeKind.SUMMARY, level=1, text="stolen", covers=(their_turn.id,)
        )
        with pytest.raises(FoldConflict):
            store.fold(summary, EMBED.embed(["stolen"])[0])
        assert store.get(theirs, [their_turn.id])[0].superseded_by is None

    def test_forget_ids_cascades_to_derived_summaries(self, store: EpisodeStore) -> None:
        scope = fresh_scope()
        stored = put(store, turns(scope, TEXTS))
        summary = Episode(
            scope=scope, kind=EpisodeKind.SUMMARY, level=1, text="sum", covers=(stored[0].id, stored[1].id)
        )
        store.fold(summary, EMBED.embed(["sum"])[0])
        assert store.forget(scope, [stored[0].id]) == 2
        remaining = store.scan(scope)
        assert {e.id for e in remaining} == {e.id for e in stored[1:]}
        assert all(e.superseded_by is None for e in remaining)

    def test_forget_scope_deletes_only_that_user_and_agent(self, store: EpisodeStore) -> None:
        mine, theirs = fresh_scope(), fresh_scope()
        put(store, turns(mine, TEXTS))
        put(store, turns(theirs, TEXTS))
        assert store.forget(mine) == len(TEXTS)
        assert store.scan(mine) == []
        assert len(store.scan(theirs)) == len(TEXTS)

    def test_query_vector_of_wrong_dimension_is_invalid(self, store: EpisodeStore) -> None:
        with pytest.raises(InvalidInput):
            store.search(SearchQuery(scope=fresh_scope(), vector=(1.0, 0.0), k=3))
