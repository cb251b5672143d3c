"""Aggregating LoCoMo observations into the bench's one JSON object.

Shape (``memstrata`` is the headline system; its baselines carry the same keys plus ``ratio``,
memstrata's figure divided by the baseline's)::

    {"benchmark": "locomo", "system": "memstrata", "budget": 1500,
     "overall": {...}, "by_category": {"1": {...}, ...}, "by_conversation": {"conv-26": {...}},
     "baselines": {"recency": {"overall", "by_category", "by_conversation", "ratio"},
                   "bm25": {...}, "dense": {...}},
     "best_baseline": {...}, "by_budget": {"500": {"memstrata": {...}, "recency": {...}}, ...},
     "data": {...}, "config": {...}, "versions": {...}}

Without memstrata (``--baselines-only``) ``system``, ``overall``, ``by_category`` and
``by_conversation`` are null and only the baselines are reported.

With ``--answer`` every answered system's figures gain ``f1``, ``bleu1``, ``gold_in_answer_rate``,
``reply_tokens_mean`` and ``replies_at_cap_rate``; ``baselines`` gains ``memstrata_excerpts``
(memstrata's memory text in the excerpt prompt) and ``oracle`` (the gold evidence turns: a
reference that reads the labels, marked ``"reference": true`` and never the best baseline);
memstrata's ``overall`` gains ``answer_vs_oracle`` and ``answer_vs_truncation`` (F1 ratios), and
``answers`` holds one row per answered context with its F1 per category. After a replay with the
model, memstrata's ``overall.summaries`` says how many summaries the guard accepted and how
faithful they are (share of their content words found in the turns they cover).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import fmean
from typing import Any

from .locomo_run import EXCERPTS, ORACLE, Observation, Replay, RunResult
from .metrics import percentile

__all__ = ["HEADLINE", "ORACLE_NOTE", "build_report", "summarize", "summarize_summaries"]

HEADLINE = "memstrata"
TRUNCATION = "recency"
ORACLE_NOTE = "reference ceiling: the question's gold evidence turns (reads the labels); not a system"
ANSWER_KEYS = ("f1", "bleu1", "gold_in_answer_rate", "reply_tokens_mean", "replies_at_cap_rate")
RATIO_KEYS = (
    "evidence_recall",
    "evidence_turn_recall",
    "all_evidence_rate",
    "answer_in_context_rate",
    "memory_tokens_mean",
    "context_p50_ms",
    "context_p95_ms",
    "f1",
    "bleu1",
)


def _mean(values: Sequence[float], *, digits: int = 4) -> float | None:
    return round(fmean(values), digits) if values else None


def _ratio(part: float, whole: float, *, digits: int = 4) -> float | None:
    return round(part / whole, digits) if whole else None


def summarize(observations: Sequence[Observation], replays: Sequence[Replay] = ()) -> dict[str, Any]:
    """The headline figures of a set of observations (one system, one budget).

    ``evidence_recall`` averages over questions (those with at least one matched evidence turn);
    ``evidence_turn_recall`` pools every evidence turn. Latencies are in milliseconds.
    """
    with_evidence = [o for o in observations if o.evidence]
    with_gold = [o for o in observations if o.answer_in_context is not None]
    answered = [o for o in observations if o.f1 is not None]
    latencies = [o.context_ms for o in observations]
    figures: dict[str, Any] = {
        "questions": len(observations),
        "evidence_recall": _mean([o.found / o.evidence for o in with_evidence]),
        "evidence_turn_recall": _ratio(
            sum(o.found for o in with_evidence), sum(o.evidence for o in with_evidence)
        ),
        "all_evidence_rate": _mean([float(o.found == o.evidence) for o in with_evidence]),
        "answer_in_context_rate": _mean([float(bool(o.answer_in_context)) for o in with_gold]),
        "memory_tokens_mean": _mean([float(o.memory_tokens) for o in observations], digits=1),
        "memory_tokens_max": max((o.memory_tokens for o in observations), default=None),
        "budget_overflows": sum(o.memory_tokens > o.budget for o in observations),
        "memory_share_of_conversation": _mean(
            [o.memory_tokens / o.conversation_tokens for o in observations if o.conversation_tokens]
        ),
        "context_p50_ms": _round(percentile(latencies, 50)),
        "context_p95_ms": _round(percentile(latencies, 95)),
        "f1": _mean([o.f1 for o in answered if o.f1 is not None]),
        "bleu1": _mean([o.bleu1 for o in answered if o.bleu1 is not None]),
        "answered": len(answered),
        "gold_in_answer_rate": _mean([float(bool(o.gold_in_answer)) for o in answered]),
        "reply_tokens_mean": _mean([float(o.reply_tokens or 0) for o in answered], digits=1),
        "replies_at_cap_rate": _mean([float(bool(o.at_cap)) for o in answered]),
    }
    sectioned = [dict(o.sections) for o in observations if o.sections]
    if sectioned:
        names = sorted({name for s in sectioned for name in s})
        figures["memory_tokens_by_section"] = {
            name: _mean([float(s.get(name, 0)) for s in sectioned], digits=1) for name in names
        }
    if replays:
        turns = sum(r.turns for r in replays)
        ingest_ms = 1000.0 * sum(r.ingest_s for r in replays)
        compress_ms = 1000.0 * sum(r.compress_s for r in replays)
        figures["ingest_ms_per_turn"] = _ratio(ingest_ms, turns, digits=3)
        figures["summarization_ms_per_turn"] = _ratio(compress_ms, turns, digits=3)
        figures["summarization_s_total"] = round(sum(r.compress_s for r in replays), 3)
        figures["replay_s_max"] = round(max(r.ingest_s + r.compress_s for r in replays), 3)
    return figures


def summarize_summaries(stats: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The replay's summaries pooled over conversations: how many the model wrote and the guard
    accepted (``accepted_rate`` = model / (model + rejected by the guard)), why the others were
    extractive, and the mean faithfulness of the accepted ones."""
    if not stats:
        return None
    model = sum(s["model"] for s in stats)
    rejected = sum(s["rejected_by_guard"] for s in stats)
    reasons: dict[str, int] = {}
    for s in stats:
        for reason, count in s["fallback_reasons"].items():
            reasons[reason] = reasons.get(reason, 0) + count
    scores = [score for s in stats for score in s["faithfulness"]]
    return {
        "written": sum(s["written"] for s in stats),
        "model": model,
        "rejected_by_guard": rejected,
        "accepted_rate": _ratio(model, model + rejected),
        "fallback_reasons": dict(sorted(reasons.items(), key=lambda item: -item[1])),
        "faithfulness_mean": _mean(scores),
        "faithfulness_min": round(min(scores), 4) if scores else None,
    }


