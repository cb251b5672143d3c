"""Warming the chat model's prompt cache after a fold (issue 16): the turn that follows evaluates only
its tail, and answers exactly as from a cold cache. Counted with llama.cpp's own counters."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import llama_cpp
import pytest
from memstrata import CompressionConfig, Memory, MemoryConfig, PlannerConfig, Scope, Turn
from memstrata.adapters.llamacpp import LlamaCppChatModel
from memstrata.schemas import ChatMessage
from memstrata.testing import HashingEmbedder, InMemoryEpisodeStore

pytestmark = [pytest.mark.model]

SYSTEM = "You answer from the notes and the conversation. Be brief."
OLD = SYSTEM + "\n\nSummary: the user went running on Monday and cooked lentil soup on Tuesday."
NEW = OLD + "\nSummary: the user's cousin Lucia visits on 12 May; the plumber Tomas comes on Friday."
RECENT = [
    ChatMessage(role="user", content="My train was 14 minutes late this morning."),
    ChatMessage(role="assistant", content="That is annoying; I hope the rest of the day went better."),
    ChatMessage(role="user", content="I finished a chapter of Middlemarch before bed."),
    ChatMessage(role="assistant", content="Nice, which chapter was it?"),
]
QUESTION = ChatMessage(role="user", content="When is my cousin visiting?")
T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def chat() -> Iterator[tuple[LlamaCppChatModel, LlamaCppChatModel]]:
    with LlamaCppChatModel(n_ctx=1024, n_threads=1) as model, model.sibling() as helper:
        yield model, helper


def evaluated(model: LlamaCppChatModel, prompt: list[ChatMessage]) -> tuple[int, str]:
    """Prompt tokens llama.cpp evaluated for one greedy completion, and its text."""
    llama_cpp.llama_perf_context_reset(model.llama.ctx)
    result = model.complete(prompt, max_tokens=12)
    perf = llama_cpp.llama_perf_context(model.llama.ctx)
    return (int(perf.n_p_eval) if perf.t_p_eval_ms > 0 else 0), result.text


def prefix(system: str) -> list[ChatMessage]:
    return [ChatMessage(role="system", content=system), *RECENT]


def test_a_warmed_prompt_evaluates_only_its_tail_and_answers_as_from_cold(
    chat: tuple[LlamaCppChatModel, LlamaCppChatModel],
) -> None:
    model, helper = chat
    model.complete([*prefix(OLD), QUESTION], max_tokens=4)  # the cache holds the old summaries
    prompt = [*prefix(NEW), QUESTION]
    total = model.token_counter.count_prompt(prompt)

    warmed = model.warm(prefix(NEW))
    assert warmed > 0 and helper.llama.n_tokens >= warmed  # evaluated in the sibling's context
    tail, text = evaluated(model, prompt)
    assert 0 < tail < total - warmed + 4, (tail, total, warmed)  # about the question alone

    model.llama.reset()  # type: ignore[no-untyped-call]
    cold, cold_text = evaluated(model, prompt)
    assert cold >= total - 1 and text == cold_text  # the copied cells are the right ones


def test_warming_what_is_cached_costs_nothing_and_without_a_sibling_it_evaluates_here() -> None:
    with LlamaCppChatModel(n_ctx=1024, n_threads=1) as model:
        warmed = model.warm(prefix(NEW))
        assert warmed > 0 and model.llama.n_tokens == warmed
        assert model.warm(prefix(NEW)) == 0
        tail, _ = evaluated(model, [*prefix(NEW), QUESTION])
        assert 0 < tail < model.token_counter.count_prompt([*prefix(NEW), QUESTION]) - warmed + 4


def chat_after_a_background_fold(
    model: LlamaCppChatModel, helper: LlamaCppChatModel, *, warm: bool
) -> tuple[int, int]:
    """Prompt tokens, and those llama.cpp evaluated, of the first turn after a background fold."""
    config = MemoryConfig(
        planner=PlannerConfig(reserve_tokens=16, memory_budget=None, memory_window_share=0.9),
        compression=CompressionConfig(
            threshold=0.2, chunk_fraction=0.1, keep_recent_turns=4, summary_max_tokens=24, warm=warm
        ),
    )
    memory = Memory(
        InMemoryEpisodeStore(32), HashingEmbedder(32), model=model, summarizer=helper, config=config
    )
    scope = Scope(user_id=f"warm-{warm}", session_id="s")
    memory.add(
        [
            Turn(role=m.role, content=m.content, occurred_at=T0 + timedelta(minutes=i))
            for i, m in enumerate(RECENT * 4)
        ],
        scope=scope,
    )
    memory.chat(
        "I cooked a curry last night.", scope=scope, occurred_at=T0 + timedelta(hours=1), max_tokens=4
    )
    memory.wait_for_compression()  # the fold, then the warming
    assert memory.summaries(scope=scope), "no fold ran"
    llama_cpp.llama_perf_context_reset(model.llama.ctx)
    reply = memory.chat(QUESTION.content, scope=scope, occurred_at=T0 + timedelta(hours=2), max_tokens=4)
    perf = llama_cpp.llama_perf_context(model.llama.ctx)
    memory.close()
    return reply.plan.prompt_tokens, int(perf.n_p_eval) if perf.t_p_eval_ms > 0 else 0


@pytest.mark.slow
def test_the_turn_after_a_background_fold_reads_only_its_tail_when_warmed(
    chat: tuple[LlamaCppChatModel, LlamaCppChatModel],
) -> None:
    model, helper = chat
    cold_prompt, cold = chat_after_a_background_fold(model, helper, warm=False)
    assert cold > cold_prompt // 2  # the fold moved the prompt's start: most of it is read again
    prompt, evaluated = chat_after_a_background_fold(model, helper, warm=True)
    assert evaluated < prompt // 3, (evaluated, prompt)
