"""Compression folds before the turns not yet folded outgrow the planner's recent room, so a chat's
recent section shows every unfolded turn: its first message moves only when a fold lands, never
turn by turn (llama.cpp's prefix cache holds in between)."""

from __future__ import annotations

from itertools import pairwise

from memstrata import Memory
from memstrata.schemas import EpisodeKind, Scope
from memstrata.schemas.config import CompressionConfig, MemoryConfig, PlannerConfig
from memstrata.testing import HashingEmbedder, InMemoryEpisodeStore, WordTokenCounter

SCOPE = Scope(user_id="u-fold", session_id="chat")


def test_every_unfolded_turn_is_shown_and_the_start_moves_only_at_folds() -> None:
    config = MemoryConfig(
        context_window=4096,
        planner=PlannerConfig(memory_budget=300),
        compression=CompressionConfig(background=False, keep_recent_turns=2),
    )
    memory = Memory(
        InMemoryEpisodeStore(32), HashingEmbedder(32), token_counter=WordTokenCounter(), config=config
    )
    room = memory.planner.recent_room([])
    assert 0 < room < config.compression.threshold * 4096 / 4  # the room, not the threshold, decides
    starts, folds = [], 0
    for i in range(40):
        said = f"turn {i}: the garden needs water and the {i} tomatoes are ripening slowly"
        memory.add(
            [{"role": "user", "content": said}, {"role": "assistant", "content": f"noted {i}"}], scope=SCOPE
        )
        folds += len(memory.compress(scope=SCOPE).folds)
        plan = memory.context(f"what about tomato {i}?", scope=SCOPE)
        unfolded = [e.id for e in memory.store.scan(SCOPE, only_current=True) if e.kind is EpisodeKind.TURN]
        assert list(plan.recent_ids) == unfolded  # nothing left out between folds
        assert not [o for o in plan.left_out if o.section == "recent"]
        starts.append((folds, plan.recent_ids[0]))
    assert folds >= 3
    # The recent section's first turn changed only when a fold had landed.
    for (folds_before, first_before), (folds_after, first_after) in pairwise(starts):
        assert first_before == first_after or folds_after > folds_before
