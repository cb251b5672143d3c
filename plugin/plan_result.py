"""The last steps of a plan: the messages a draft renders to, and the :class:`BudgetPlan` made of
a fitted draft and its exact counts. See :mod:`memstrata.planner`."""

from __future__ import annotations

from collections.abc import Sequence

from memstrata.plan_draft import Draft
from memstrata.rendering import episode_message, query_message, render_memory_block, render_transcript_line
from memstrata.schemas import ChatMessage
from memstrata.schemas.plan import BudgetPlan, PlanSection, SectionName

__all__ = ["budget_plan", "render_draft"]

_SECTIONS: tuple[SectionName, ...] = ("system", "summary", "recalled", "recent", "query")


def render_draft(system: ChatMessage, query: str, draft: Draft) -> list[ChatMessage]:
    """The messages of ``draft``: the system prompt, the recent turns, then the query with the
    memory block (summaries and recalled episodes)."""
    block = render_memory_block(draft.summaries, [h.episode for h in draft.recalled])
    return [system, *(episode_message(e) for e in draft.recent()), query_message(query, block)]


def budget_plan(
    draft: Draft,
    messages: Sequence[ChatMessage],
    *,
    total: int,
    tokens: dict[str, int],
    window: int,
    reserve: int,
    memory_budget: int,
) -> BudgetPlan:
    """The plan of a fitted ``draft`` whose ``messages`` count ``total`` tokens, ``tokens`` per section."""
    recent = draft.recent()
    items = {
        "system": 1,
        "query": 1,
        "summary": len(draft.summaries),
        "recalled": len(draft.recalled),
        "recent": len(recent),
    }
    sections = tuple(
        PlanSection(name=n, allotted=draft.allotted.get(n, tokens[n]), tokens=tokens[n], items=items[n])
        for n in _SECTIONS
    )
    memory_text = "\n".join(
        part
        for part in (
            render_memory_block(draft.summaries, [h.episode for h in draft.recalled]),
            "\n".join(render_transcript_line(e) for e in recent),
        )
        if part
    )
    return BudgetPlan(
        messages=tuple(messages),
        window=window,
        reserve=reserve,
        prompt_tokens=total,
        memory_budget=memory_budget,
        sections=sections,
        left_out=tuple(draft.left_out),
        recalled=tuple(draft.recalled),
        recent_ids=tuple(e.id for e in recent),
        summary_ids=tuple(e.id for e in draft.summaries),
        memory_text=memory_text,
    )
