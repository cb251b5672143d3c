"""The token-budget planner: which summaries, recalled episodes and recent turns fit, exactly.

Pure: it takes a :class:`TokenCounter` and data, and returns a :class:`BudgetPlan`.

How a plan is made:

1. The fixed part (system prompt + the latest user turn) is counted on the rendered prompt; if it
   alone does not fit the window minus the answer's reserve, :class:`PromptTooLong` is raised.
2. The memory budget (what is left, capped by ``memory_budget``) is split between the summary,
   recalled and recent sections by their shares; a section that needs less than its share hands
   the rest to the others (water-filling), so few relevant memories leave room for more recent
   turns and vice versa.
3. Each section is filled by priority with per-item estimates: recent turns newest first, as a
   contiguous run, a tool call and its results as one unit; recalled episodes by rank, skipping
   those already present verbatim in the recent turns or the summaries; summaries in stack order.
4. The plan is rendered and counted with the model's own template. While it exceeds the window
   or the memory budget, the lowest-priority item is dropped (the last recalled episode, then the
   oldest recent unit, then the last summary). The final count is exact, so the plan never
   exceeds ``window - reserve``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from memstrata.errors import PromptTooLong
from memstrata.plan_counts import (
    PromptCounts,
    TextCounts,
    group_line,
    memory_line,
    section_tokens,
    summaries_prompt,
)
from memstrata.plan_draft import Draft, tool_groups, waterfill
from memstrata.plan_result import budget_plan, render_draft
from memstrata.ports import TokenCounter
from memstrata.rendering import (
    MEMORY_CLOSE,
    MEMORY_OPEN,
    MEMORY_PREAMBLE,
    episode_message,
    group_header,
    query_message,
)
from memstrata.schemas import ChatMessage, Episode, RecallHit
from memstrata.schemas.config import BudgetShares, PlannerConfig
from memstrata.schemas.plan import BudgetPlan, Omission

_MEMORY = ("summary", "recalled", "recent")


class TokenBudgetPlanner:
    """Plans prompts for one model window, counting with that model's tokenizer.

    Args:
        counter: the model's :class:`TokenCounter` (template included in ``count_prompt``).
        window: the model's context window in tokens.
        config: reserve, memory budget, shares, system prompt.
    """

    def __init__(
        self, counter: TokenCounter, *, window: int, config: PlannerConfig = PlannerConfig()
    ) -> None:
        if config.reserve_tokens >= window:
            raise PromptTooLong(
                "the answer reserve leaves no room for a prompt",
                prompt_tokens=config.reserve_tokens,
                available_tokens=window,
            )
        self.counter = counter
        self.window = window
        self.config = config
        self._counts = TextCounts(counter)
        self._prompts = PromptCounts(counter)
        self._overhead: dict[str, int] = {}
        self._system_cache: dict[str, int] = {}

    @property
    def available(self) -> int:
        """Tokens a prompt may use: the window minus the answer's reserve."""
        return self.window - self.config.reserve_tokens

    def plan(
        self,
        query: str,
        *,
        recent: Sequence[Episode] = (),
        summaries: Sequence[Episode] = (),
        recalled: Sequence[RecallHit] = (),
        memory_budget: int | None = None,
        shares: BudgetShares | None = None,
    ) -> BudgetPlan:
        """Plan the prompt for ``query`` (the latest user turn).

        Args:
            query: the latest user turn's text; always in the plan.
            recent: the conversation's latest turns, oldest first, not including ``query``.
            summaries: the running summary stack, in the order to render (oldest period first).
            recalled: recalled episodes, best first.
            memory_budget: cap on memory tokens; defaults to the config's, then to all that fits.
            shares: overrides the config's section shares.

        Returns:
            The plan; ``plan.prompt_tokens <= window - reserve`` always.

        Raises:
            PromptTooLong: the system prompt and the query alone do not fit.
        """
        system = ChatMessage(role="system", content=self.config.system_prompt)
        base = self._prompts.count_prompt([system, query_message(query, "")])
        if base > self.available:
            raise PromptTooLong(
                "the system prompt and the latest user turn alone do not fit the window minus the answer reserve",
                prompt_tokens=base,
                available_tokens=self.available,
            )
        cap = memory_budget if memory_budget is not None else self.config.memory_budget
        budget = self.available - base if cap is None else min(cap, self.available - base)
        share = shares or self.config.shares
        draft = self._fill(system, recent, summaries, recalled, budget, share)
        return self._fit(system, query, base, budget, draft)

    def prepare(self, query: str, summaries: Sequence[Episode] = ()) -> None:
        """Count what a plan for ``query`` will count whatever is recalled (the fixed part, and the
        summary section when every summary fits), so that :meth:`plan` finds it counted: call it
        while recall runs. Optional; the plan is the same either way."""
        system = ChatMessage(role="system", content=self.config.system_prompt)
        self._prompts.count_prompt([system, query_message(query, "")])
        if summaries:
            self._prompts.count_prompt(summaries_prompt(system, query, summaries))

    # -- estimates ---------------------------------------------------------------------------

    def prime(self, episodes: Sequence[Episode]) -> None:
        """Count the memory lines of ``episodes`` ahead of the plans that will recall them (one
        tokenizer call; with a llama.cpp counter the plan's exact count then finds them cached too)."""
        self._counts.count_all([t for e in episodes for t in (memory_line(e), group_line(e))])

    def _line_cost(self, episode: Episode, draft: Draft) -> int:
        cost = draft.line_costs.get(episode.id)
        if cost is None:
            cost = draft.line_costs[episode.id] = self._counts.count(memory_line(episode))
        return cost

    def _recalled_cost(self, episode: Episode, draft: Draft) -> int:
        """A recalled line, plus its date-and-session header when its group is not shown yet."""
        header = group_header(episode)
        return self._line_cost(episode, draft) + (
            0 if header in draft.groups else self._counts.count(header + "\n")
        )

    def _message_cost(self, system: ChatMessage, message: ChatMessage) -> int:
        overhead = self._overhead.get(message.role)
        if overhead is None:
            probe = ChatMessage(role=message.role, content="ok")
            bare = self.counter.count_prompt([system, ChatMessage(role="user", content="ok")])
            with_probe = self.counter.count_prompt([system, probe, ChatMessage(role="user", content="ok")])
            overhead = max(0, with_probe - bare - self._counts.count("ok"))
            self._overhead[message.role] = overhead
        extra = sum(
            self._counts.count(c.name) + self._counts.count(c.arguments) + 4 for c in message.tool_calls
        )
        return overhead + self._counts.count(message.content) + extra

    def _header_cost(self) -> int:
        return self._counts.count(_HEADER) + 4

    # -- filling -----------------------------------------------------------------------------

    def _fill(
        self,
        system: ChatMessage,
        recent: Sequence[Episode],
        summaries: Sequence[Episode],
        recalled: Sequence[RecallHit],
        budget: int,
        shares: BudgetShares,
    ) -> Draft:
        draft = Draft()
        groups, orphans = tool_groups(
            list(recent)[-self.config.recent_turns_max :] if self.config.recent_turns_max else []
        )
        draft.left_out += [
            Omission(
                section="recent",
                reason="its tool call is outside the recent window",
                tokens=0,
                episode_id=e.id,
            )
            for e in orphans
        ]
        pool = [*summaries, *(h.episode for h in recalled)]
        lines = {e.id: memory_line(e) for e in pool}
        self._counts.count_all(
            [
                *lines.values(),
                *(group_header(e) + "\n" for e in pool),
                *(episode_message(e).content for g in groups for e in g),
            ]
        )
        for episode_id, line in lines.items():
            draft.line_costs[episode_id] = self._counts.count(line)
        group_costs = [sum(self._message_cost(system, episode_message(e)) for e in g) for g in groups]
        summary_ids = {e.id for e in summaries}
        candidates: list[RecallHit] = []
        seen: set[uuid.UUID] = set()
        for hit in recalled:
            if hit.episode.id in summary_ids:
                draft.left_out.append(
                    Omission(
                        section="recalled",
                        reason="already in the summary section",
                        tokens=0,
                        episode_id=hit.episode.id,
                    )
                )
            elif hit.episode.id not in seen:
                seen.add(hit.episode.id)
                candidates.append(hit)
        header = self._header_cost() if (summaries or candidates) else 0
        demand = {
            "summary": sum(self._line_cost(e, draft) for e in summaries) + (header if summaries else 0),
            "recalled": sum(self._line_cost(h.episode, draft) for h in candidates)
            + sum(self._counts.count(g + "\n") for g in {group_header(h.episode) for h in candidates})
            + (header if candidates else 0),
            "recent": sum(group_costs),
        }
        allot = waterfill(
            budget, demand, {"summary": shares.summary, "recalled": shares.recalled, "recent": shares.recent}
        )
        draft.allotted = dict(allot)

        used = {"summary": 0, "recalled": 0, "recent": 0}
        # Recent: newest first, contiguous.
        taken_groups = 0
        for group, cost in zip(reversed(groups), reversed(group_costs), strict=True):
            if used["recent"] + cost > allot["recent"]:
                break
            draft.recent_groups.append(group)
            used["recent"] += cost
            taken_groups += 1
        kept_recent = {e.id for g in draft.recent_groups for e in g}
        kept_texts = {e.text for g in draft.recent_groups for e in g}
        # Recalled: by rank, first fit, never repeating what the recent turns already show.
        header_paid = False
        for hit in candidates:
            e = hit.episode
            if e.id in kept_recent or e.text in kept_texts:
                draft.left_out.append(
                    Omission(
                        section="recalled", reason="already in the recent turns", tokens=0, episode_id=e.id
                    )
                )
                continue
            cost = self._recalled_cost(e, draft) + (0 if header_paid else header)
            if used["recalled"] + cost <= allot["recalled"]:
                draft.recalled.append(hit)
                draft.groups.add(group_header(e))
                used["recalled"] += cost
                header_paid = True
        # Summaries, in stack order.
        for e in summaries:
            cost = self._line_cost(e, draft) + (0 if header_paid else header)
            if used["summary"] + cost <= allot["summary"]:
                draft.summaries.append(e)
                used["summary"] += cost
                header_paid = True
        # Second pass: what a section left unused goes to the others (recalled, recent, summary).
        spare = budget - sum(used.values())
        chosen = {h.episode.id for h in draft.recalled}
        for hit in candidates:
            e = hit.episode
            if e.id in chosen or e.id in kept_recent or e.text in kept_texts:
                continue
            cost = self._recalled_cost(e, draft) + (0 if header_paid else header)
            if cost <= spare:
                draft.recalled.append(hit)
                draft.groups.add(group_header(e))
                chosen.add(e.id)
                spare -= cost
                header_paid = True
            else:
                draft.left_out.append(
                    Omission(
                        section="recalled",
                        reason="did not fit the memory budget",
                        tokens=cost,
                        episode_id=e.id,
                    )
                )
        remaining = list(zip(reversed(groups), reversed(group_costs), strict=True))[taken_groups:]
        for index, (group, cost) in enumerate(remaining):
            if cost > spare:
                for g, c in remaining[index:]:
                    draft.left_out += [
                        Omission(
                            section="recent",
                            reason="older than what fits the recent share",
                            tokens=c,
                            episode_id=e.id,
                        )
                        for e in g[:1]
                    ]
                break
            draft.recent_groups.append(group)
            spare -= cost
            shown = {e.id for e in group} | {e.text for e in group}
            for hit in [h for h in draft.recalled if h.episode.id in shown or h.episode.text in shown]:
                draft.recalled.remove(hit)
                spare += self._line_cost(hit.episode, draft)
                draft.left_out.append(
                    Omission(
                        section="recalled",
                        reason="already in the recent turns",
                        tokens=0,
                        episode_id=hit.episode.id,
                    )
                )
        in_summary = {e.id for e in draft.summaries}
        for e in summaries:
            if e.id in in_summary:
                continue
            cost = self._line_cost(e, draft) + (0 if header_paid else header)
            if cost <= spare:
                draft.summaries.append(e)
                spare -= cost
                header_paid = True
            else:
                draft.left_out.append(
                    Omission(
                        section="summary",
                        reason="did not fit the memory budget",
                        tokens=cost,
                        episode_id=e.id,
                    )
                )
        order = {e.id: i for i, e in enumerate(summaries)}
        draft.summaries.sort(key=lambda e: order[e.id])
        return draft

    # -- exact fitting -----------------------------------------------------------------------

    def _fit(self, system: ChatMessage, query: str, base: int, budget: int, draft: Draft) -> BudgetPlan:
        while True:
            messages = render_draft(system, query, draft)
            total = self.counter.count_prompt(messages)
            if total <= self.available and total - base <= budget:
                break
            if draft.drop_one() is None:  # nothing left to drop: the fixed part fits, so this cannot loop
                messages = render_draft(system, query, draft)
                total = self.counter.count_prompt(messages)
                break
        tokens = section_tokens(
            self._prompts,
            system,
            query,
            base=base,
            total=total,
            system_tokens=self._system_tokens(system),
            draft=draft,
        )
        return budget_plan(
            draft,
            messages,
            total=total,
            tokens=tokens,
            window=self.window,
            reserve=self.config.reserve_tokens,
            memory_budget=budget,
        )

    def _system_tokens(self, system: ChatMessage) -> int:
        key = system.content or ""
        cached = self._system_cache.get(key)
        if cached is None:
            cached = self._system_cache[key] = self.counter.count_prompt([system])
        return cached


_HEADER = "\n".join([MEMORY_OPEN, MEMORY_PREAMBLE, "Summaries:", "Recalled:", MEMORY_CLOSE])
