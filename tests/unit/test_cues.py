from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from memstrata.cues import QueryCues, named_days, named_speakers, query_cues
from memstrata.recall import Recaller
from memstrata.schemas import Episode, Scope
from memstrata.schemas.config import RecallConfig
from memstrata.testing import HashingEmbedder, InMemoryEpisodeStore

SCOPE = Scope(user_id="u", session_id="s1")
T0 = datetime(2023, 6, 3, 14, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("query", "days"),
    [
        ("What did Maria start on 3 June, 2023?", (date(2023, 6, 3),)),
        ("the week before August 3, 2023", (date(2023, 8, 3),)),
        ("on the 3rd of June 2023 and on Oct. 13th, 2023", (date(2023, 6, 3), date(2023, 10, 13))),
        ("logs of 2023-06-03, again 3 June 2023", (date(2023, 6, 3),)),
        ("in June 2023", ()),  # a month names no day
        ("on 3 June", ()),  # no year
        ("on 30 February 2023", ()),
        ("I may 3 times a day", ()),
    ],
)
def test_named_days(query: str, days: tuple[date, ...]) -> None:
    assert named_days(query) == days


def test_named_speakers_whole_words_case_sensitive_first_names() -> None:
    speakers = {"Melanie", "Will", "Jon", "Maria Lopez"}
    assert named_speakers("What did Melanie's kids like?", speakers) == {"Melanie"}
    assert named_speakers("What will Jonathan do?", speakers) == frozenset()  # not Will, not Jon
    assert named_speakers("Did Maria and Will meet?", speakers) == {"Maria Lopez", "Will"}
    assert named_speakers("what did melanie paint?", speakers) == frozenset()


@given(query=st.text(), speakers=st.lists(st.text(), max_size=4))
def test_any_text_gives_cues_among_the_given_speakers(query: str, speakers: list[str]) -> None:
    cues = query_cues(query, speakers)
    assert cues.speakers <= set(speakers)
    assert all(day.year >= 1 for day in cues.days)


def test_weight_multiplies_speaker_and_day_with_a_day_of_slack() -> None:
    cues = query_cues("What did Maria say on 3 June 2023?", ["Maria", "John"])
    boosts = {"speaker_boost": 2.0, "date_boost": 3.0}
    assert cues.weight("Maria", T0, **boosts) == 6.0
    assert cues.weight("John", T0, **boosts) == 3.0
    day_before = datetime(2023, 6, 2, 0, 0, tzinfo=UTC)
    assert cues.weight("John", day_before, **boosts) == 3.0
    assert cues.weight("John", day_before - timedelta(seconds=1), **boosts) == 1.0
    assert cues.weight("John", datetime(2023, 6, 5, tzinfo=UTC), **boosts) == 1.0
    assert cues.weight(None, T0 - timedelta(days=9), **boosts) == 1.0
    assert not QueryCues() and not query_cues("what now?", ["Maria"])


def _turn(text: str, speaker: str | None, at: datetime) -> Episode:
    return Episode(scope=SCOPE, text=text, role="user", speaker=speaker, occurred_at=at)


def _recaller(config: RecallConfig, turns: list[Episode]) -> Recaller:
    store = InMemoryEpisodeStore(32)
    embedder = HashingEmbedder(32)
    store.put(turns, embedder.embed([t.text for t in turns]))  # same text, same vector: a tie
    return Recaller(store, embedder, config)


def _ranked(config: RecallConfig, turns: list[Episode], query: str) -> list[tuple[str | None, date, float]]:
    hits = _recaller(config, turns).recall(query, scope=SCOPE, now=T0 + timedelta(days=60))
    return [(h.episode.speaker, h.episode.occurred_at.date(), h.score) for h in hits]


OFF = RecallConfig(speaker_boost=1, date_boost=1)


def test_recall_prefers_the_turn_of_the_speaker_the_query_names() -> None:
    text = "I painted a sunset at the lake."
    turns = [_turn(text, "Caroline", T0), _turn(text, "Melanie", T0 + timedelta(seconds=5))]
    query = "What did Melanie paint at the lake?"
    off, on = _ranked(OFF, turns, query), _ranked(RecallConfig(), turns, query)
    assert [speaker for speaker, _, _ in off] == ["Caroline", "Melanie"]  # a tie: ranked by write order
    assert [speaker for speaker, _, _ in on] == ["Melanie", "Caroline"]
    assert on[0][2] == pytest.approx(2 * off[1][2])  # Melanie's fused score, doubled
    assert on[1][2] == pytest.approx(off[0][2])


def test_recall_prefers_the_turn_of_the_day_the_query_names() -> None:
    text = "We adopted a puppy named Coco."
    turns = [_turn(text, None, T0 - timedelta(days=30)), _turn(text, None, T0)]
    query = "Which puppy was adopted, as said on 3 June, 2023?"
    off, on = _ranked(OFF, turns, query), _ranked(RecallConfig(), turns, query)
    assert [day for _, day, _ in off] == [date(2023, 5, 4), date(2023, 6, 3)]
    assert [day for _, day, _ in on] == [date(2023, 6, 3), date(2023, 5, 4)]
    assert on[0][2] == pytest.approx(2 * off[1][2])
