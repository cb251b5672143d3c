"""``memstrata bench chat``: a long scripted chat through ``Memory.stream`` on the local model, with
folds happening along the way, measured with llama.cpp's own counters.

Per turn: the prompt's tokens, the tokens llama.cpp evaluated for it (what its prefix cache did not
hold), the tokens warming evaluated in the pause before it (in the sibling context, off the turn's
path: reported apart, never hidden), time to first token, reply tokens, and whether a fold finished
since the turn before. The baseline, in the same run: the same prompts replayed with the cache
emptied before each one.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from statistics import median
from typing import Any

from memstrata.adapters.extras import require
from memstrata.adapters.llamacpp import LlamaCppChatModel
from memstrata.memory import Memory
from memstrata.replies import REPLY_STOPS, Reply
from memstrata.schemas import ChatMessage, EpisodeKind, Scope

from .metrics import percentile

_SMALL_TALK = [
    "I went for a {n} km run along the river this morning.",
    "Remind me to buy {item} on the way home.",
    "The {topic} meeting ran over again today.",
    "I cooked {dish} for dinner last night.",
    "My train was {n} minutes late this morning.",
    "I finished a chapter of {book} before bed.",
    "The weather is {weather} again, should I take an umbrella?",
    "Can you suggest a quick lunch with {item}?",
]
_FACTS = [
    ("My locker code at the gym is {n}{n}.", "What is my locker code at the gym?"),
    ("My cousin {name} is visiting on {day} May.", "When is my cousin {name} visiting?"),
    ("I parked the car on level {n} of the station garage.", "Where did I park the car?"),
    ("The plumber is called {name} and comes on Friday.", "What is the plumber called?"),
]
_WORDS = {
    "n": [str(i) for i in range(3, 40)],
    "item": ["oat milk", "batteries", "lemons", "rice", "coffee beans"],
    "topic": ["budget", "hiring", "roadmap", "design review"],
    "dish": ["lentil soup", "tacos", "a curry", "risotto"],
    "book": ["Dune", "Middlemarch", "The Overstory"],
    "weather": ["rainy", "windy", "foggy", "cold"],
    "name": ["Hannah", "Tomas", "Lucia", "Amira", "Bence"],
    "day": [str(i) for i in range(2, 28)],
}


def script(turns: int, *, seed: int) -> list[str]:
    """``turns`` distinct user messages: small talk, facts, and questions about facts said earlier."""
    rng = random.Random(seed)
    said: list[str] = []
    messages: list[str] = []
    while len(messages) < turns:
        fill = {k: rng.choice(v) for k, v in _WORDS.items()}
        if said and rng.random() < 0.15:
            text = said.pop(rng.randrange(len(said)))
        elif rng.random() < 0.15:
            fact, question = rng.choice(_FACTS)
            text, asked = fact.format(**fill), question.format(**fill)
            said.append(asked)
        else:
            text = rng.choice(_SMALL_TALK).format(**fill)
        if text not in messages:
            messages.append(text)
    return messages


@dataclass(frozen=True)
class TurnFigures:
    """What one turn cost."""

    turn: int
    prompt_tokens: int
    evaluated_tokens: int
    ttft_ms: float
    reply_tokens: int
    truncated: bool
    fold: bool
    new_summaries: bool
    warmed_tokens: int = 0


def _evaluated(llama: Any, llama_cpp: Any) -> int:
    perf = llama_cpp.llama_perf_context(llama.ctx)
    return int(perf.n_p_eval) if perf.t_p_eval_ms > 0 else 0


def run_chat(
    memory: Memory,
    model: LlamaCppChatModel,
    messages: Sequence[str],
    *,
    user: str,
    progress: Callable[[str], None],
    think_ms: int = 0,
) -> tuple[list[TurnFigures], list[list[ChatMessage]]]:
    """Chat through ``memory.stream``; returns each turn's figures and the prompts sent.

    ``think_ms`` is the user's pause after each reply (not timed): a real chat's gap, in which a
    background fold and the warming after it can finish before the next message.
    """
    llama_cpp = require("llama_cpp", extra="local", purpose="llama.cpp")
    scope = Scope(user_id=user, session_id="bench-chat")
    start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    figures: list[TurnFigures] = []
    prompts: list[list[ChatMessage]] = []
    summaries = 0
    shown: tuple[object, ...] = ()
    warmed: list[int] = []
    warm = model.warm

    def counted_warm(prefix: Sequence[ChatMessage]) -> int:
        tokens = warm(prefix)
        warmed.append(tokens)
        return tokens

    model.warm = counted_warm  # type: ignore[method-assign,assignment]  # instrumentation: counts, changes nothing
    for index, text in enumerate(messages):
        if index and think_ms:
            time.sleep(think_ms / 1000)
        pause_warmed = sum(warmed)  # what warming evaluated since the turn before (in the pause)
        warmed.clear()
        llama_cpp.llama_perf_context_reset(model.llama.ctx)
        began = time.perf_counter()
        first: float | None = None
        reply: Reply | None = None
        for piece in memory.stream(text, scope=scope, occurred_at=start + timedelta(minutes=3 * index)):
            if isinstance(piece, Reply):
                reply = piece
            elif first is None:
                first = time.perf_counter()
        assert reply is not None
        now = len(memory.store.scan(scope, kinds=(EpisodeKind.SUMMARY,)))
        figures.append(
            TurnFigures(
                turn=index + 1,
                prompt_tokens=reply.plan.prompt_tokens,
                evaluated_tokens=_evaluated(model.llama, llama_cpp),
                ttft_ms=round(1000 * ((first or time.perf_counter()) - began), 1),
                reply_tokens=reply.usage.completion_tokens,
                truncated=reply.truncated,
                fold=now > summaries,
                new_summaries=bool(set(reply.plan.summary_ids) - set(shown)),
                warmed_tokens=pause_warmed,
            )
        )
        summaries, shown = now, reply.plan.summary_ids
        prompts.append(list(reply.plan.messages))
        progress(
            f"turn {index + 1}/{len(messages)}: {figures[-1].evaluated_tokens}/{figures[-1].prompt_tokens} evaluated"
        )
    return figures, prompts


def replay_without_cache(
    model: LlamaCppChatModel,
    prompts: Sequence[list[ChatMessage]],
    *,
    max_tokens: int,
    progress: Callable[[str], None],
) -> list[float]:
    """Time to first token of each prompt with llama.cpp's cache emptied first (the baseline)."""
    ttfts = []
    for index, messages in enumerate(prompts):
        model.llama.reset()  # type: ignore[no-untyped-call]  # unannotated in llama_cpp
        began = time.perf_counter()
        stream = model.stream(messages, max_tokens=max_tokens, stop=REPLY_STOPS)
        next(stream, None)
        ttfts.append(round(1000 * (time.perf_counter() - began), 1))
        stream.close()
        progress(f"baseline {index + 1}/{len(prompts)}")
    return ttfts


