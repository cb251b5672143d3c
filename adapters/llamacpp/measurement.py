"""What llama.cpp itself measured for one completion: tokens decoded and the time spent, from its
performance counters (``llama_perf_context``), with the prompt cache emptied first so the whole
prompt is evaluated. For benchmarks and for checking token counts; not thread-safe."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from memstrata.adapters.extras import require
from memstrata.schemas import ChatMessage, ChatResult

from .chat_model import LlamaCppChatModel

__all__ = ["CompletionMeasurement", "measure_completion"]


@dataclass(frozen=True)
class CompletionMeasurement:
    """One completion and llama.cpp's counters for it.

    Attributes:
        result: what :meth:`LlamaCppChatModel.complete` returned.
        evaluated_tokens: tokens llama.cpp decoded (prompt batches plus single-token steps).
        prompt_eval_tokens: tokens decoded in multi-token batches (the prompt).
        prompt_eval_s: llama.cpp's time for those.
        generation_eval_tokens: single-token decodes (generation; a prompt's last lone token too).
        generation_eval_s: llama.cpp's time for those.
    """

    result: ChatResult
    evaluated_tokens: int
    prompt_eval_tokens: int
    prompt_eval_s: float
    generation_eval_tokens: int
    generation_eval_s: float


def measure_completion(
    model: LlamaCppChatModel,
    messages: Sequence[ChatMessage],
    *,
    max_tokens: int,
    temperature: float = 0.0,
    json_schema: dict[str, Any] | None = None,
) -> CompletionMeasurement:
    """Run ``model.complete`` from an empty cache and read llama.cpp's counters.

    With ``max_tokens=1`` nothing but the prompt is decoded (the one reply token is sampled from the
    prompt's logits), so ``evaluated_tokens`` is exactly the prompt llama.cpp evaluated.

    Raises:
        As :meth:`LlamaCppChatModel.complete`.
    """
    llama_cpp = require("llama_cpp", extra="local", purpose="llama.cpp")

    llama = model.llama
    # No cached prefix: the whole prompt is decoded.
    llama.reset()  # type: ignore[no-untyped-call]  # unannotated in llama_cpp
    llama_cpp.llama_perf_context_reset(llama.ctx)
    result = model.complete(messages, max_tokens=max_tokens, temperature=temperature, json_schema=json_schema)
    perf = llama_cpp.llama_perf_context(llama.ctx)
    # llama.cpp reports max(1, n) for both counts: a count whose time is zero is really 0.
    prompt_tokens = int(perf.n_p_eval) if perf.t_p_eval_ms > 0 else 0
    single_tokens = int(perf.n_eval) if perf.t_eval_ms > 0 else 0
    return CompletionMeasurement(
        result=result,
        evaluated_tokens=prompt_tokens + single_tokens,
        prompt_eval_tokens=prompt_tokens,
        prompt_eval_s=float(perf.t_p_eval_ms) / 1000.0,
        generation_eval_tokens=single_tokens,
        generation_eval_s=float(perf.t_eval_ms) / 1000.0,
    )
