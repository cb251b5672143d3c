"""``memstrata bench locomo`` end to end on the LoCoMo development subset.

The data is not in the repository (CC BY-NC): it is read from ``../shared/data/locomo/`` next to
the repository root, and these tests are skipped when it is absent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "locomo" / "locomo-dev3.json"
OVERALL_KEYS = (
    "evidence_recall",
    "all_evidence_rate",
    "answer_in_context_rate",
    "memory_tokens_mean",
    "context_p50_ms",
    "context_p95_ms",
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not DATA.is_file(), reason=f"LoCoMo data not found at {DATA} (not shipped with the repo)"
    ),
]


def bench_locomo(*args: str, questions: int = 20) -> dict[str, Any]:
    from memstrata.adapters.cli.app import register_commands

    limits = ["--limit-conversations", "1", "--limit-questions", str(questions)]
    result = CliRunner().invoke(
        register_commands(),
        ["bench", "locomo", "--data", str(DATA), *limits, "--json", "--no-progress", *args],
    )
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def check_system(figures: dict[str, Any], budget: int) -> None:
    for key in OVERALL_KEYS:
        assert figures[key] is not None, key
    assert 0.0 <= figures["evidence_recall"] <= 1.0
    assert figures["questions"] == 20
    assert 0 < figures["memory_tokens_max"] <= budget
    assert figures["budget_overflows"] == 0


def test_baselines_on_one_conversation_with_the_model_tokenizer() -> None:
    report = bench_locomo("--baselines-only", "--tokenizer", "model", "--budget", "1000")
    assert report["system"] is None and report["overall"] is None
    assert report["data"]["conversations"] == ["conv-26"]
    assert report["data"]["questions"] == 20
    baselines = report["baselines"]
    for name in ("recency", "bm25", "dense", "rrf", "rrf-window"):
        check_system(baselines[name]["overall"], 1000)
        assert set(baselines[name]["by_conversation"]) == {"conv-26"}
    # Retrieval finds evidence that plain truncation of a 19-session conversation cannot.
    assert (
        baselines["bm25"]["overall"]["evidence_recall"] > baselines["recency"]["overall"]["evidence_recall"]
    )
    assert (
        baselines["dense"]["overall"]["evidence_recall"] > baselines["recency"]["overall"]["evidence_recall"]
    )
    assert report["best_baseline"]["name"] in ("bm25", "dense", "rrf", "rrf-window")


@pytest.mark.postgres
def test_memstrata_replay_without_a_model(postgres_dsn: str) -> None:
    report = bench_locomo("--no-model", "--store", "postgres", "--dsn", postgres_dsn)
    assert report["system"] == "memstrata"
    check_system(report["overall"], 1500)
    assert report["config"]["summaries"] == "extractive (no model)"
    assert report["overall"]["ingest_ms_per_turn"] > 0
    for name in ("recency", "bm25", "dense", "rrf", "rrf-window"):
        check_system(report["baselines"][name]["overall"], 1500)
        assert set(report["baselines"][name]["ratio"]) >= {"evidence_recall", "answer_in_context_rate"}
    assert report["by_conversation"]["conv-26"]["conversation_tokens"] > 10_000


@pytest.mark.model
@pytest.mark.postgres
def test_answers_with_the_model_on_a_few_questions(postgres_dsn: str) -> None:
    # Replayed without model summaries (the slow part); every answer comes from the model.
    report = bench_locomo("--answer", "--no-model", "--dsn", postgres_dsn, questions=4)
    answers = report["answers"]
    assert list(answers) == ["memstrata", "recency", "memstrata_excerpts", "oracle"]
    for row in answers.values():
        assert row["answered"] == 4
        assert 0.0 <= row["f1"] <= 1.0 and 0.0 <= row["replies_at_cap_rate"] <= 1.0
        assert row["reply_tokens_mean"] > 0
    assert set(answers["oracle"]["f1_by_category"]) == {"1", "2", "3", "4"}  # sampled evenly
    assert "reads the labels" in answers["oracle"]["reference"]
    oracle = report["baselines"]["oracle"]
    assert oracle["reference"] is True and oracle["overall"]["evidence_recall"] == 1.0
    assert report["best_baseline"]["name"] in ("recency", "bm25", "dense")
    overall = report["overall"]
    assert overall["f1"] == answers["memstrata"]["f1"]
    assert overall["replies_at_cap_rate"] == answers["memstrata"]["replies_at_cap_rate"]
    if answers["oracle"]["f1"]:
        assert overall["answer_vs_oracle"] == round(overall["f1"] / answers["oracle"]["f1"], 3)
    assert (
        report["config"]["answering"]["max_tokens"]
        == report["config"]["memory_config"]["planner"]["reserve_tokens"]
    )
    assert report["config"]["summaries"] == "extractive (no model)"
    # memstrata answers as open_memory would: its prompt fitted to the small default model.
    assert report["config"]["answering"]["memstrata_planner"]["relevance_floor"] == 0.55
    assert report["config"]["memory_config"]["planner"]["relevance_floor"] == 0.3  # the replay's (no reader)
    summaries = overall["summaries"]
    assert summaries["written"] >= 1 and summaries["model"] == 0 and summaries["accepted_rate"] is None
