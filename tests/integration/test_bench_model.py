"""``memstrata bench model --json`` on the default model, with a small workload."""

from __future__ import annotations

import json

import pytest
from memstrata.adapters.cli.app import register_commands
from typer.testing import CliRunner

pytestmark = pytest.mark.model

REQUIRED = {
    "load_s",
    "prompt_tokens_per_s",
    "generation_tokens_per_s",
    "peak_rss_mb",
    "prompt_tokens_counted",
    "prompt_tokens_evaluated",
}


def test_bench_model_prints_one_json_object() -> None:
    args = ["bench", "model", "--json", "--n-ctx", "1024", "--prompt-tokens", "64", "--gen-tokens", "4"]
    result = CliRunner().invoke(register_commands(), args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) >= REQUIRED
    assert (
        report["prompt_tokens_counted"]
        == report["prompt_tokens_evaluated"]
        == report["prompt_tokens_reported"]
    )
    assert report["count_matches"] is True
    assert report["n_ctx"] == 1024
    assert report["prompt_tokens"] >= 64
    assert 1 <= report["generation_tokens"] <= 4
    assert report["prompt_tokens_per_s"] > 0 and report["peak_rss_mb"] > 50
