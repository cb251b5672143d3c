from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from memstrata import ChatMessage, CompressionConfig, Memory, MemoryConfig, PlannerConfig, Scope, Turn
from memstrata.errors import InvalidEpisode, ModelError
from memstrata.fusion import Ranked
from memstrata.schemas import EpisodeKind, SearchQuery
from memstrata.testing import HashingEmbedder, InMemoryEpisodeStore, ScriptedChatModel, WordTokenCounter

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
SCOPE = Scope(user_id="alice", session_id="week-1")


def make_memory(model: ScriptedChatModel | None = None, **compression: Any) -> Memory:
    defaults: dict[str, Any] = {
        "threshold": 0.5,
        "chunk_fraction": 0.3,
        "keep_recent_turns": 4,
        "summary_max_tokens": 60,
    }
    config = MemoryConfig(
        context_window=600,
        planner=PlannerConfig(reserve_tokens=100, recent_turns_max=6),
        compression=CompressionConfig(**(defaults | compression)),
    )
    return Memory(
        InMemoryEpisodeStore(64),
        HashingEmbedder(64),
        model=model,
        token_counter=WordTokenCounter(),
        config=config,
    )


TOPICS = ["rain", "sunshine", "green tea", "black tea", "clouds", "wind", "snow", "fog"]


def filler(n: int, start: int = 0) -> list[Turn]:
    return [
        Turn(
            role="user" if i % 2 == 0 else "assistant",
            content=f"Small talk about the weather and tea, mostly {TOPICS[i % 8]} and {TOPICS[(i // 8) % 8]}.",
            occurred_at=T0 + timedelta(minutes=i),
        )
        for i in range(start, start + n)
    ]


def test_a_fact_far_outside_the_recent_window_is_recalled_into_the_plan() -> None:
    memory = make_memory()
    memory.add(
        [Turn(role="user", content="My locker combination is 4417 at the Riverside gym.", occurred_at=T0)],
        scope=SCOPE,
    )
    memory.add(filler(60, start=1), scope=SCOPE)
    plan = memory.context("What is my locker combination at the gym?", scope=SCOPE)
    assert "4417" in plan.messages[-1].content
    assert plan.prompt_tokens <= 600 - 100
    assert plan.section("recent").items <= 6


def test_chat_stores_both_turns_and_nothing_when_the_model_fails() -> None:
    def fail(_: Sequence[ChatMessage]) -> str:
        raise ModelError("boom")

    memory = make_memory(ScriptedChatModel(fail, context_window=600, token_counter=WordTokenCounter()))
    with pytest.raises(ModelError):
        memory.chat("hello there", scope=SCOPE)
    assert memory.store.scan(SCOPE) == []
    ok = make_memory(ScriptedChatModel(["Hi Alice."], context_window=600, token_counter=WordTokenCounter()))
    reply = ok.chat("hello there", scope=SCOPE)
    assert reply.text == "Hi Alice."
    assert [(e.role, e.text) for e in ok.store.scan(SCOPE)] == [
        ("user", "hello there"),
        ("assistant", "Hi Alice."),
    ]


@pytest.mark.parametrize("answer", ["nul \x00 byte", "lone \ud800 surrogate"])
def test_an_answer_that_cannot_be_stored_is_a_model_error_and_stores_nothing(answer: str) -> None:
    memory = make_memory(ScriptedChatModel([answer], context_window=600, token_counter=WordTokenCounter()))
    with pytest.raises(ModelError, match="cannot be stored"):
        memory.chat("hello there", scope=SCOPE)
    assert memory.store.scan(SCOPE) == []


def test_bad_turn_in_a_batch_stores_nothing() -> None:
    memory = make_memory()
    with pytest.raises(InvalidEpisode) as info:
        memory.add([{"role": "user", "content": "fine"}, {"role": "wizard", "content": "x"}], scope=SCOPE)
    assert info.value.index == 1 and "role" in str(info.value)
    with pytest.raises(InvalidEpisode):
        memory.add([{"role": "user", "content": "fine"}, {"role": "user", "content": "a\x00b"}], scope=SCOPE)
    assert memory.store.scan(SCOPE) == []


def test_compression_folds_oldest_turns_and_keeps_them_recallable() -> None:
    model = ScriptedChatModel(
        lambda m: "They chatted about rain, sunshine, tea, clouds, wind, snow and fog.",
        context_window=600,
        token_counter=WordTokenCounter(),
    )
    memory = make_memory(model)
    memory.add(filler(40), scope=SCOPE)
    report = memory.compress(scope=SCOPE)
    assert report.folds and report.folds[0].metadata["method"] == "model"
    turns = memory.store.scan(SCOPE, kinds=(EpisodeKind.TURN,))
    assert len(turns) == 40  # nothing deleted
    folded = {i for s in report.folds for i in s.covers if s.level == 1}
    assert folded and all(t.superseded_by is not None for t in turns if t.id in folded)
    current_turns = [e for e in memory.store.scan(SCOPE, only_current=True) if e.kind is EpisodeKind.TURN]
    assert len(current_turns) >= 4
    assert [t.id for t in turns[-4:]] == [t.id for t in current_turns[-4:]]
    oldest = turns[0]
    assert oldest.id in folded
    hits = memory.recall(oldest.text, scope=SCOPE)
    assert hits[0].episode.id == oldest.id


