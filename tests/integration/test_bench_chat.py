"""``memstrata bench chat`` on the default model, a short chat: the report's keys and that the prefix
cache is used (a turn re-evaluates less than its whole prompt)."""

from __future__ import annotations

import json

import pytest
from memstrata.adapters.cli.app import register_commands
from typer.testing import CliRunner

pytestmark = [pytest.mark.model, pytest.mark.postgres, pytest.mark.slow]

KEYS = {"reevaluated_share", "ttft_p50_ms", "ttft_p95_ms", "ttft_vs_no_cache", "reply_tokens_p95", "folds"}


def test_bench_chat_reports_cache_reuse(postgres_dsn: str) -> None:
    args = [
        "bench",
        "chat",
        "--turns",
        "4",
        "--window",
        "1024",
        "--threads",
        "1",
        "--dsn",
        postgres_dsn,
        "--json",
    ]
    result = CliRunner().invoke(register_commands(), args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(report) >= KEYS and report["turns"] == 4
    turns = report["per_turn"]
    assert all(0 < t["evaluated_tokens"] <= t["prompt_tokens"] for t in turns)
    assert any(t["evaluated_tokens"] < t["prompt_tokens"] for t in turns[1:]), (
        "the prefix cache was never used"
    )
    assert 0 < report["reevaluated_share"] <= 1 and len(report["baseline_ttft_ms"]) == 4
