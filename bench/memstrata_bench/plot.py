"""A PNG of evidence recall against the memory budget, one line per system (``--plot``).

matplotlib (the ``plot`` extra) is imported only here, only when a plot is asked for, and with
the non-interactive Agg backend, so nothing opens a window and nothing is needed otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from memstrata.errors import ConfigError

__all__ = ["PLOT_BUDGETS", "plot_recall_vs_budget"]

PLOT_BUDGETS = (500, 1000, 1500, 2000, 4000)


def plot_recall_vs_budget(
    report: dict[str, Any], path: str | Path, *, metric: str = "evidence_recall"
) -> Path:
    """Draw ``metric`` against the budget for every system of ``report["by_budget"]``.

    Args:
        report: the bench's JSON object.
        path: where to write the PNG.
        metric: a key of the per-budget figures.

    Returns:
        The path written.

    Raises:
        ConfigError: matplotlib is not installed (``pip install 'memstrata[plot]'``).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ConfigError("--plot needs matplotlib: pip install 'memstrata[plot]'") from exc
    by_budget: dict[str, dict[str, dict[str, Any]]] = report["by_budget"]
    budgets = sorted(int(b) for b in by_budget)
    systems = list(next(iter(by_budget.values()), {}))
    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=120)
    try:
        for system in systems:
            values = [by_budget[str(b)][system].get(metric) for b in budgets]
            points = [(b, v) for b, v in zip(budgets, values, strict=True) if v is not None]
            if not points:
                continue
            xs, ys = zip(*points, strict=True)
            headline = system == "memstrata"
            width, marker = (2.5, "o") if headline else (1.5, ".")
            axes.plot(xs, ys, label=system, linewidth=width, marker=marker)
        axes.set_xlabel("memory budget (tokens)")
        axes.set_ylabel(metric.replace("_", " "))
        axes.set_ylim(0, 1)
        axes.set_xticks(budgets)
        axes.grid(True, alpha=0.3)
        axes.legend()
        tokenizer = report.get("config", {}).get("tokenizer", "?")
        axes.set_title(f"LoCoMo: {metric.replace('_', ' ')} vs budget ({tokenizer} tokens)")
        figure.tight_layout()
        target = Path(path)
        figure.savefig(target, format="png")
    finally:
        plt.close(figure)
    return target