def test_echoing_model_falls_back_to_an_extractive_summary_with_the_reason() -> None:
    def echo(messages: Sequence[ChatMessage]) -> str:
        return messages[-1].content

    memory = make_memory(ScriptedChatModel(echo, context_window=600, token_counter=WordTokenCounter()))
    memory.add(
        [
            Turn(
                role="user",
                content=f"Bob paid 12{i} dollars to Carol in Lisbon.",
                occurred_at=T0 + timedelta(minutes=i),
            )
            for i in range(30)
        ],
        scope=SCOPE,
    )
    report = memory.compress(scope=SCOPE)
    assert report.folds and report.fallbacks
    summary = report.folds[0]
    assert summary.metadata["method"] == "extractive"
    assert "echo" in str(summary.metadata["fallback_reason"]) or "shorter" in str(
        summary.metadata["fallback_reason"]
    )
    assert "Lisbon" in summary.text


def test_summaries_fold_into_higher_levels_when_the_stack_grows() -> None:
    model = ScriptedChatModel(
        lambda m: "Weather and tea chat, " + "detail " * 25,
        context_window=600,
        token_counter=WordTokenCounter(),
    )
    memory = make_memory(model, stack_fraction=0.1, fan_in=2)
    memory.add(filler(120), scope=SCOPE)
    memory.compress(scope=SCOPE)
    levels = {e.level for e in memory.summaries(scope=SCOPE)}
    assert max(levels) >= 2
    stack = memory.summaries(scope=SCOPE)
    assert sum(WordTokenCounter().count(e.text) for e in stack) <= 0.1 * 600 + 60


class RecordingEmbedder(HashingEmbedder):
    """Records every text embedded."""

    def __init__(self, dimensions: int) -> None:
        super().__init__(dimensions)
        self.texts: list[str] = []

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.texts.extend(texts)
        return super().embed(texts)


def two_memories_on_one_store() -> tuple[Memory, Memory, RecordingEmbedder]:
    """Two Memory objects sharing a store: two processes of one deployment."""
    store = InMemoryEpisodeStore(64)
    embedder = RecordingEmbedder(64)
    config = MemoryConfig(context_window=600, planner=PlannerConfig(reserve_tokens=100))
    first = Memory(store, embedder, token_counter=WordTokenCounter(), config=config)
    second = Memory(store, HashingEmbedder(64), token_counter=WordTokenCounter(), config=config)
    return first, second, embedder


def test_the_query_is_embedded_once_with_the_turn_this_process_stored_last() -> None:
    memory, _, embedder = two_memories_on_one_store()
    memory.add(
        [Turn(role="user", content="Book the ferry."), Turn(role="assistant", content="Which day works?")],
        scope=SCOPE,
    )
    embedder.texts.clear()
    memory.context("Saturday morning", scope=SCOPE)
    assert embedder.texts == ["Which day works?\nSaturday morning"]
    assert memory.recaller.missed_guesses == 0


def test_a_turn_another_process_wrote_is_read_and_the_query_embedded_again_with_it() -> None:
    memory, other, embedder = two_memories_on_one_store()
    memory.add([Turn(role="user", content="Book the ferry.")], scope=SCOPE)
    other.add([Turn(role="assistant", content="Friday or Saturday?")], scope=SCOPE)
    embedder.texts.clear()
    searched: list[tuple[float, ...]] = []
    rank = memory.store.rank

    def spying_rank(query: SearchQuery) -> list[Ranked]:
        if query.vector is not None:
            searched.append(query.vector)
        return rank(query)

    memory.store.rank = spying_rank  # type: ignore[method-assign]  # a spy on this one store
    plan = memory.context("Saturday morning", scope=SCOPE)
    wanted = "Friday or Saturday?\nSaturday morning"
    assert embedder.texts == ["Book the ferry.\nSaturday morning", wanted]
    assert searched == [tuple(HashingEmbedder(64).embed([wanted])[0])]
    assert memory.recaller.missed_guesses == 1
    assert [m.content for m in plan.messages if m.role == "assistant"] == ["Friday or Saturday?"]
    embedder.texts.clear()
    memory.context("Saturday morning", scope=SCOPE)  # the read taught it how the session ends now
    assert embedder.texts == [wanted]


def test_a_session_this_process_never_saw_is_guessed_empty() -> None:
    memory, _, embedder = two_memories_on_one_store()
    memory.context("What did we plan?", scope=SCOPE.model_copy(update={"session_id": "fresh"}))
    assert embedder.texts == ["What did we plan?"]
    assert memory.recaller.missed_guesses == 0
