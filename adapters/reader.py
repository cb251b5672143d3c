"""Prompt settings fitted to the model that reads the prompt.

A small model answers from a few lines and is misled by many: SmolLM2-135M, shown fifteen
recalled notes, describes them ("The user requested a password ...") instead of answering; shown
the two or three that clear a stricter relevance floor, it answers ("The wifi password at the lake
cabin is maple-7731."). A bigger model gains from more context. So a reader under
``SMALL_READER_PARAMETERS`` gets ``SMALL_READER_FLOOR`` unless the caller chose a floor; the
figures behind both are in docs/benchmarks.md ("Answers").
"""

from __future__ import annotations

from memstrata.ports import ChatModel
from memstrata.schemas.config import MemoryConfig

__all__ = ["SMALL_READER_FLOOR", "SMALL_READER_PARAMETERS", "fit_to_reader", "parameters_of"]

SMALL_READER_PARAMETERS = 1_000_000_000
"""Models below this many parameters are small readers."""

SMALL_READER_FLOOR = 0.55
"""Their notes' relevance floor (a share of the best hit's fused score). Reciprocal-rank fusion
scores a hit both retrievers rank first at 2/61 and one ranked first by one retriever at 1/61:
above half of the best, a note is found by both retrievers, or the best of either when none is."""


def parameters_of(model: ChatModel | None) -> int | None:
    """The model's parameter count when it reports one (local GGUF models do; servers do not)."""
    count = getattr(model, "parameters", None)
    return count if isinstance(count, int) and count > 0 else None


def fit_to_reader(config: MemoryConfig, model: ChatModel | None) -> MemoryConfig:
    """``config`` with the small-reader floor when ``model`` is small and the caller left the
    floor at its default; otherwise ``config`` unchanged."""
    size = parameters_of(model)
    planner = config.planner
    if size is None or size >= SMALL_READER_PARAMETERS or "relevance_floor" in planner.model_fields_set:
        return config
    fitted = planner.model_copy(update={"relevance_floor": SMALL_READER_FLOOR})
    return config.model_copy(update={"planner": fitted})
