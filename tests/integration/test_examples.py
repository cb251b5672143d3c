"""Every runnable example (a script with a ``__main__`` guard in ``examples/``) runs to success
against the real components: the default local model and PostgreSQL (the test database)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.postgres, pytest.mark.model, pytest.mark.slow]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# Long-running, with its own entry point: `make demo` runs it.
SKIPPED = {"long_horizon_demo.py": "takes minutes: `make demo` runs it"}


def runnable() -> list[pytest.ParameterSet]:
    scripts = sorted(p for p in EXAMPLES.glob("*.py") if '__name__ == "__main__"' in p.read_text())
    return [
        pytest.param(
            p, id=p.stem, marks=[pytest.mark.skip(reason=SKIPPED[p.name])] if p.name in SKIPPED else []
        )
        for p in scripts
    ]


def test_every_example_is_collected() -> None:
    names = {script.name for p in runnable() for script in p.values if isinstance(script, Path)}
    assert {"langchain_agent.py", "langgraph_store.py", "chatbot_pipeline.py", "openai_client.py"} <= names


@pytest.mark.parametrize("script", runnable())
def test_example_runs(script: Path, postgres_dsn: str, tmp_path: Path) -> None:
    env = {**os.environ, "MEMSTRATA_DATABASE_URL": postgres_dsn, "ORT_DISABLE_TELEMETRY": "1"}
    done = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", str(script)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, f"{script.name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    # Each example checks its own outcome and ends by printing a line starting with "ok".
    assert done.stdout.rstrip().splitlines()[-1].startswith("ok"), done.stdout[-2000:]
