"""``memstrata bench model``: the local model's load time, prompt and generation speed, memory, and
the token-count check (memstrata's count of a multi-turn chat prompt against the tokens llama.cpp
evaluated for it, from llama.cpp's own performance counters).

Baselines measured in the same run: loading the vocabulary alone (what counting costs without the
weights), and the common estimates of the same prompt (tiktoken cl100k with OpenAI's per-message
overhead; characters / 4), as ratios to the exact count.
"""

from __future__ import annotations

import importlib.metadata
import json
import resource
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from memstrata.schemas import ChatMessage

from memstrata_bench.cli.group import bench

CHECK_PROMPT = (
    ChatMessage(role="system", content="You are a concise assistant. Answer in one sentence."),
    ChatMessage(
        role="user", content="I moved to Lisbon in March 2024 — café every morning ☕. Where do I live?"
    ),
    ChatMessage(role="assistant", content="You live in Lisbon, since March 2024."),
    ChatMessage(role="user", content="Right. My sister Ana visits on 12 May; she is allergic to peanuts."),
    ChatMessage(role="assistant", content="Noted: Ana visits on 12 May and must avoid peanuts."),
    ChatMessage(role="user", content="What should I keep out of dinner when Ana comes? 🥜"),
)
_FILLER = (
    "On Tuesday the team moved the budget review to the end of June because the client changed the "
    "scope, and Ana asked for a reminder the day before. "
)
_STORY = "Write a long, detailed story about a lighthouse keeper who finds a message in a bottle."


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _long_prompt(counter: Any, target: int) -> list[ChatMessage]:
    text = ""
    while True:
        messages = [ChatMessage(role="user", content=f"{text}Summarize the notes above in one line.")]
        if counter.count_prompt(messages) >= target:
            return messages
        text += _FILLER


def _rate(tokens: int, seconds: float) -> float | None:
    return round(tokens / seconds, 1) if seconds > 0 else None


def run_model_bench(
    model_path: Path | None,
    *,
    n_ctx: int | None,
    threads: int | None,
    prompt_tokens: int,
    generation_tokens: int,
) -> dict[str, Any]:
    """Measure the model and return the report (see the module docstring)."""
    from memstrata.adapters.openai_compat import TiktokenCounter

    _progress("importing llama_cpp")
    start = time.perf_counter()
    import llama_cpp  # noqa: F401  (timed on its own: a one-off cost per process)

    import_s = time.perf_counter() - start

    from memstrata.adapters.llamacpp import LlamaCppChatModel, LlamaCppTokenCounter
    from memstrata.adapters.llamacpp.measurement import measure_completion

    _progress("loading the model")
    model = LlamaCppChatModel(model_path, n_ctx=n_ctx, n_threads=threads)
    _progress("loading the vocabulary alone (baseline)")
    start = time.perf_counter()
    LlamaCppTokenCounter(model.model_path).close()
    vocab_load_s = time.perf_counter() - start

    counter = model.token_counter
    _progress("token-count check on a 6-message chat prompt")
    counted = counter.count_prompt(CHECK_PROMPT)
    check = measure_completion(model, CHECK_PROMPT, max_tokens=1)
    cl100k = TiktokenCounter().count_prompt(CHECK_PROMPT)
    chars = sum(len(m.content) for m in CHECK_PROMPT) // 4

    _progress(f"prompt evaluation: ~{prompt_tokens} tokens")
    long_prompt = _long_prompt(counter, prompt_tokens)
    prompt_run = measure_completion(model, long_prompt, max_tokens=1)

    _progress(f"generation: up to {generation_tokens} tokens")
    story = [ChatMessage(role="user", content=_STORY)]
    start = time.perf_counter()
    gen_run = measure_completion(model, story, max_tokens=generation_tokens)
    gen_wall_s = time.perf_counter() - start

    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {
        "model": model.name,
        "model_path": str(model.model_path),
        "template_source": counter.template_source,
        "llama_cpp_python": importlib.metadata.version("llama-cpp-python"),
        "n_ctx": model.context_window,
        "n_threads": model.n_threads,
        "import_s": round(import_s, 3),
        "load_s": round(model.load_seconds, 3),
        "vocab_only_load_s": round(vocab_load_s, 3),
        "prompt_tokens_counted": counted,
        "prompt_tokens_evaluated": check.evaluated_tokens,
        "prompt_tokens_reported": check.result.usage.prompt_tokens,
        "count_matches": counted == check.evaluated_tokens == check.result.usage.prompt_tokens,
        "estimates": {
            "tiktoken_cl100k": cl100k,
            "chars_div_4": chars,
            "cl100k_to_exact_ratio": round(cl100k / counted, 3),
            "chars_div_4_to_exact_ratio": round(chars / counted, 3),
        },
        "prompt_tokens": prompt_run.prompt_eval_tokens,
        "prompt_eval_s": round(prompt_run.prompt_eval_s, 3),
        "prompt_tokens_per_s": _rate(prompt_run.prompt_eval_tokens, prompt_run.prompt_eval_s),
        "generation_tokens": gen_run.result.usage.completion_tokens,
        "generation_eval_s": round(gen_run.generation_eval_s, 3),
        "generation_tokens_per_s": _rate(gen_run.generation_eval_tokens, gen_run.generation_eval_s),
        "generation_wall_s": round(gen_wall_s, 3),
        "peak_rss_mb": round(peak_rss_mb, 1),
    }


@bench.command("model")
def bench_model(
    model: Annotated[
        Path | None, typer.Option("--model", help="A GGUF file. Default: the default model (SmolLM2-135M).")
    ] = None,
    n_ctx: Annotated[int | None, typer.Option("--n-ctx", min=64, help="Default: from the file.")] = None,
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="Default: all cores.")] = None,
    prompt_tokens: Annotated[int, typer.Option("--prompt-tokens", min=16, help="Prompt size to time.")] = 500,
    generation_tokens: Annotated[int, typer.Option("--gen-tokens", min=1, help="Tokens to generate.")] = 64,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Load time, prompt and generation tokens/s, peak RSS, and the exact token-count check."""
    report = run_model_bench(
        model, n_ctx=n_ctx, threads=threads, prompt_tokens=prompt_tokens, generation_tokens=generation_tokens
    )
    if as_json:
        print(json.dumps(report))
        return
    print(
        f"{report['model']} (n_ctx {report['n_ctx']}, {report['n_threads']} threads): "
        f"load {report['load_s']} s (vocabulary alone {report['vocab_only_load_s']} s), "
        f"peak RSS {report['peak_rss_mb']} MB"
    )
    print(
        f"prompt {report['prompt_tokens_per_s']} tok/s ({report['prompt_tokens']} tokens), "
        f"generation {report['generation_tokens_per_s']} tok/s ({report['generation_tokens']} tokens)"
    )
    print(
        f"token count: counted {report['prompt_tokens_counted']}, llama.cpp evaluated "
        f"{report['prompt_tokens_evaluated']} (match: {report['count_matches']}); "
        f"cl100k estimate x{report['estimates']['cl100k_to_exact_ratio']}"
    )