def _answers(result: RunResult, budget: int) -> dict[str, Any]:
    """One row per answered context: the answer figures and F1 per category."""
    rows: dict[str, Any] = {}
    for name in result.systems:
        mine = [
            o for o in result.observations if o.system == name and o.budget == budget and o.f1 is not None
        ]
        if not mine:
            continue
        figures = summarize(mine)
        row: dict[str, Any] = {key: figures[key] for key in ("answered", *ANSWER_KEYS)}
        row["f1_by_category"] = {
            str(c): _mean([o.f1 for o in mine if o.category == c and o.f1 is not None])
            for c in sorted({o.category for o in mine})
        }
        if name == ORACLE:
            row["reference"] = ORACLE_NOTE
        rows[name] = row
    return rows


def _round(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 3)


def _system(result: RunResult, system: str, budget: int) -> dict[str, Any]:
    mine = [o for o in result.observations if o.system == system and o.budget == budget]
    replays = [r for r in result.replays if r.system == system]
    categories = sorted({o.category for o in mine})
    by_conversation = {}
    for sample, tokens in result.conversation_tokens.items():
        entry = summarize(
            [o for o in mine if o.sample_id == sample], [r for r in replays if r.sample_id == sample]
        )
        entry["conversation_tokens"] = tokens
        by_conversation[sample] = entry
    return {
        "overall": summarize(mine, replays),
        "by_category": {str(c): summarize([o for o in mine if o.category == c]) for c in categories},
        "by_conversation": by_conversation,
    }


