"""What a small model reads when it answers: this conversation's summaries only, verbatim turns
before paraphrases, the user's words labelled after the notes, and replies dated on the
question's clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from memstrata import CompressionConfig, Memory, MemoryConfig, PlannerConfig, Scope, Turn
from memstrata.notes import select_notes
from memstrata.rendering import QUERY_LABEL
from memstrata.schemas import Episode, EpisodeKind, RecallHit
from memstrata.schemas.config import BudgetShares
from memstrata.testing import HashingEmbedder, InMemoryEpisodeStore, ScriptedChatModel, WordTokenCounter

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
MONDAY = Scope(user_id="alice", session_id="monday")
FRIDAY = Scope(user_id="alice", session_id="friday")


def make_memory(replies: list[str]) -> Memory:
    config = MemoryConfig(
        context_window=600,
        planner=PlannerConfig(
            reserve_tokens=40, relevance_floor=0, shares=BudgetShares(summary=0.5, recalled=0.3, recent=0.2)
        ),
        compression=CompressionConfig(
            threshold=0.3, chunk_fraction=0.2, keep_recent_turns=2, summary_max_tokens=30
        ),
    )
    return Memory(
        InMemoryEpisodeStore(32),
        HashingEmbedder(32),
        model=ScriptedChatModel(replies, context_window=600),
        token_counter=WordTokenCounter(),
        config=config,
    )


def turns(texts: list[str], start: datetime) -> list[Turn]:
    return [
        Turn(role="user", content=t, occurred_at=start + timedelta(minutes=i)) for i, t in enumerate(texts)
    ]


def test_the_system_message_holds_this_conversations_summaries_not_another_ones() -> None:
    memory = make_memory([])
    memory.add(turns([f"monday chat about the garden, part {i}" for i in range(8)], T0), scope=MONDAY)
    while memory.compress(scope=MONDAY, force=True).folds:
        pass
    memory.add(
        turns([f"friday chat about the bike, part {i}" for i in range(8)], T0 + timedelta(days=4)),
        scope=FRIDAY,
    )
    while memory.compress(scope=FRIDAY, force=True).folds:
        pass
    monday_summaries = [s for s in memory.summaries(scope=MONDAY) if s.scope.session_id == "monday"]
    assert monday_summaries  # the user's stack holds both days

    plan = memory.context("how is the bike?", scope=FRIDAY)
    system = plan.messages[0].content
    assert "friday chat" in system and "monday chat" not in system
    # Monday reaches the prompt only through recall, like any other memory.
    assert all(h.episode.scope.session_id == "monday" for h in plan.recalled if "monday" in h.episode.text)


def test_a_summary_counts_for_less_than_the_turn_it_paraphrases() -> None:
    turn = Episode(scope=MONDAY, text="Priya's birthday is June 14", role="user", occurred_at=T0)
    summary = Episode(
        scope=MONDAY,
        kind=EpisodeKind.SUMMARY,
        level=1,
        text="The user talked about runs, books and a birthday.",
        occurred_at=T0,
    )
    chosen = select_notes(
        [RecallHit(episode=summary, score=0.032), RecallHit(episode=turn, score=0.030)], floor=0.55
    )
    assert [n.hit.episode.id for n in chosen.notes] == [turn.id]
    assert [h.episode.id for h in chosen.below_floor] == [summary.id]


def test_the_users_words_are_labelled_after_the_notes_and_bare_without_them() -> None:
    memory = make_memory([])
    memory.add(turns(["the cabin wifi password is maple-7731"], T0), scope=MONDAY)
    with_notes = memory.context("what is the cabin wifi password?", scope=FRIDAY).messages[-1].content
    assert with_notes.endswith(f"\n\n{QUERY_LABEL}what is the cabin wifi password?")
    assert with_notes.index("maple-7731") < with_notes.index(QUERY_LABEL)
    empty = make_memory([]).context("hello", scope=FRIDAY).messages[-1].content
    assert empty == "hello"


def test_a_question_asked_in_the_past_is_answered_in_the_past() -> None:
    memory = make_memory(["It is maple-7731."])
    asked = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)
    reply = memory.chat("what is the wifi password?", scope=FRIDAY, occurred_at=asked)
    user, assistant = reply.stored
    assert user.occurred_at == asked
    assert asked <= assistant.occurred_at < asked + timedelta(minutes=5)
