"""The token-budget planner's output: what is sent, what each section costs, what was left out."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import ConfigDict

from ._model import FrozenModel
from .chat import ChatMessage
from .episodes import RecallHit

SectionName = Literal["system", "summary", "recalled", "recent", "query"]
MEMORY_SECTIONS: tuple[SectionName, ...] = ("summary", "recalled", "recent")


class _Frozen(FrozenModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PlanSection(_Frozen):
    """One section of a plan.

    Attributes:
        allotted: tokens the section was given after redistribution.
        tokens: tokens it uses in the rendered prompt (template overhead included).
        items: episodes or turns it holds.
    """

    name: SectionName
    allotted: int
    tokens: int
    items: int


class Omission(_Frozen):
    """Something the planner considered and left out, and why."""

    section: SectionName
    reason: str
    tokens: int
    episode_id: uuid.UUID | None = None


class BudgetPlan(_Frozen):
    """The exact messages to send and the accounting behind them.

    ``prompt_tokens`` is the model's own count of ``messages`` rendered with its chat template
    (generation prompt included); it never exceeds ``window - reserve``.
    """

    messages: tuple[ChatMessage, ...]
    window: int
    reserve: int
    prompt_tokens: int
    memory_budget: int
    sections: tuple[PlanSection, ...]
    left_out: tuple[Omission, ...] = ()
    recalled: tuple[RecallHit, ...] = ()
    recent_ids: tuple[uuid.UUID, ...] = ()
    summary_ids: tuple[uuid.UUID, ...] = ()
    memory_text: str = ""

    def section(self, name: SectionName) -> PlanSection:
        """The section called ``name``."""
        return next(s for s in self.sections if s.name == name)

    @property
    def memory_tokens(self) -> int:
        """Tokens spent on memory: summary, recalled episodes and recent turns."""
        return sum(s.tokens for s in self.sections if s.name in MEMORY_SECTIONS)

    @property
    def available(self) -> int:
        """Tokens the prompt may use: the window minus the answer's reserve."""
        return self.window - self.reserve

    def explain(self) -> str:
        """The allocation, for humans: one line per section, then what was left out."""
        lines = [
            f"window {self.window} tokens = prompt {self.prompt_tokens} + reserved for answer "
            f"{self.reserve} + free {self.available - self.prompt_tokens}",
            f"memory budget {self.memory_budget} tokens, used {self.memory_tokens}",
            f"{'section':<10} {'allotted':>8} {'used':>6} {'items':>6}",
        ]
        for s in self.sections:
            allotted = "-" if s.name in ("system", "query") else str(s.allotted)
            lines.append(f"{s.name:<10} {allotted:>8} {s.tokens:>6} {s.items:>6}")
        if self.left_out:
            reasons: dict[tuple[str, str], list[int]] = {}
            for o in self.left_out:
                reasons.setdefault((o.section, o.reason), []).append(o.tokens)
            lines.append("left out:")
            for (section, reason), tokens in sorted(reasons.items()):
                lines.append(f"  {section}: {len(tokens)} item(s), {sum(tokens)} tokens: {reason}")
        return "\n".join(lines)
