"""``memstrata bench embed``: embedding throughput, batched against one text per call.

Two workloads, both generated here (deterministic, no data files): short sentences (~15 word
pieces, like single chat turns) and ~65-word-piece chunks (like stored episodes). Each is embedded
once as one batch and once one text per call (the baseline, in the same run). For the default
embedder it also reports how closely the vectors follow sentence-transformers' fp32 model.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from memstrata.ports import Embedder

from memstrata_bench.cli.group import bench

_NAMES = ["Ana", "Ben", "Chloé", "Dev", "Emil", "Farah", "Goran", "Hana", "Ivo", "Jun", "Kemal", "Lena"]
_ACTIONS = [
    "moved the team meeting to",
    "asked me to book a table for",
    "said the budget review happens on",
    "forgot to water the plants before",
    "wants the quarterly report finished by",
    "is flying to Lisbon on",
    "will bring the dog to the vet on",
    "mentioned that the train strike ends on",
    "prefers to run the database migration on",
    "is allergic to peanuts, so plan dinner for",
    "needs the signed contract back by",
    "started learning the cello on",
]
_TIMES = ["Monday", "Tuesday morning", "next Friday", "the weekend", "March 3rd", "noon", "the end of June"]
_TAILS = [
    "",
    " because the client changed the scope",
    " and wants a reminder the day before",
    " unless it rains",
    " after the release is out",
    " with two colleagues from the Berlin office",
]


def _sentences(count: int, rng: random.Random) -> list[str]:
    return [
        f"{rng.choice(_NAMES)} {rng.choice(_ACTIONS)} {rng.choice(_TIMES)}{rng.choice(_TAILS)}."
        for _ in range(count)
    ]


def _chunks(count: int, rng: random.Random, token_count: Any, target: int = 65) -> list[str]:
    """Paragraphs of generated sentences averaging about ``target`` word pieces."""
    chunks = []
    for _ in range(count):
        text = ""
        while token_count(text) < target - 8:  # sentences are ~17 pieces: stop half a sentence short
            text = f"{text} {_sentences(1, rng)[0]}".strip()
        chunks.append(text)
    return chunks


def _rate(embedder: Embedder, texts: list[str], *, batched: bool) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    vectors = embedder.embed(texts) if batched else [embedder.embed([text])[0] for text in texts]
    elapsed = time.perf_counter() - start
    return len(texts) / elapsed, np.asarray(vectors, dtype=np.float64)


def _workload(embedder: Embedder, texts: list[str], tokens: list[int]) -> dict[str, Any]:
    embedder.embed(texts[:4])  # warm-up: first-run allocations are not throughput
    batched_rate, batched = _rate(embedder, texts, batched=True)
    single_rate, single = _rate(embedder, texts, batched=False)
    cosines = np.sum(batched * single, axis=1)
    return {
        "texts": len(texts),
        "mean_tokens": round(float(np.mean(tokens)), 1),
        "batched_per_s": round(batched_rate, 1),
        "one_by_one_per_s": round(single_rate, 1),
        "speedup": round(batched_rate / single_rate, 2),
        "batch_vs_single_max_abs_diff": float(np.abs(batched - single).max()),
        "batch_vs_single_min_cosine": float(cosines.min()),
    }


def _untruncated_counter(tokenizer_path: Path) -> Callable[[str], int]:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_path))  # a private copy, free to reconfigure
    tokenizer.no_truncation()
    tokenizer.no_padding()

    def count(text: str) -> int:
        return len(tokenizer.encode(text).ids)

    return count


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@bench.command("embed")
def bench_embed(
    sentences: Annotated[int, typer.Option("--sentences", min=8, help="Texts per workload.")] = 256,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="MiniLM texts per model run.")] = 32,
    threads: Annotated[
        int | None, typer.Option("--threads", min=1, help="Default: all cores (MiniLM), half (GGUF).")
    ] = None,
    gguf: Annotated[
        Path | None, typer.Option("--gguf", help="Benchmark LlamaCppEmbedder on this GGUF instead.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Embedding throughput (sentences/s), batched vs one text per call, and vector agreement."""
    from memstrata.adapters.embeddings import LlamaCppEmbedder, MiniLMEmbedder

    _progress("loading the embedder")
    start = time.perf_counter()
    embedder: MiniLMEmbedder | LlamaCppEmbedder
    token_count: Callable[[str], int]
    if gguf is None:
        embedder = MiniLMEmbedder(threads=threads, batch_size=batch_size)
        token_count = _untruncated_counter(embedder.tokenizer_path)
        name = "MiniLMEmbedder (all-MiniLM-L6-v2, int8 ONNX)"
    else:
        llama = embedder = LlamaCppEmbedder(gguf, n_threads=threads)
        token_count = llama.count_tokens
        name = f"LlamaCppEmbedder ({gguf.name}, pooling {llama.pooling})"
    load_s = time.perf_counter() - start

    rng = random.Random(20261128)
    short = _sentences(sentences, rng)
    chunks = _chunks(sentences, rng, token_count)
    report: dict[str, Any] = {
        "embedder": name,
        "dimensions": embedder.dimensions,
        "threads": embedder.threads,
        "batch_size": batch_size if gguf is None else None,
        "load_s": round(load_s, 3),
    }
    _progress(f"short sentences: {sentences} batched, then one by one")
    report["short"] = _workload(embedder, short, [token_count(t) for t in short])
    _progress(f"~65-token chunks: {sentences} batched, then one by one")
    report["chunks"] = _workload(embedder, chunks, [token_count(t) for t in chunks])
    if isinstance(embedder, MiniLMEmbedder):
        from memstrata.adapters.embeddings._minilm_reference import centroid_agreement

        _progress("agreement with sentence-transformers' fp32 all-MiniLM-L6-v2 (reference centroids)")
        report["fp32_reference"] = centroid_agreement(embedder)

    if as_json:
        print(json.dumps(report))
        return
    for workload in ("short", "chunks"):
        row = report[workload]
        print(
            f"{workload:>6}: {row['batched_per_s']:8.1f}/s batched, "
            f"{row['one_by_one_per_s']:7.1f}/s one by one "
            f"(x{row['speedup']}), {row['mean_tokens']} tokens/text, "
            f"batch vs single max |diff| {row['batch_vs_single_max_abs_diff']:.1e}"
        )
    if "fp32_reference" in report:
        ref = report["fp32_reference"]
        print(
            f"fp32 reference centroids: min cosine {ref['fp32_min_cosine']:.5f}, "
            f"mean {ref['fp32_mean_cosine']:.5f}"
        )
