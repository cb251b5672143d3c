"""The LoCoMo replay loop and its report, on a tiny conversation with test doubles."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from memstrata.errors import ConfigError
from memstrata.testing import WordTokenCounter
from memstrata_bench.baselines import BM25Baseline, ContextProvider, ContextResult, RecencyBaseline
from memstrata_bench.locomo_data import Conversation, LocomoTurn, parse_locomo, render_turn
from memstrata_bench.locomo_report import build_report
from memstrata_bench.locomo_run import RunOptions, run_locomo
from memstrata_bench.memstrata_provider import to_turns

FILLER = [f"Filler line number {i} about the weather and nothing else." for i in range(12)]


def data() -> list[dict[str, Any]]:
    session_2 = [
        {"speaker": "Bo" if i % 2 else "Ann", "dia_id": f"D2:{i + 1}", "text": t}
        for i, t in enumerate(FILLER)
    ]
    return [
        {
            "sample_id": "tiny-1",
            "conversation": {
                "speaker_a": "Ann",
                "speaker_b": "Bo",
                "session_1_date_time": "1:56 pm on 8 May, 2023",
                "session_1": [
                    {"speaker": "Ann", "dia_id": "D1:1", "text": "I went hiking on Mount Tam yesterday."},
                    {"speaker": "Bo", "dia_id": "D1:2", "text": "My puppy Rex chewed my pottery bowl."},
                    {"speaker": "Ann", "dia_id": "D1:3", "text": "Poor bowl! Rex is a menace."},
                ],
                "session_2_date_time": "10:37 am on 27 June, 2023",
                "session_2": session_2,
            },
            "qa": [
                {
                    "question": "Where did Ann go hiking?",
                    "answer": "Mount Tam",
                    "evidence": ["D1:1"],
                    "category": 1,
                },
                {
                    "question": "What did Rex chew?",
                    "answer": "pottery bowl",
                    "evidence": ["D1:2"],
                    "category": 4,
                },
                {
                    "question": "Who is a menace?",
                    "answer": "Rex",
                    "evidence": ["D1:2", "D1:3"],
                    "category": 4,
                },
                {
                    "question": "Is Rex a cat?",
                    "evidence": ["D1:2"],
                    "category": 5,
                    "adversarial_answer": "yes",
                },
            ],
        }
    ]


class WholeConversation:
    """Stands in for memstrata: returns the whole conversation (budget ignored on purpose)."""

    name = "memstrata"

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.closed = False
        self.compressions = 0

    def ingest(self, turns: Sequence[LocomoTurn]) -> None:
        self.lines.extend(render_turn(t) for t in turns)

    def compress(self) -> None:
        self.compressions += 1

    def context(self, question: str, *, budget: int, now: datetime) -> ContextResult:
        text = "\n".join(self.lines)
        tokens = WordTokenCounter().count(text)
        return ContextResult(text, tokens, (("recalled", tokens - 10), ("recent", 10)))

    def close(self) -> None:
        self.closed = True


def run(options: RunOptions, **kwargs: Any) -> tuple[Any, list[WholeConversation]]:
    counter = WordTokenCounter()
    conversations = parse_locomo(data())
    made: list[WholeConversation] = []

    def factory(conversation: Conversation) -> list[ContextProvider]:
        made.append(WholeConversation())
        return [made[-1], RecencyBaseline(counter), BM25Baseline(counter)]

    return run_locomo(conversations, factory, counter, options, **kwargs), made


def test_replays_every_session_and_scores_each_question_at_each_budget() -> None:
    result, made = run(RunOptions(budgets=(45, 400)))
    assert made[0].closed
    assert made[0].compressions == 2 + 6  # one per exchange of two turns
    assert result.systems == ["memstrata", "recency", "bm25"]
    assert len(result.observations) == 3 * 2 * 3  # cat 5 excluded by default
    recency_small = [o for o in result.observations if o.system == "recency" and o.budget == 45]
    assert all(o.found == 0 for o in recency_small)  # the evidence is in session 1, long gone
    bm25_small = [o for o in result.observations if o.system == "bm25" and o.budget == 45]
    # "menace" is in one of the two evidence turns of the third question; "chew" is not "chewed".
    assert [o.found for o in bm25_small] == [1, 1, 1]
    assert all(o.memory_tokens <= 45 for o in recency_small + bm25_small)


def test_report_has_the_headline_keys_baselines_and_ratios() -> None:
    result, _ = run(RunOptions(budgets=(45, 400)))
    report = build_report(result, budgets=(45, 400), data={}, config={}, versions={})
    overall = report["overall"]
    for key in (
        "evidence_recall",
        "all_evidence_rate",
        "answer_in_context_rate",
        "memory_tokens_mean",
        "context_p50_ms",
        "context_p95_ms",
    ):
        assert key in overall
        for name in ("recency", "bm25"):
            assert key in report["baselines"][name]["overall"]
    assert overall["evidence_recall"] == 1.0 and overall["all_evidence_rate"] == 1.0
    assert overall["answer_in_context_rate"] == 1.0
    # The double returns the whole conversation: over the 45-token budget for all 3 questions.
    overflows = {int(b): v["memstrata"]["budget_overflows"] for b, v in report["by_budget"].items()}
    assert overall["budget_overflows"] == 3 and overflows == {45: 3, 400: 0}
    assert overall["memory_tokens_by_section"]["recent"] == 10.0
    assert overall["memory_tokens_by_section"]["recalled"] == overall["memory_tokens_mean"] - 10
    assert "memory_tokens_by_section" not in report["baselines"]["bm25"]["overall"]
    recency = report["baselines"]["recency"]
    assert recency["overall"]["evidence_recall"] == 0.0
    assert recency["ratio"]["evidence_recall"] is None  # no ratio to a zero
    assert report["baselines"]["bm25"]["overall"]["evidence_recall"] == pytest.approx(2.5 / 3, abs=1e-4)
    assert report["baselines"]["bm25"]["ratio"]["evidence_recall"] == pytest.approx(1.2, abs=1e-3)
    assert report["best_baseline"] == {
        "name": "bm25",
        "evidence_recall": 0.8333,
        "memstrata_margin_points": 16.67,
    }
    assert set(report["by_category"]) == {"1", "4"}
    assert report["by_conversation"]["tiny-1"]["conversation_tokens"] == result.conversation_tokens["tiny-1"]
    assert set(report["by_budget"]) == {"45", "400"}
    assert report["by_budget"]["400"]["recency"]["evidence_recall"] == 1.0


def test_limits_and_categories() -> None:
    result, _ = run(RunOptions(categories=frozenset({4, 5}), limit_questions=2))
    categories = [o.category for o in result.observations if o.system == "memstrata"]
    assert categories == [4, 5]  # sampled evenly across the categories
    result, _ = run(RunOptions(categories=frozenset({5})))
    [adversarial] = [o for o in result.observations if o.system == "memstrata"]
    assert adversarial.answer_in_context is None  # no gold answer to look for


@pytest.mark.parametrize(
    "kwargs",
    [{"budgets": ()}, {"budgets": (0,)}, {"categories": frozenset({6})}, {"limit_questions": 0}],
)
def test_bad_options_are_config_errors(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        RunOptions(**kwargs)


def test_turns_reach_memstrata_with_roles_speakers_dates_and_dia_ids() -> None:
    [conversation] = parse_locomo(data())
    session = conversation.sessions[0]
    replayed = to_turns(session.turns, conversation)
    assert [t.role for t in replayed] == ["user", "assistant", "user"]
    assert [t.speaker for t in replayed] == ["Ann", "Bo", "Ann"]
    assert [t.metadata["dia_id"] for t in replayed] == ["D1:1", "D1:2", "D1:3"]
    assert [t.occurred_at for t in replayed] == [t.occurred_at for t in session.turns]
    assert replayed[0].occurred_at < replayed[1].occurred_at < replayed[2].occurred_at


def test_plot_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from memstrata_bench.plot import plot_recall_vs_budget

    result, _ = run(RunOptions(budgets=(45, 400)))
    report = build_report(result, budgets=(45, 400), data={}, config={"tokenizer": "words"}, versions={})
    target = plot_recall_vs_budget(report, tmp_path / "recall.png")
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
