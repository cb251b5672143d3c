"""``MEMSTRATA_MODEL`` as a hub id (``owner/repo:pattern``), offline: found in a Hugging Face cache
(here a temporary ``HF_HOME`` holding the default GGUF under a made-up repository id), and a clear
error when it is not cached. Each case runs in a fresh process: ``huggingface_hub`` reads
``HF_HOME`` and ``HF_HUB_OFFLINE`` when it is imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from memstrata.adapters.llamacpp import default_model_path

pytestmark = [pytest.mark.model]

REPO = "memstrata-test/SmolLM2-135M-Instruct-GGUF"
REVISION = "0123456789abcdef0123456789abcdef01234567"

PROBE = """
import json
from memstrata.adapters.models import load_chat_model
from memstrata.errors import MemstrataError
try:
    model = load_chat_model()
    print(json.dumps({"path": str(model.model_path), "window": model.context_window}))
except MemstrataError as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
"""


def hf_cache(root: Path, files: list[str]) -> Path:
    """A Hugging Face cache with ``REPO`` at ``REVISION`` holding ``files`` (links to the default GGUF)."""
    repo = root / "hub" / f"models--{REPO.replace('/', '--')}"
    snapshot = repo / "snapshots" / REVISION
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    for name in files:
        (snapshot / name).symlink_to(default_model_path())
    return root


def probe(model: str, hf_home: Path) -> dict[str, object]:
    env = {
        **os.environ,
        "MEMSTRATA_MODEL": model,
        "MEMSTRATA_MODEL_N_CTX": "512",
        "HF_HOME": str(hf_home),
        "HF_HUB_OFFLINE": "1",
    }
    for name in ("MEMSTRATA_MODEL_URL", "MEMSTRATA_MODEL_PATH", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_cached_hub_id_loads_offline(tmp_path: Path) -> None:
    home = hf_cache(tmp_path / "hf", ["SmolLM2-135M-Instruct.Q4_1.gguf", "SmolLM2-135M-Instruct.Q8_0.gguf"])
    loaded = probe(f"{REPO}:*Q4_1.gguf", home)
    assert loaded.get("path") == str(default_model_path().resolve()), loaded
    assert loaded["window"] == 512

    several = probe(f"{REPO}:*.gguf", home)
    assert several["error"] == "ConfigError"
    assert "must match exactly one file" in str(several["message"])
    assert "Q8_0" in str(several["message"])


def test_an_uncached_hub_id_offline_is_a_clear_error(tmp_path: Path) -> None:
    home = hf_cache(tmp_path / "hf", ["SmolLM2-135M-Instruct.Q4_1.gguf"])
    missing = probe("bartowski/Qwen2.5-0.5B-Instruct-GGUF:*Q4_K_M.gguf", home)
    assert missing["error"] == "ModelUnavailable"
    message = str(missing["message"])
    assert "not in the Hugging Face cache" in message and "HF_HUB_OFFLINE" in message
    assert str(home) in message  # says where it looked
