"""The prompt is fitted to the model that reads it: a small model gets the stricter floor,
unless the caller chose one; a big or unknown model keeps the configured one."""

from __future__ import annotations

from typing import Any, cast

from memstrata import MemoryConfig, PlannerConfig
from memstrata.adapters.reader import SMALL_READER_FLOOR, fit_to_reader
from memstrata.ports import ChatModel
from memstrata.testing import ScriptedChatModel


class Sized(ScriptedChatModel):
    def __init__(self, parameters: int) -> None:
        super().__init__([], context_window=2048)
        self.parameters = parameters


def fitted_floor(config: MemoryConfig, model: Any) -> float:
    return fit_to_reader(config, cast(ChatModel, model)).planner.relevance_floor


def test_a_small_model_reads_fewer_notes_a_big_or_unknown_one_the_default() -> None:
    default = MemoryConfig().planner.relevance_floor
    assert fitted_floor(MemoryConfig(), Sized(134_515_008)) == SMALL_READER_FLOOR > default
    assert fitted_floor(MemoryConfig(), Sized(7_000_000_000)) == default
    assert fitted_floor(MemoryConfig(), ScriptedChatModel([])) == default  # reports no size
    assert fitted_floor(MemoryConfig(), None) == default


def test_a_floor_the_caller_chose_is_kept() -> None:
    chosen = MemoryConfig(planner=PlannerConfig(relevance_floor=0.3))
    assert fitted_floor(chosen, Sized(134_515_008)) == 0.3
