"""The token-budget planner: the one place a prompt is assembled, counted exactly and explained.

Pure: a :class:`TokenCounter` and data in, a :class:`BudgetPlan` out. Every caller gets its prompt
from here, through :meth:`memstrata.Memory.context`.

How a plan is made:

1. The fixed part (the system prompt, the caller's in-flight messages and the latest user turn)
   is counted on the rendered prompt; if it alone does not fit the window minus the answer's
   reserve, :class:`PromptTooLong` is raised.
2. The memory budget (what is left, capped by ``memory_budget``) is split without looking at the
   query, so the prompt's stable start (system message with summaries, then recent turns) is the
   same from one question to the next and llama.cpp's prefix cache holds: the summaries get their
   share; the recent turns what is left once the notes' share is set aside (all of it when nothing
   is recalled); the notes, which sit in the volatile last message, get the rest.
3. Each section is filled by its own priority: recent turns newest first, dropped from the
   oldest in chunks so the prompt's prefix stays put; notes by relevance, above a floor and with
   near-duplicates folded (:mod:`memstrata.notes`); summaries newest first, shown in stack order.
4. The prompt is laid out (:mod:`memstrata.rendering`) and counted with the model's own template
   (or the caller's ``measure``, e.g. with tool definitions). While it exceeds the window or the
   budget, the lowest-priority item is dropped. The final count is exact.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from memstrata.budget import (
    Draft,
    Rooms,
    fresh_notes,
    omit_unplaced,
    recent_window,
    take_notes,
    take_recent,
    take_summaries,
    tool_groups,
)
from memstrata.errors import ConfigError, InvalidInput, PromptTooLong
from memstrata.notes import Note
from memstrata.ports import TokenCounter
from memstrata.rendering import (
    MEMORY_CLOSE,
    MEMORY_OPEN,
    NOTES_PREAMBLE,
    SUMMARY_PREAMBLE,
    block,
    episode_message,
    query_message,
    render_episode,
    render_transcript_line,
    system_message,
)
from memstrata.schemas import ChatMessage, Episode, RecallHit
from memstrata.schemas.config import BudgetShares, PlannerConfig
from memstrata.schemas.plan import BudgetPlan, PlanSection, SectionName
from memstrata.token_counts import PromptCounts, TextCounts

__all__ = ["Frame", "TokenBudgetPlanner"]

Measure = Callable[[Sequence[ChatMessage]], int]
_SECTIONS: tuple[SectionName, ...] = ("system", "summary", "recalled", "recent", "query")


@dataclass(frozen=True)
class Frame:
    """The fixed part of one prompt: everything but memory.

    Attributes:
        system, query: the system prompt and the latest user turn's text.
        lead, tail: in-flight messages before and after it (user messages of the same request;
            tool calls and results of an answer in progress).
        reserve: tokens kept for the answer.
        measure: counts final messages as the model will see them; None is the planner's counter.
    """

    system: str
    query: str
    lead: tuple[ChatMessage, ...] = ()
    tail: tuple[ChatMessage, ...] = ()
    reserve: int = 0
    measure: Measure | None = None

    def render(
        self, summaries: Sequence[Episode], recent: Sequence[Episode], notes: Sequence[Note]
    ) -> list[ChatMessage]:
        """The messages of a prompt holding these memories (notes given best first)."""
        notes_text = block(NOTES_PREAMBLE, [n.line for n in reversed(notes)])
        return [
            system_message(self.system, summaries),
            *(episode_message(e) for e in recent),
            *self.lead,
            query_message(self.query, notes_text),
            *self.tail,
        ]


class TokenBudgetPlanner:
    """Plans prompts for one model window, counting with that model's tokenizer.

    Args:
        counter: the model's :class:`TokenCounter` (template included in ``count_prompt``).
        window: the model's context window in tokens.
        config: reserve, memory budget, shares, system prompt, relevance floor, recent chunk.
    """

    def __init__(
        self, counter: TokenCounter, *, window: int, config: PlannerConfig = PlannerConfig()
    ) -> None:
        if config.reserve_tokens >= window:
            raise ConfigError(
                f"the answer reserve ({config.reserve_tokens} tokens) leaves no room for a prompt in a "
                f"{window}-token window: lower PlannerConfig.reserve_tokens"
            )
        self.counter = counter
        self.window = window
        self.config = config
        self._counts = TextCounts(counter)
        self._prompts = PromptCounts(counter)
        self._overhead: dict[str, int] = {}

    @property
    def available(self) -> int:
        """Tokens a prompt may use with the configured reserve."""
        return self.window - self.config.reserve_tokens

    def frame(
        self,
        query: str,
        *,
        system: str | None = None,
        reserve: int | None = None,
        lead: Sequence[ChatMessage] = (),
        tail: Sequence[ChatMessage] = (),
        measure: Measure | None = None,
    ) -> Frame:
        """The fixed part of a prompt, with this planner's defaults for what is not given."""
        return Frame(
            system=self.config.system_prompt if system is None else system,
            query=query,
            lead=tuple(lead),
            tail=tuple(tail),
            reserve=self.config.reserve_tokens if reserve is None else reserve,
            measure=measure,
        )

    def plan(
        self,
        query: str | Frame,
        *,
        recent: Sequence[Episode] = (),
        summaries: Sequence[Episode] = (),
        recalled: Sequence[RecallHit] = (),
        memory_budget: int | None = None,
        shares: BudgetShares | None = None,
    ) -> BudgetPlan:
        """Plan the prompt for ``query`` (the latest user turn, or a whole :class:`Frame`).

        Args:
            query: the latest user turn's text, or the frame (system prompt, in-flight messages,
                reserve, measure) it is asked in.
            recent: the conversation's recent turns, oldest first, not including ``query``.
            summaries: the running summary stack, in the order to render (oldest period first).
            recalled: recalled episodes, best first.
            memory_budget: cap on memory tokens; defaults to the config's, then to all that fits.
            shares: overrides the config's section shares.

        Returns:
            The plan; ``plan.prompt_tokens <= window - reserve`` always (by ``measure`` if given).

        Raises:
            PromptTooLong: the fixed part alone does not fit.
        """
        frame = query if isinstance(query, Frame) else self.frame(query)
        available = self.window - frame.reserve
        if frame.reserve >= self.window:
            raise InvalidInput(
                f"an answer of up to {frame.reserve} tokens leaves no room for a prompt in the model's "
                f"{self.window}-token window: ask for a shorter answer (max_tokens)"
            )
        base = self._exact(frame, frame.render((), (), ()))
        if base > available:
            raise PromptTooLong(
                "the system prompt and the new messages alone do not fit the window minus the answer reserve",
                prompt_tokens=base,
                available_tokens=available,
            )
        cap = self.default_budget() if memory_budget is None else memory_budget
        budget = min(cap, available - base)
        draft = self._fill(frame, recent, summaries, recalled, budget, shares or self.config.shares)
        return self._fit(frame, base, budget, draft)

    def prepare(self, query: str, summaries: Sequence[Episode] = ()) -> None:
        """Count what a plan for ``query`` counts whatever is recalled (the fixed part, the summary
        section), so :meth:`plan` finds it counted: call it while recall runs. Optional."""
        frame = self.frame(query)
        self._prompts.count_prompt(frame.render((), (), ()))
        if summaries:
            self._prompts.count_prompt(frame.render(summaries, (), ()))

    def prime(self, episodes: Sequence[Episode]) -> None:
        """Count the memory lines of ``episodes`` ahead of the plans that will recall them."""
        self._counts.count_all([render_episode(e) + "\n" for e in episodes])

    def recent_room(self, summaries: Sequence[Episode]) -> int:
        """Tokens the recent turns get beside ``summaries`` when recall finds something (the usual
        turn), at the configured memory budget. Compression folds before the newest session's unfolded
        turns pass it, so the recent section shows all of them and never trims between folds."""
        rooms = Rooms(self.default_budget(), self.config.shares)
        return rooms.recent(self._take_summaries(Draft(), summaries, rooms), recalled=True)

    def _take_summaries(self, draft: Draft, summaries: Sequence[Episode], rooms: Rooms) -> int:
        """The summary section filled by its room (the same for a plan and for ``recent_room``);
        returns the tokens it takes, its block's head included."""
        self._counts.count_all([render_episode(e) + "\n" for e in summaries])
        head = self._block_cost(SUMMARY_PREAMBLE) if summaries else 0
        used = take_summaries(draft, summaries, max(0, rooms.summary - head), self._summary_cost)
        return used + (head if draft.summaries else 0)

    def default_budget(self) -> int:
        """The memory budget when a call sets none: the window share, capped by ``memory_budget``."""
        cap = int(self.config.memory_window_share * self.window)
        return cap if self.config.memory_budget is None else min(cap, self.config.memory_budget)

    # -- costs -------------------------------------------------------------------------------

    def _exact(self, frame: Frame, messages: Sequence[ChatMessage]) -> int:
        if frame.measure is not None:
            return frame.measure(messages)
        return self._prompts.count_prompt(messages)

    def _note_cost(self, note: Note) -> int:
        return self._counts.count(note.line + "\n")

    def _summary_cost(self, episode: Episode) -> int:
        return self._counts.count(render_episode(episode) + "\n")

    def _message_cost(self, message: ChatMessage) -> int:
        overhead = self._overhead.get(message.role)
        if overhead is None:
            system = ChatMessage(role="system", content="ok")
            probe = ChatMessage(role=message.role, content="ok")
            bare = self.counter.count_prompt([system, ChatMessage(role="user", content="ok")])
            with_probe = self.counter.count_prompt([system, probe, ChatMessage(role="user", content="ok")])
            overhead = max(0, with_probe - bare - self._counts.count("ok"))
            self._overhead[message.role] = overhead
        extra = sum(
            self._counts.count(c.name) + self._counts.count(c.arguments) + 4 for c in message.tool_calls
        )
        return overhead + self._counts.count(message.content) + extra

    def _block_cost(self, preamble: str) -> int:
        return self._counts.count("\n".join(["", "", MEMORY_OPEN, preamble, MEMORY_CLOSE]))

    # -- filling -----------------------------------------------------------------------------

    def _fill(
        self,
        frame: Frame,
        recent: Sequence[Episode],
        summaries: Sequence[Episode],
        recalled: Sequence[RecallHit],
        budget: int,
        shares: BudgetShares,
    ) -> Draft:
        """Fill the sections, the stable ones first and without looking at the query.

        The summary section gets its share of the budget, the recent turns what is left once the
        notes' share is set aside (all of it when nothing is recalled), the notes the rest. So the
        system message and the recent turns change only when a fold lands or a chunk of old turns
        leaves, and llama.cpp's cache of that prefix holds from one question to the next.
        """
        draft = Draft()
        chunk = self.config.recent_chunk
        groups, orphans = tool_groups(recent_window(recent, self.config.recent_turns_max, chunk))
        draft.omit("recent", "its tool call is outside the recent window", orphans)
        self._counts.count_all([e.text for g in groups for e in g])
        group_costs = [sum(self._message_cost(episode_message(e)) for e in g) for g in groups]
        rooms = Rooms(budget, shares)
        used = self._take_summaries(draft, summaries, rooms)
        recent_room = rooms.recent(used, recalled=bool(recalled))
        used += take_recent(draft, groups, group_costs, max(0, recent_room), chunk=chunk)
        shown = {str(e.id) for e in draft.recent()} | {e.text for e in draft.recent()}
        notes = fresh_notes(draft, recalled, floor=self.config.relevance_floor)
        self._counts.count_all([n.line + "\n" for n in notes])
        notes_head = self._block_cost(NOTES_PREAMBLE) if notes else 0
        notes_room = budget - used - notes_head if shares.recalled > 0 else 0
        take_notes(draft, notes, max(0, notes_room), self._note_cost, shown)
        draft.allotted = {
            "summary": rooms.summary,
            "recent": recent_room,
            "recalled": max(0, budget - used) if shares.recalled > 0 else 0,
        }
        omit_unplaced(draft, notes, summaries, self._note_cost)
        return draft

    # -- exact fitting -----------------------------------------------------------------------

    def _fit(self, frame: Frame, base: int, budget: int, draft: Draft) -> BudgetPlan:
        available = self.window - frame.reserve
        while True:
            messages = frame.render(draft.summaries, draft.recent(), draft.notes)
            total = self._exact(frame, messages)
            if total <= available and total - base <= budget:
                break
            if draft.drop_one() is None:  # nothing left to drop: the fixed part fits, so this cannot loop
                messages = frame.render((), (), ())
                total = self._exact(frame, messages)
                break
        tokens = self._sections(frame, base=base, total=total, draft=draft)
        return self._budget_plan(frame, draft, messages, total=total, tokens=tokens, budget=budget)

    def _sections(self, frame: Frame, *, base: int, total: int, draft: Draft) -> dict[str, int]:
        """Each section's share of the exact ``total``, by the tokens it adds to the prompt: the
        summary and recent sections are counted on prompts of their own (short), the notes are
        what remains, so the sections always add up to exactly what is sent."""
        summary = self._exact(frame, frame.render(draft.summaries, (), ())) - base if draft.summaries else 0
        recent = self._exact(frame, frame.render((), draft.recent(), ())) - base if draft.recent_groups else 0
        recalled = total - base - summary - recent
        if not draft.notes:  # nothing recalled: what the others share is theirs
            if draft.summaries:
                summary += recalled
            else:
                recent += recalled
            recalled = 0
        system = self._prompts.count_prompt([ChatMessage(role="system", content=frame.system)])
        system = min(system, base)
        return {
            "system": system,
            "query": base - system,
            "summary": summary,
            "recalled": recalled,
            "recent": recent,
        }

    def _budget_plan(
        self,
        frame: Frame,
        draft: Draft,
        messages: Sequence[ChatMessage],
        *,
        total: int,
        tokens: dict[str, int],
        budget: int,
    ) -> BudgetPlan:
        recent = draft.recent()
        items = {
            "system": 1,
            "query": 1 + len(frame.lead) + len(frame.tail),
            "summary": len(draft.summaries),
            "recalled": len(draft.notes),
            "recent": len(recent),
        }
        sections = tuple(
            PlanSection(name=n, allotted=draft.allotted.get(n, tokens[n]), tokens=tokens[n], items=items[n])
            for n in _SECTIONS
        )
        memory_text = "\n".join(
            part
            for part in (
                block(SUMMARY_PREAMBLE, [render_episode(e) for e in draft.summaries]),
                block(NOTES_PREAMBLE, [n.line for n in reversed(draft.notes)]),
                "\n".join(render_transcript_line(e) for e in recent),
            )
            if part
        )
        return BudgetPlan(
            messages=tuple(messages),
            window=self.window,
            reserve=frame.reserve,
            prompt_tokens=total,
            memory_budget=budget,
            sections=sections,
            left_out=tuple(draft.left_out),
            recalled=tuple(n.hit for n in draft.notes),
            recent_ids=tuple(e.id for e in recent),
            summary_ids=tuple(e.id for e in draft.summaries),
            memory_text=memory_text,
        )
