"""Finding and checking a GGUF file before llama.cpp sees it, so failures have plain messages."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from memstrata.adapters.extras import require
from memstrata.errors import ConfigError, ModelUnavailable

from .default_model import default_model_path

if TYPE_CHECKING:
    from llama_cpp._internals import LlamaModel

GGUF_MAGIC = b"GGUF"


def resolve_model_path(model_path: str | Path | None) -> Path:
    """The GGUF file to load: the given one, checked, or the default model.

    Raises:
        ConfigError: no file at that path (or it is a directory); the default model is missing.
        ModelUnavailable: the file cannot be read, or is not a GGUF file.
    """
    if model_path is None:
        path = default_model_path()
    else:
        path = Path(model_path).expanduser()
        if not path.exists():
            raise ConfigError(
                f"model file not found: {path}. Point MEMSTRATA_MODEL_PATH (or model_path) at a .gguf file, "
                "or leave it unset to use the default model"
            )
        if not path.is_file():
            raise ConfigError(f"model path {path} is not a file; it must be a .gguf model file")
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise ModelUnavailable(f"cannot read model file {path}: {exc.strerror or exc}") from exc
    if magic != GGUF_MAGIC:
        raise ModelUnavailable(
            f"{path} is not a GGUF model file (it starts with {magic!r}, expected {GGUF_MAGIC!r}); "
            "llama.cpp needs a .gguf file (convert other formats with llama.cpp's convert scripts)"
        )
    return path.resolve()


def load_vocabulary(path: Path) -> LlamaModel:
    """Load only the tokenizer of a GGUF file (no weights, no context).

    Raises:
        ModelUnavailable: llama.cpp cannot read the file.
    """
    llama_cpp = require("llama_cpp", extra="local", purpose="llama.cpp")
    from llama_cpp._internals import LlamaModel

    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    try:
        return LlamaModel(path_model=str(path), params=params, verbose=False)
    except ValueError as exc:
        raise ModelUnavailable(unloadable_message(path)) from exc


def unloadable_message(path: Path) -> str:
    """What to tell a user whose GGUF file llama.cpp refused."""
    return (
        f"llama.cpp could not load {path}: the file is truncated or corrupt, or its architecture is "
        "newer than this llama-cpp-python build supports (re-download it, or upgrade llama-cpp-python)"
    )
