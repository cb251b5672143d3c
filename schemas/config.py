"""Configuration of the core: budget shares, recall, compression. Frozen data, validated."""

from __future__ import annotations

from pydantic import ConfigDict, Field, model_validator

from ._model import FrozenModel

DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful assistant with long-term memory. Answer in one or two short sentences. Use "
    "the notes from earlier conversations when they hold the answer."
)


class _Config(FrozenModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BudgetShares(_Config):
    """How the memory budget is split between sections, without looking at the query.

    Shares are relative weights (normalized to sum to 1). The summaries get their share; the
    recent turns what is left once the recalled share is set aside (everything left when nothing
    is recalled); the recalled notes the rest. None of it depends on the question, so the prompt's
    start changes only when a fold lands (see :mod:`memstrata.planner`); compression folds before
    the unfolded turns outgrow the recent room, so the recent section never trims between folds.
    """

    summary: float = Field(default=0.25, ge=0)
    recalled: float = Field(default=0.15, ge=0)
    recent: float = Field(default=0.6, ge=0)

    @model_validator(mode="after")
    def _some_share(self) -> BudgetShares:
        if self.summary + self.recalled + self.recent <= 0:
            raise ValueError("at least one budget share must be positive")
        return self


class PlannerConfig(_Config):
    """The token-budget planner's settings.

    Attributes:
        reserve_tokens: tokens kept free for the model's answer.
        memory_budget: cap on the tokens of the memory sections (summary + recalled + recent);
            None means "whatever the window leaves".
        memory_window_share: a second cap, as a share of the window: a small model reads a
            short prompt best (and a short prompt is quick to evaluate on a CPU).
        shares: the split of the memory budget.
        recent_turns_max: most recent turns considered for the recent section.
        system_prompt: the system message's instruction (a call may give its own).
        relevance_floor: a recalled episode becomes a note only if its score is at least this
            share of the best hit's: the budget is a ceiling, not a target.
        recent_chunk: when older recent turns must leave the prompt, they leave this many at a
            time, so the prompt's prefix (and the model server's cache of it) stays put between.
    """

    reserve_tokens: int = Field(default=160, ge=1)
    memory_budget: int | None = Field(default=1200, ge=0)
    memory_window_share: float = Field(default=0.3, gt=0, le=1)
    shares: BudgetShares = BudgetShares()
    recent_turns_max: int = Field(default=40, ge=0)
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    relevance_floor: float = Field(default=0.3, ge=0, le=1)
    recent_chunk: int = Field(default=8, ge=1, le=64)


class RecallConfig(_Config):
    """How recall searches the store.

    Attributes:
        k: hits handed to the planner (it keeps what fits).
        candidates: candidates taken from each retriever before fusion.
        recency_half_life_days: None turns recency weighting off.
        context_turns: recent turns whose text is added to the query embedding.
        embed_previous_turn: embed each turn together with the turn before it.
        speaker_boost: factor on the fused score of a turn whose speaker the query names by name
            (see :mod:`memstrata.cues`); 1 turns it off.
        date_boost: factor on the fused score of a turn from a day the query writes as a date
            ("3 June 2023"); 1 turns it off.
        span_boost: factor on the fused score of a turn from a span of days the query names by
            another time phrase ("in May 2023", "the week before 3 August 2023", "last week"; see
            :mod:`memstrata.time_phrases`); 1 turns it off.
        part_weight: weight of the vector searches for the parts of the query alone (its quoted
            terms, names and content-word runs, see :mod:`memstrata.query_parts`), all parts
            together, against the whole query's two searches (1 each); 0 searches the whole
            query only.
        neighbour_anchors: how many of the best hits bring the turns around them in their session
            (see :mod:`memstrata.neighbours`); 0 turns neighbour expansion off.
        neighbours_after: turns after an anchor brought in (its replies).
        neighbours_before: turns before an anchor brought in (what it replies to).
        neighbour_weight: a neighbour's score as a share of its anchor's (per turn of distance).
    """

    k: int = Field(default=60, ge=1, le=1000)
    candidates: int = Field(default=80, ge=1, le=10_000)
    recency_half_life_days: float | None = Field(default=None, gt=0)
    context_turns: int = Field(default=1, ge=0, le=10)
    embed_previous_turn: bool = True
    speaker_boost: float = Field(default=2.0, ge=1, le=100)
    date_boost: float = Field(default=2.0, ge=1, le=100)
    span_boost: float = Field(default=1.0, ge=1, le=100)
    part_weight: float = Field(default=0.0, ge=0, le=10)
    neighbour_anchors: int = Field(default=0, ge=0, le=1000)
    neighbours_after: int = Field(default=1, ge=0, le=10)
    neighbours_before: int = Field(default=1, ge=0, le=10)
    neighbour_weight: float = Field(default=0.5, gt=0, le=1)


class CompressionConfig(_Config):
    """When and how history is folded into summaries.

    Attributes:
        enabled: fold automatically after ``Memory.chat`` / on ``Memory.compress``.
        threshold: fold when the unsummarized turns exceed this fraction of the window; kept at
            the planner's ``memory_window_share`` so that the turns not yet folded fit the prompt
            whole (its prefix then moves only when a fold happens).
        chunk_fraction: the size of one fold's input, as a fraction of the window.
        keep_recent_turns: newest turns never folded (they are the recent section's material).
        summary_max_tokens: the longest summary the model may write.
        stack_fraction: fold summaries into a higher level when the summary stack passes this
            fraction of the window.
        fan_in: summaries of one level folded together into one of the next level.
        background: after ``Memory.chat``, fold on a worker thread once the reply is returned
            (False folds before ``chat`` returns).
        warm: after each turn's background compression (fold or not), hand a chat model that
            keeps a prompt cache (llama.cpp) the start of the next prompt (system message with the
            summaries, recent turns up to the reply just given), so the next turn evaluates only
            its own message and notes; the work happens in the user's pause.
    """

    enabled: bool = True
    background: bool = True
    warm: bool = True
    threshold: float = Field(default=0.3, gt=0, le=10)
    chunk_fraction: float = Field(default=0.2, gt=0, le=0.8)
    keep_recent_turns: int = Field(default=4, ge=0)
    summary_max_tokens: int = Field(default=200, ge=16)
    stack_fraction: float = Field(default=0.1, gt=0, le=1)
    fan_in: int = Field(default=4, ge=2, le=32)


class MemoryConfig(_Config):
    """Everything the :class:`~memstrata.Memory` facade needs besides its components.

    Attributes:
        context_window: the model's window in tokens; None takes it from the model.
    """

    context_window: int | None = Field(default=None, ge=64)
    planner: PlannerConfig = PlannerConfig()
    recall: RecallConfig = RecallConfig()
    compression: CompressionConfig = CompressionConfig()
