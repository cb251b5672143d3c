"""The searches of ``memstrata bench store``: hybrid (recall's path), vector-only and text-only
latency on distinct queries, and recall@10 against exact search."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np

from memstrata_bench.cli.store import Options, _default, _ms, _progress, _Run, _timed

__all__ = ["searches", "warmups"]


def warmups(options: Options) -> int:
    """Searches run before any is timed (caches, prepared statements), on queries never timed."""
    return min(50, options.queries)


class _LookedUp:
    """The corpus's query vectors by text: recall's embedder, without the model's time."""

    def __init__(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        self._vectors = {t: v.tolist() for t, v in zip(texts, vectors, strict=True)}
        self.dimensions = int(vectors.shape[1])

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self._vectors[t] for t in texts]


def searches(run: _Run, corpus: Any, options: Options) -> dict[str, Any]:
    """Latency of hybrid (recall's path) / vector-only / text-only searches, each on queries of its
    own, then recall@10 of hybrid and of vector-only search against exact search."""
    from memstrata.adapters.postgres import plan_cache
    from memstrata.adapters.postgres.ranking import ExactRanking
    from memstrata.adapters.postgres.word_count_cache import cached_scope_rows
    from memstrata.fusion import hybrid_search
    from memstrata.recall import Recaller
    from memstrata.schemas import Scope, SearchQuery
    from memstrata.schemas.config import RecallConfig

    owner = Scope(user_id="bench-user")
    k, candidates = _default("k"), _default("candidates")
    config = RecallConfig(k=k, candidates=candidates, context_turns=0)
    embedder = _LookedUp(corpus.query_texts, corpus.query_vectors)
    recallers = {  # nothing held: every winner is read, as a new process would
        "approx": Recaller(run.copy, embedder, config, max_cached=0),
        "exact": Recaller(ExactRanking(run.copy), embedder, config, max_cached=0),  # type: ignore[arg-type]  # rank and get: all this config reads
    }
    first = warmups(options)
    timed = range(first, first + options.queries)  # the same distinct questions for each kind

    def query(i: int, *, vector: bool = True, text: bool = True) -> SearchQuery:
        return SearchQuery(
            candidates=candidates,
            scope=owner,
            vector=tuple(corpus.query_vectors[i].tolist()) if vector else None,
            text=corpus.query_texts[i] if text else "",
            k=k,
        )

    def search(kind: str, i: int) -> Callable[[], Any]:
        if kind == "search":
            return lambda: recallers["approx"].recall(corpus.query_texts[i], scope=owner)
        one_leg = query(i, vector=kind == "vector_only", text=kind == "text_only")
        return lambda: hybrid_search(run.copy, one_leg)

    out: dict[str, Any] = {}
    for i in range(first):  # warm-up: caches and prepared statements, on queries never timed
        search("search", i)()
    _progress(
        f"{options.queries} distinct searches each: hybrid (recall's path), vector only, text only "
        f"(k={k}, {candidates} candidates)"
    )
    cpu = run.server_cpu()
    for kind in ("search", "vector_only", "text_only"):
        cpu_before = cpu()
        seconds = [_timed(search(kind, i))[0] for i in timed]
        out[f"{kind}_p50_ms"], out[f"{kind}_p95_ms"] = _ms(seconds, 0.5), _ms(seconds, 0.95)
        out[f"{kind}_server_cpu_ms"] = round((cpu() - cpu_before) * 1000 / options.queries, 3)
    # Whether the bench user's scope is large enough for its searches to be planned once (the
    # store's own decision, from the rows it counted with the scope's words).
    probe = query(timed[0])
    out["searches_planned_once"] = plan_cache.planned_once(
        probe, cached_scope_rows(run.copy._word_counts, probe)
    )
    out.update(_recall(run, recallers, corpus, timed[: options.recall_queries], query))
    out["speedup_vs_exact_p50"] = round(out["exact_search_p50_ms"] / out["search_p50_ms"], 1)
    return out


def _recall(
    run: _Run, recallers: dict[str, Any], corpus: Any, indices: range, query: Callable[..., Any]
) -> dict[str, Any]:
    """Recall@10 of the hybrid search (recall's path) and of the vector leg alone, against the same
    searches with exact vector ranking (HNSW bypassed); and how long the exact hybrid search takes."""
    from memstrata.schemas import Scope

    owner = Scope(user_id="bench-user")
    _progress(f"{len(indices)} exact searches (HNSW bypassed) for recall@10")
    hybrid: list[float] = []
    vector_only: list[float] = []
    vector_by_distance: list[float] = []
    exact_seconds: list[float] = []
    for i in indices:
        text = corpus.query_texts[i]
        approx = recallers["approx"].recall(text, scope=owner)
        elapsed, exact = _timed(partial(recallers["exact"].recall, text, scope=owner))
        exact_seconds.append(elapsed)
        hybrid.append(_overlap([h.episode.id for h in approx[:10]], [h.episode.id for h in exact[:10]]))
        leg = query(i, text=False)
        approx_leg, exact_leg = run.copy.rank(leg)[:10], run.copy.rank(leg, exact=True)[:10]
        vector_only.append(_overlap([r.id for r in approx_leg], [r.id for r in exact_leg]))
        vector_by_distance.append(_within_exact_distance(approx_leg, exact_leg))
    out: dict[str, Any] = {"recall_queries": len(indices)}
    out["recall_at_10"] = round(statistics.fmean(hybrid), 4)
    out["vector_recall_at_10"] = round(statistics.fmean(vector_only), 4)
    # The corpus repeats vectors (an episode is the mean of 1-3 of a few thousand sentences): a copy at
    # the same distance as an expected hit is as good a hit, but counts as a miss by id.
    out["vector_recall_at_10_by_distance"] = round(statistics.fmean(vector_by_distance), 4)
    out["exact_search_p50_ms"], out["exact_search_p95_ms"] = _ms(exact_seconds, 0.5), _ms(exact_seconds, 0.95)
    return out


def _overlap(found: Sequence[Any], expected: Sequence[Any]) -> float:
    wanted = set(expected)
    return len(set(found) & wanted) / max(1, len(wanted))


def _within_exact_distance(found: Sequence[Any], expected: Sequence[Any]) -> float:
    """Share of the expected candidates matched by found ones no farther than the exact k-th distance."""
    if not expected:
        return 1.0
    bound = float(expected[-1].distance) + 1e-6
    close = sum(1 for r in found if r.distance is not None and float(r.distance) <= bound)
    return min(close, len(expected)) / len(expected)
