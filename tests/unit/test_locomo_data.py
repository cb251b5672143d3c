"""Loading LoCoMo-format files: validation, dates, rendering, evidence ids."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from memstrata.errors import InvalidInput
from memstrata_bench.locomo_data import (
    TURN_SPACING,
    load_locomo,
    match_evidence,
    parse_locomo,
    parse_session_date,
    render_turn,
)


def sample() -> list[dict[str, Any]]:
    """Two sessions (stored out of order), a dated key with no session, an image turn, odd ids."""
    return [
        {
            "sample_id": "tiny-1",
            "conversation": {
                "speaker_a": "Ann",
                "speaker_b": "Bo",
                "session_2_date_time": "10:37 am on 27 June, 2023",
                "session_2": [
                    {"speaker": "Bo", "dia_id": "D2:1", "text": "I adopted a puppy named Rex."},
                    {
                        "speaker": "Ann",
                        "dia_id": "D2:2",
                        "text": "Look at mine!",
                        "img_url": ["http://example.invalid/x.jpg"],
                        "blip_caption": "a photography of a dog on a beach",
                        "query": "dog beach",
                    },
                ],
                "session_1_date_time": "1:56 pm on 8 May, 2023",
                "session_1": [
                    {"speaker": "Ann", "dia_id": "D1:1", "text": "I went hiking yesterday."},
                    {"speaker": "Bo", "dia_id": "D1:2", "text": "Where did you go?"},
                    {"speaker": "Ann", "dia_id": "D1:3", "text": "Mount Tam, with my sister."},
                ],
                "session_3_date_time": "9:00 am on 1 July, 2023",
            },
            "qa": [
                {
                    "question": "When did Ann go hiking?",
                    "answer": "7 May 2023",
                    "evidence": ["D1:1"],
                    "category": 2,
                },
                {
                    "question": "What year?",
                    "answer": 2023,
                    "evidence": ["D2:01", "D1:3; D2:2"],
                    "category": 1,
                },
                {
                    "question": "Who is Rex?",
                    "answer": "Bo's puppy",
                    "evidence": ["D9:9", "D2:1"],
                    "category": 4,
                },
                {
                    "question": "What did Bo climb?",
                    "evidence": ["D1:2"],
                    "category": 5,
                    "adversarial_answer": "x",
                },
            ],
        }
    ]


def test_loads_sessions_in_numeric_order_with_aware_dates(tmp_path: Path) -> None:
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(sample()), encoding="utf-8")
    [conversation] = load_locomo(path)
    assert conversation.sample_id == "tiny-1"
    assert [s.number for s in conversation.sessions] == [1, 2]  # session_3 has a date but no turns
    first = conversation.sessions[0]
    assert first.started_at == datetime(2023, 5, 8, 13, 56, tzinfo=UTC)
    assert [t.dia_id for t in conversation.turns] == ["D1:1", "D1:2", "D1:3", "D2:1", "D2:2"]
    times = [t.occurred_at for t in first.turns]
    assert times == [first.started_at + i * TURN_SPACING for i in range(3)]


def test_renders_turns_with_date_speaker_and_image_caption() -> None:
    [conversation] = parse_locomo(sample())
    hike, photo = conversation.turns[0], conversation.turns[4]
    assert render_turn(hike) == "[1:56 pm on 8 May, 2023] Ann: I went hiking yesterday."
    assert (
        render_turn(photo)
        == "[10:37 am on 27 June, 2023] Ann: Look at mine! [shares a photo of a dog on a beach]"
    )
    assert photo.text == "Look at mine!"  # the utterance itself is kept apart for evidence matching


def test_evidence_ids_are_repaired_or_dropped_and_counted() -> None:
    [conversation] = parse_locomo(sample())
    questions = conversation.questions
    assert questions[0].evidence == ("D1:1",)
    assert questions[1].evidence == ("D2:1", "D1:3", "D2:2")  # zero-padded and joined ids repaired
    assert questions[2].evidence == ("D2:1",)
    assert questions[1].answer == "2023"
    assert questions[3].answer is None and questions[3].category == 5
    report = conversation.evidence_report
    assert (report.exact, report.repaired, report.unmatched) == (3, 3, ("D9:9",))


def test_match_evidence_handles_a_colon_after_the_d() -> None:
    matched, exact, repaired, unmatched = match_evidence(["D:11:26", "D3:4"], {"D11:26", "D3:4"})
    assert matched == ["D11:26", "D3:4"]
    assert (exact, repaired, unmatched) == (1, 1, [])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1:56 pm on 8 May, 2023", datetime(2023, 5, 8, 13, 56, tzinfo=UTC)),
        ("12:09 am on 13 September, 2023", datetime(2023, 9, 13, 0, 9, tzinfo=UTC)),
        ("12:20 pm on 8 December, 2023", datetime(2023, 12, 8, 12, 20, tzinfo=UTC)),
        ("  9:55 am on 22  October, 2023 ", datetime(2023, 10, 22, 9, 55, tzinfo=UTC)),
        ("4:04 pm on 20 Jan 2023", datetime(2023, 1, 20, 16, 4, tzinfo=UTC)),
    ],
)
def test_parses_session_dates(text: str, expected: datetime) -> None:
    assert parse_session_date(text) == expected


def test_rejects_an_unknown_date_form_naming_it() -> None:
    with pytest.raises(InvalidInput, match="yesterday-ish"):
        parse_session_date("yesterday-ish")


def _broken(path: list[Any], value: Any) -> list[dict[str, Any]]:
    data = copy.deepcopy(sample())
    target: Any = data
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ([0, "conversation", "session_1", 1, "text"], _DELETE, r"tiny-1\): session_1 turn 1: missing 'text'"),
        ([0, "conversation", "session_2_date_time"], "soon", r"session_2_date_time: session date 'soon'"),
        ([0, "conversation", "session_1"], "not a list", r"'session_1' has the wrong type \(str\)"),
        ([0, "conversation", "speaker_a"], _DELETE, r"conversation: missing 'speaker_a'"),
        ([0, "qa", 0, "category"], 7, r"qa 0: category must be 1-5, got 7"),
        ([0, "qa", 2, "answer"], _DELETE, r"qa 2: missing 'answer'"),
        ([0, "qa", 1, "answer"], ["a", "b"], r"qa 1: 'answer' must be a string or a number"),
        ([0, "qa", 0, "evidence"], "D1:1", r"qa 0: 'evidence' must be a list"),
        ([0, "conversation", "session_2", 0, "dia_id"], "D1:1", r"duplicate dia_id\(s\) \['D1:1'\]"),
        ([0, "qa"], _DELETE, r"sample 0 \(tiny-1\): missing 'qa'"),
    ],
)
def test_malformed_input_names_the_problem(path: list[Any], value: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_locomo(_broken(path, value), origin="tiny.json")


def test_rejects_files_that_are_not_locomo(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no such file"):
        load_locomo(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(InvalidInput, match="cannot read as JSON"):
        load_locomo(bad)
    empty = tmp_path / "empty.json"
    empty.write_text("{}", encoding="utf-8")
    with pytest.raises(InvalidInput, match="expected a non-empty JSON list of samples, got dict"):
        load_locomo(empty)
    with pytest.raises(InvalidInput, match="duplicate sample_id"):
        parse_locomo(sample() + sample())
