from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from memstrata.cues import query_cues
from memstrata.time_phrases import REPORT_LAG_DAYS, DaySpan, named_spans

TODAY = date(2023, 10, 20)


@pytest.mark.parametrize(
    ("query", "spans"),
    [
        ("What class did Maria start in December 2023?", (DaySpan(date(2023, 12, 1), date(2023, 12, 31)),)),
        ("When did Melanie go camping in June?", (DaySpan(date(2023, 6, 1), date(2023, 6, 30)),)),
        (
            "Where was she in November?",
            (DaySpan(date(2022, 11, 1), date(2022, 11, 30)),),
        ),  # the latest November
        ("the week before August 3, 2023", (DaySpan(date(2023, 7, 27), date(2023, 8, 3)),)),
        ("two weeks before 11 August, 2023", (DaySpan(date(2023, 7, 28), date(2023, 8, 11)),)),
        ("three days after 1 May 2023", (DaySpan(date(2023, 5, 1), date(2023, 5, 4)),)),
        ("last weekend before April 10, 2023", (DaySpan(date(2023, 4, 3), date(2023, 4, 10)),)),
        ("How often did he swim in 2022?", (DaySpan(date(2022, 1, 1), date(2022, 12, 31)),)),
        ("What did I do last week?", (DaySpan(date(2023, 10, 6), date(2023, 10, 20)),)),
        ("and last month?", (DaySpan(date(2023, 9, 1), date(2023, 9, 30)),)),
        ("three days ago", (DaySpan(date(2023, 10, 16), date(2023, 10, 18)),)),
        ("yesterday", (DaySpan(date(2023, 10, 19), date(2023, 10, 20)),)),
        ("What did Maria do on 3 June, 2023?", ()),  # a full date is a day (cues.named_days), not a span
        ("I may come", ()),
        ("What did she paint?", ()),
        ("two weeks before 30 February 2023", ()),
    ],
)
def test_named_spans(query: str, spans: tuple[DaySpan, ...]) -> None:
    assert named_spans(query, TODAY) == spans


def test_a_span_holds_the_days_a_turn_may_report_it() -> None:
    span = DaySpan(date(2023, 6, 1), date(2023, 6, 30))
    assert span.holds(date(2023, 6, 1)) and span.holds(date(2023, 7, 7))
    assert not span.holds(date(2023, 5, 31))
    assert not span.holds(date(2023, 6, 30) + timedelta(days=REPORT_LAG_DAYS + 1))


def test_cues_weigh_a_turn_in_a_named_span() -> None:
    cues = query_cues("What did Maria start in December 2023?", ["Maria"], today=TODAY)
    inside, outside = datetime(2023, 12, 9, tzinfo=UTC), datetime(2023, 9, 9, tzinfo=UTC)
    boosts = {"speaker_boost": 2.0, "date_boost": 3.0, "span_boost": 1.5}
    assert cues.weight("Maria", inside, **boosts) == 3.0
    assert cues.weight(None, outside, **boosts) == 1.0
    assert not query_cues("What did she start in December 2023?", ["Maria"]).spans  # no day given


@given(query=st.text(max_size=200))
def test_any_text_names_well_formed_spans(query: str) -> None:
    for span in named_spans(query, TODAY):
        assert span.first <= span.last