def _ratios(mine: dict[str, Any], theirs: dict[str, Any]) -> dict[str, float | None]:
    ratios: dict[str, float | None] = {}
    for key in RATIO_KEYS:
        a, b = mine.get(key), theirs.get(key)
        both = isinstance(a, (int, float)) and isinstance(b, (int, float))
        ratios[key] = round(a / b, 3) if both and b else None
    return ratios


def build_report(
    result: RunResult,
    *,
    budgets: Sequence[int],
    data: dict[str, Any],
    config: dict[str, Any],
    versions: dict[str, Any],
) -> dict[str, Any]:
    """The bench's JSON object (see the module docstring for its shape).

    Args:
        result: what :func:`~memstrata_bench.locomo_run.run_locomo` measured.
        budgets: the budgets run; the first is the headline one.
        data: what was evaluated (file, digest, counts, evidence matching).
        config: the run's settings.
        versions: versions of what the numbers depend on.
    """
    primary = budgets[0]
    headline = _system(result, HEADLINE, primary) if HEADLINE in result.systems else None
    baselines: dict[str, Any] = {}
    for name in result.systems:
        if name == HEADLINE:
            continue
        entry = _system(result, name, primary)
        if name == ORACLE:
            entry["reference"] = True
            entry["note"] = ORACLE_NOTE
        if headline is not None:
            entry["ratio"] = _ratios(headline["overall"], entry["overall"])
        baselines[name] = entry
    answers = _answers(result, primary)
    if headline is not None:
        _add_answer_ratios(headline["overall"], answers)
        summaries = summarize_summaries(list(result.summaries.values()))
        if summaries is not None:
            headline["overall"]["summaries"] = summaries
    rivals = {name: entry for name, entry in baselines.items() if name not in (ORACLE, EXCERPTS)}
    best = max(rivals.items(), key=lambda item: item[1]["overall"]["evidence_recall"] or 0.0, default=None)
    best_baseline: dict[str, Any] | None = None
    if best is not None:
        best_recall = best[1]["overall"]["evidence_recall"]
        best_baseline = {"name": best[0], "evidence_recall": best_recall}
        mine = headline["overall"]["evidence_recall"] if headline is not None else None
        if mine is not None and best_recall is not None:
            best_baseline["memstrata_margin_points"] = round(100.0 * (mine - best_recall), 2)
    by_budget = {
        str(b): {
            name: summarize(chosen)
            for name in result.systems
            if (chosen := [o for o in result.observations if o.system == name and o.budget == b])
        }
        for b in budgets
    }
    return {
        "benchmark": "locomo",
        "system": HEADLINE if headline is not None else None,
        "budget": primary,
        "overall": headline["overall"] if headline else None,
        "by_category": headline["by_category"] if headline else None,
        "by_conversation": headline["by_conversation"] if headline else None,
        "baselines": baselines,
        "answers": answers or None,
        "best_baseline": best_baseline,
        "by_budget": by_budget,
        "data": data,
        "config": config,
        "versions": versions,
    }


def _add_answer_ratios(overall: dict[str, Any], answers: dict[str, Any]) -> None:
    """memstrata's F1 over the oracle's and over the truncation's (None without answers)."""
    mine = overall.get("f1")
    for key, name in (("answer_vs_oracle", ORACLE), ("answer_vs_truncation", TRUNCATION)):
        theirs = answers.get(name, {}).get("f1")
        overall[key] = round(mine / theirs, 3) if mine is not None and theirs else None