def report(
    figures: Sequence[TurnFigures], baseline: Sequence[float], *, config: dict[str, Any]
) -> dict[str, Any]:
    """The JSON object: summary figures at the top level, then every turn."""
    prompt = sum(f.prompt_tokens for f in figures)
    evaluated = sum(f.evaluated_tokens for f in figures)
    ttft = [f.ttft_ms for f in figures]
    # The first turn whose prompt shows a new summary, and the turn after a fold finished (the
    # same turn, or the one before it, depending on when the fold committed).
    after = [f for i, f in enumerate(figures) if f.new_summaries or (i and figures[i - 1].fold)]
    after_fold = [f.ttft_ms for f in after]
    typical = median(ttft)
    return {
        "benchmark": "chat",
        "turns": len(figures),
        "folds": sum(f.fold for f in figures),
        "reevaluated_share": round(evaluated / prompt, 3) if prompt else None,
        "warm_evaluated_share": round(sum(f.warmed_tokens for f in figures) / prompt, 3) if prompt else None,
        "ttft_p50_ms": percentile(ttft, 50),
        "ttft_p95_ms": percentile(ttft, 95),
        "ttft_no_cache_p50_ms": percentile(list(baseline), 50),
        "ttft_vs_no_cache": round(percentile(ttft, 50) / percentile(list(baseline), 50), 3)
        if baseline
        else None,
        "slowest_after_fold_vs_median": round(max(after_fold) / typical, 2)
        if after_fold and typical
        else None,
        "after_fold_turns": [f.turn for f in after],
        "after_fold_reevaluated_share": round(
            sum(f.evaluated_tokens for f in after) / max(1, sum(f.prompt_tokens for f in after)), 3
        )
        if after
        else None,
        "reply_tokens_p95": percentile([f.reply_tokens for f in figures], 95),
        "replies_at_cap_rate": round(sum(f.truncated for f in figures) / len(figures), 3),
        "configuration": config,
        "per_turn": [asdict(f) for f in figures],
        "baseline_ttft_ms": list(baseline),
    }
