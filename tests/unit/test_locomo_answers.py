"""``--answer``: memstrata through its product path, the excerpt prompt for the rest, and the
report's shape, on a tiny conversation with the testing doubles (a real ``Memory``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from memstrata import Memory, MemoryConfig
from memstrata.compression import SUMMARY_SYSTEM
from memstrata.schemas import ChatMessage
from memstrata.schemas.config import CompressionConfig, PlannerConfig
from memstrata.testing import HashingEmbedder, InMemoryEpisodeStore, ScriptedChatModel, WordTokenCounter
from memstrata_bench.answering import EXCERPT_INSTRUCTION, ExcerptAnswerer, extract_answer
from memstrata_bench.baselines import BM25Baseline, ContextProvider, RecencyBaseline
from memstrata_bench.locomo_data import Conversation, parse_locomo
from memstrata_bench.locomo_report import build_report
from memstrata_bench.locomo_run import RunOptions, run_locomo, select_questions
from memstrata_bench.memstrata_provider import MemstrataProvider

from .test_locomo_run import data

GOLD = {
    "Where did Ann go hiking?": "Mount Tam",
    "What did Rex chew?": "pottery bowl",
    "Who is a menace?": "Rex",
}


def reply(messages: Sequence[ChatMessage]) -> str:
    """Summaries: a faithful one, except for the second session (a loop, which the guard rejects).
    Answers: the gold answer when the prompt holds it, under a bare label as small models write;
    memstrata's own prompt gets a reply that runs to the cap after the answer."""
    system, prompt = messages[0].content, messages[-1].content
    if system == SUMMARY_SYSTEM:
        if "Filler" in prompt:
            return (
                "The weather is nice and the weather is nice and the weather is nice and the weather is nice."
            )
        return "Ann went hiking on Mount Tam. Rex, the puppy of Bo, chewed a pottery bowl."
    question = next((q for q in GOLD if q in prompt), None)
    if question is None or GOLD[question] not in prompt:
        return "I do not know."
    if system == EXCERPT_INSTRUCTION:
        return f"Excerpts:\n\nAnswer: {GOLD[question]}"
    return f"{GOLD[question]}.\n" + "and so on " * 300


def run(answer: bool = True, **options: Any) -> tuple[dict[str, Any], ScriptedChatModel]:
    counter = WordTokenCounter()
    model = ScriptedChatModel(reply, context_window=1200)
    store = InMemoryEpisodeStore(64)
    config = MemoryConfig(
        planner=PlannerConfig(memory_budget=400, reserve_tokens=40),
        compression=CompressionConfig(threshold=0.05, keep_recent_turns=2, summary_max_tokens=40),
    )
    memory = Memory(store, HashingEmbedder(64), model=model, token_counter=counter, config=config)

    def factory(conversation: Conversation) -> list[ContextProvider]:
        provider = MemstrataProvider(memory, store, conversation, run_id="t")
        return [provider, RecencyBaseline(counter), BM25Baseline(counter)]

    answerer = ExcerptAnswerer(model, max_tokens=40) if answer else None
    result = run_locomo(
        parse_locomo(data()), factory, counter, RunOptions(budgets=(400, 45), **options), answerer=answerer
    )
    return build_report(result, budgets=(400, 45), data={}, config={}, versions={}), model


def test_every_context_is_answered_with_the_same_cap_and_scored() -> None:
    report, model = run()
    answers = report["answers"]
    assert list(answers) == ["memstrata", "recency", "memstrata_excerpts", "oracle"]
    for row in answers.values():
        assert row["answered"] == 3
        assert set(row) >= {"f1", "bleu1", "gold_in_answer_rate", "reply_tokens_mean", "replies_at_cap_rate"}
    # The gold evidence holds every answer; the label line is skipped, so each scores 1.
    assert answers["oracle"]["f1"] == 1.0 and answers["oracle"]["f1_by_category"] == {"1": 1.0, "4": 1.0}
    assert "reads the labels" in answers["oracle"]["reference"]
    # memstrata's own prompt: right first line, then the reply runs to the cap (40 tokens).
    assert answers["memstrata"]["replies_at_cap_rate"] == 1.0
    assert answers["memstrata"]["reply_tokens_mean"] == 40.0
    assert answers["oracle"]["replies_at_cap_rate"] == 0.0
    # The truncation to 400 words keeps the whole tiny conversation.
    assert answers["recency"]["f1"] == 1.0
    product = [p for p in model.prompts if p[0].content not in (EXCERPT_INSTRUCTION, SUMMARY_SYSTEM)]
    assert len(product) == 3  # one Memory.answer call per question


def test_report_shape_with_answers() -> None:
    report, _ = run()
    overall = report["overall"]
    assert overall["f1"] == report["answers"]["memstrata"]["f1"]
    assert overall["answer_vs_oracle"] == pytest.approx(
        overall["f1"] / report["answers"]["oracle"]["f1"], abs=1e-3
    )
    assert overall["answer_vs_truncation"] == pytest.approx(
        overall["f1"] / report["answers"]["recency"]["f1"], abs=1e-3
    )
    assert overall["replies_at_cap_rate"] == 1.0
    baselines = report["baselines"]
    for name in ("recency", "bm25", "memstrata_excerpts", "oracle"):
        assert "f1" in baselines[name]["overall"]
    assert baselines["oracle"]["reference"] is True
    assert baselines["oracle"]["overall"]["evidence_recall"] == 1.0
    assert report["best_baseline"]["name"] in ("recency", "bm25")  # never the oracle
    assert baselines["bm25"]["overall"]["f1"] is None  # not answered
    assert set(report["by_budget"]["45"]) == {"memstrata", "recency", "bm25"}
    assert set(report["by_budget"]["400"]) == {"memstrata", "recency", "bm25", "memstrata_excerpts", "oracle"}


def test_summaries_accepted_and_rejected_are_reported() -> None:
    report, _ = run(answer=False)
    summaries = report["overall"]["summaries"]
    assert summaries["model"] >= 1 and summaries["rejected_by_guard"] >= 1
    assert summaries["accepted_rate"] == pytest.approx(
        summaries["model"] / (summaries["model"] + summaries["rejected_by_guard"]), abs=1e-4
    )
    assert "the summary repeats itself" in summaries["fallback_reasons"]
    assert summaries["faithfulness_mean"] == 1.0
    assert report["answers"] is None and report["overall"]["answer_vs_oracle"] is None


def test_questions_are_sampled_evenly_across_categories_with_a_seed() -> None:
    [conversation] = parse_locomo(data())
    options = RunOptions(categories=frozenset({1, 4, 5}), limit_questions=2, seed=3)
    picked = select_questions(conversation, options)
    assert sorted(q.category for q in picked) in ([1, 4], [1, 5], [4, 5])
    assert len({q.category for q in picked}) == 2
    assert picked == select_questions(conversation, options)
    assert len(select_questions(conversation, RunOptions(limit_questions=10))) == 3


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("Excerpts:\n\nMount Tam", "Mount Tam"),
        ("Answer: 7 May 2023\nBecause...", "7 May 2023"),
        ("**Answer:**", ""),
        ("  \nRex chewed it.", "Rex chewed it."),
        ("Question: What did Rex chew?\nA bowl.", "A bowl."),
    ],
)
def test_the_scored_line_skips_bare_labels(text: str, answer: str) -> None:
    assert extract_answer(text) == answer
