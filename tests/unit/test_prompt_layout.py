"""The prompt's layout (stable parts first, notes nearest the question), the notes' floor and
near-duplicate folding, chunked recent turns, streaming, replies that end, and folds after the
reply: on the shipped test doubles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from memstrata import CompressionConfig, Memory, MemoryConfig, PlannerConfig, Reply, Scope, Turn
from memstrata.budget import Draft, take_recent
from memstrata.notes import select_notes
from memstrata.planner import TokenBudgetPlanner
from memstrata.replies import REPLY_FLAG_KEY, looping
from memstrata.schemas import Episode, EpisodeKind, RecallHit, Role
from memstrata.testing import HashingEmbedder, InMemoryEpisodeStore, ScriptedChatModel, WordTokenCounter

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
SCOPE = Scope(user_id="alice", session_id="s1")
COUNTER = WordTokenCounter()


def episode(text: str, minutes: int, role: Role = "user") -> Episode:
    return Episode(scope=SCOPE, text=text, role=role, occurred_at=T0 + timedelta(minutes=minutes))


def hit(e: Episode, score: float) -> RecallHit:
    return RecallHit(episode=e, score=score, vector_rank=1)


def test_the_most_relevant_note_sits_nearest_the_question() -> None:
    best = episode("the cabin wifi password is maple-7731", 1)
    other = episode("I went for a run along the river", 2)
    plan = TokenBudgetPlanner(COUNTER, window=1000, config=PlannerConfig(reserve_tokens=10)).plan(
        "what is the wifi password?", recalled=[hit(best, 0.03), hit(other, 0.02)]
    )
    last = plan.messages[-1].content
    assert last.index("river") < last.index("maple-7731") < last.index("what is the wifi password?")
    assert "[1 March 2024]" in last


def test_weak_candidates_stay_out_and_the_plan_says_so() -> None:
    strong, weak = episode("the tent is with Marcus", 1), episode("nice weather", 2)
    plan = TokenBudgetPlanner(
        COUNTER, window=1000, config=PlannerConfig(reserve_tokens=10, relevance_floor=0.5)
    ).plan("who has my tent?", recalled=[hit(strong, 0.03), hit(weak, 0.01)])
    assert [h.episode.id for h in plan.recalled] == [strong.id]
    assert any(o.episode_id == weak.id and "relevance floor" in o.reason for o in plan.left_out)


def test_a_line_said_many_times_is_shown_once_with_its_count() -> None:
    same = [episode("Remind me to buy oat milk on the way home.", i) for i in range(5)]
    chosen = select_notes([hit(e, 0.03 - i * 0.001) for i, e in enumerate(same)], floor=0)
    assert len(chosen.notes) == 1 and chosen.notes[0].times == 5
    assert "said 5 times, last 1 March 2024" in chosen.notes[0].line
    assert len(chosen.repeats) == 4


def test_summaries_follow_the_system_prompt_and_recent_turns_come_before_the_question() -> None:
    summary = Episode(
        scope=SCOPE, kind=EpisodeKind.SUMMARY, level=1, text="Alice planned a trip.", occurred_at=T0
    )
    recent = [episode("hello", 10), episode("hi there", 11, role="assistant")]
    plan = TokenBudgetPlanner(COUNTER, window=1000, config=PlannerConfig(reserve_tokens=10)).plan(
        "and then?", recent=recent, summaries=[summary]
    )
    assert [m.role for m in plan.messages] == ["system", "user", "assistant", "user"]
    assert "Alice planned a trip." in plan.messages[0].content
    assert plan.messages[-1].content == "and then?"


def test_older_recent_turns_leave_in_chunks_so_the_prefix_stays_put() -> None:
    groups = [[episode(f"turn {i}", i)] for i in range(20)]
    firsts = []
    for n in range(12, 21):  # the conversation grows one turn at a time
        draft = Draft()
        take_recent(draft, groups[:n], [3] * n, room=30, chunk=4)  # room for 10 turns
        firsts.append(draft.recent_groups[0][0].text)
    # The first recent turn moves in steps of the chunk, not with every turn.
    assert len(set(firsts)) <= 3 and firsts[0] == firsts[1]


def make_memory(replies: list[str], *, background: bool = False, **planner: Any) -> Memory:
    config = MemoryConfig(
        context_window=400,
        planner=PlannerConfig(reserve_tokens=40, **planner),
        compression=CompressionConfig(
            threshold=0.3,
            chunk_fraction=0.2,
            keep_recent_turns=2,
            summary_max_tokens=30,
            background=background,
        ),
    )
    model = ScriptedChatModel(replies, context_window=400)
    return Memory(
        InMemoryEpisodeStore(32), HashingEmbedder(32), model=model, token_counter=COUNTER, config=config
    )


def test_stream_yields_pieces_then_the_reply_and_stores_once_complete() -> None:
    memory = make_memory(["The password is maple-7731."])
    pieces = list(memory.stream("what is the password?", scope=SCOPE))
    *text, reply = pieces
    assert isinstance(reply, Reply) and "".join(str(t) for t in text) == "The password is maple-7731."
    assert [e.text for e in memory.recent(scope=SCOPE)] == [
        "what is the password?",
        "The password is maple-7731.",
    ]


def test_a_reply_cut_at_its_cap_is_marked_and_stored_flagged() -> None:
    memory = make_memory(["word " * 50])
    reply = memory.chat("tell me everything", scope=SCOPE, max_tokens=8)
    assert reply.truncated and reply.usage.completion_tokens <= 8
    assert reply.stored[1].metadata[REPLY_FLAG_KEY] == "truncated"


def test_a_looping_reply_is_recognised() -> None:
    assert looping("The user asked when and the response is: " * 6)
    assert not looping("Your cousin Lucia visits on 12 May, and the plumber Tomas comes on Friday.")


def test_folds_run_after_the_reply_in_the_background() -> None:
    memory = make_memory([f"answer number {i} about the weather today" for i in range(40)], background=True)
    for i in range(20):
        reply = memory.chat(
            f"message {i} about rain, tea and the garden", scope=SCOPE, occurred_at=T0 + timedelta(minutes=i)
        )
        assert reply.compression is None
    memory.wait_for_compression()
    memory.close()
    summaries = memory.summaries(scope=SCOPE)
    assert summaries, "no fold ran"
    turns = memory.store.scan(SCOPE, kinds=(EpisodeKind.TURN,))
    assert len(turns) == 40  # raw turns are kept
    folded = {i for s in summaries for i in s.covers}
    assert all(t.superseded_by is not None for t in turns if t.id in folded)


def test_the_recent_section_holds_the_turns_not_yet_folded() -> None:
    memory = make_memory([])
    memory.add(
        [Turn(role="user", content=f"turn {i}", occurred_at=T0 + timedelta(minutes=i)) for i in range(8)],
        scope=SCOPE,
    )
    memory.compress(scope=SCOPE, force=True)
    recent = memory.recent(scope=SCOPE)
    folded = {i for s in memory.summaries(scope=SCOPE) for i in s.covers}
    assert recent and not folded & {e.id for e in recent}


def test_a_flagged_reply_counts_for_less_among_the_notes() -> None:
    rambling = Episode(
        scope=SCOPE,
        text="the password the password",
        role="assistant",
        occurred_at=T0,
        metadata={REPLY_FLAG_KEY: "looping"},
    )
    clean = episode("the password is maple-7731", 2)
    chosen = select_notes([hit(rambling, 0.03), hit(clean, 0.025)], floor=0)
    assert [n.hit.episode.id for n in chosen.notes] == [clean.id, rambling.id]
