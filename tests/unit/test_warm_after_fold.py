"""After a background fold, ``Memory`` hands a model that keeps a prompt cache the start of the next
prompt (issue 16): the summaries in the system message changed, and the next turn should not pay for
re-reading them. On the shipped test doubles; the llama.cpp side is tested with the real model."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from memstrata import ChatMessage, CompressionConfig, Memory, MemoryConfig, ModelError, PlannerConfig, Scope
from memstrata.ports import PrefixCachingChatModel
from memstrata.testing import HashingEmbedder, InMemoryEpisodeStore, ScriptedChatModel, WordTokenCounter

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
SCOPE = Scope(user_id="alice", session_id="s1")


class CachingModel(ScriptedChatModel):
    """A scripted model with a prompt cache to warm: it keeps what it was handed."""

    def __init__(self, replies: list[str], *, fail: bool = False) -> None:
        super().__init__(replies, context_window=400)
        self.warmed: list[list[ChatMessage]] = []
        self.fail = fail

    def warm(self, messages: Sequence[ChatMessage]) -> int:
        if self.fail:
            raise ModelError("the cache could not be filled")
        self.warmed.append(list(messages))
        return len(messages)


def make_memory(model: CachingModel, *, warm: bool = True) -> Memory:
    config = MemoryConfig(
        context_window=400,
        planner=PlannerConfig(reserve_tokens=40, memory_window_share=0.8),
        compression=CompressionConfig(
            threshold=0.3, chunk_fraction=0.2, keep_recent_turns=2, summary_max_tokens=30, warm=warm
        ),
    )
    return Memory(
        InMemoryEpisodeStore(32),
        HashingEmbedder(32),
        model=model,
        token_counter=WordTokenCounter(),
        config=config,
    )


def chat_until_folded(memory: Memory, turns: int = 16) -> None:
    for i in range(turns):
        memory.chat(
            f"message {i} about rain, tea and the garden", scope=SCOPE, occurred_at=T0 + timedelta(minutes=i)
        )
        memory.wait_for_compression()


def test_the_model_is_warmed_with_the_start_of_the_next_prompt_after_each_fold() -> None:
    model = CachingModel([f"answer number {i} about the weather" for i in range(40)])
    assert isinstance(model, PrefixCachingChatModel)
    memory = make_memory(model)
    chat_until_folded(memory)
    assert memory.summaries(scope=SCOPE) and model.warmed, "no fold, or no warming after it"
    warmed = model.warmed[-1]
    assert warmed[0].role == "system" and len(warmed) > 1  # the system message and recent turns
    reply = memory.chat("and what about tomorrow?", scope=SCOPE, occurred_at=T0 + timedelta(hours=1))
    assert list(reply.plan.messages[: len(warmed)]) == warmed  # the next prompt starts with it
    memory.close()


def test_warming_can_be_turned_off_and_a_failed_warm_loses_nothing(caplog: pytest.LogCaptureFixture) -> None:
    quiet = CachingModel([f"answer {i}" for i in range(40)])
    memory = make_memory(quiet, warm=False)
    chat_until_folded(memory)
    assert memory.summaries(scope=SCOPE) and not quiet.warmed
    failing = CachingModel([f"answer {i}" for i in range(40)], fail=True)
    memory = make_memory(failing)
    chat_until_folded(memory)
    assert memory.summaries(scope=SCOPE) and "could not be filled" in caplog.text
    assert memory._queue.failures == 0  # the folds themselves were written
