"""Summarization-based compression: fold the oldest turns into summaries, and summaries into
higher-level summaries, with the model itself.

What to fold is decided by pure functions (:func:`next_turn_fold`, :func:`next_summary_fold`);
:class:`Compressor` runs the model, guards its output and writes each fold with one
``store.fold`` call (one transaction). Raw turns are never deleted: a fold only marks them
superseded, so they stay recallable. When the model fails or its summary fails the guard, an
extractive summary is written instead and the reason is recorded in the summary's metadata.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from memstrata import port_calls
from memstrata.errors import FoldConflict, ModelError
from memstrata.port_calls import Plan, Ports, run
from memstrata.ports import ChatModel, Embedder, EpisodeStore, TokenCounter
from memstrata.rendering import TOOL_CALL_ID_KEY, format_date, render_transcript_line
from memstrata.schemas import ChatMessage, ChatResult, Episode, EpisodeKind, Scope
from memstrata.schemas.config import CompressionConfig
from memstrata.summary_guard import extractive_summary, reject_reason

logger = logging.getLogger(__name__)

SUMMARY_SYSTEM = (
    "Write 2-3 short sentences of facts: who did what, when, names and numbers. "
    "Use only what the text says. Do not copy its lines."
)
"""Short and direct: small models loop, echo the transcript or invent under longer instructions."""


@dataclass(frozen=True)
class Fold:
    """Episodes to fold into one summary of ``level``."""

    level: int
    episodes: tuple[Episode, ...]
    tokens: int


@dataclass
class CompressionReport:
    """What one ``compress`` call did.

    Attributes:
        folds: summaries written.
        fallbacks: reasons the model's summary was replaced by an extractive one.
        conflicts: folds lost to a concurrent writer (nothing written for them).
    """

    folds: list[Episode] = field(default_factory=list)
    fallbacks: list[str] = field(default_factory=list)
    conflicts: int = 0

    @property
    def turns_folded(self) -> int:
        return sum(len(e.covers) for e in self.folds if e.level == 1)


def next_turn_fold(
    turns: Sequence[Episode],
    counter: TokenCounter,
    *,
    window: int,
    config: CompressionConfig,
    force: bool = False,
    fold_above: int | None = None,
) -> Fold | None:
    """The oldest turns to fold, or None when nothing is due: the unsummarized history is under
    ``config.threshold`` of the window, and the newest session's unfolded turns (what the recent
    section shows) are under ``fold_above`` tokens.

    ``turns`` are the current (not yet folded) turns, oldest first. The newest
    ``keep_recent_turns`` are never folded; a chunk stops at a session boundary and never ends
    between a tool call and its result.
    """
    foldable = list(turns[: max(0, len(turns) - config.keep_recent_turns)])
    if not foldable:
        return None
    costs = [counter.count(render_transcript_line(e)) + 1 for e in turns]
    newest = turns[-1].scope.session_id
    shown = sum(c for e, c in zip(turns, costs, strict=True) if e.scope.session_id == newest)
    over_room = fold_above is not None and shown > fold_above
    if not force and not over_room and sum(costs) <= config.threshold * window:
        return None
    limit = max(1, int(config.chunk_fraction * window))
    input_cap = window - config.summary_max_tokens - 200
    chunk: list[Episode] = []
    tokens = 0
    for episode, cost in zip(foldable, costs, strict=False):
        if chunk and (
            episode.scope.session_id != chunk[0].scope.session_id or tokens + cost > min(limit, input_cap)
        ):
            break
        chunk.append(episode)
        tokens += cost
    while len(chunk) < len(foldable) and _is_tool_result(foldable[len(chunk)]):
        chunk.append(foldable[len(chunk)])
        tokens += costs[len(chunk) - 1]
    if len(chunk) < 2 and not force:
        return None
    return Fold(level=1, episodes=tuple(chunk), tokens=tokens)


def next_summary_fold(
    summaries: Sequence[Episode], counter: TokenCounter, *, window: int, config: CompressionConfig
) -> Fold | None:
    """The oldest ``fan_in`` summaries of the lowest crowded level, when the stack of current
    summaries passes ``stack_fraction`` of the window; else None."""
    costs = {e.id: counter.count(e.text) for e in summaries}
    if sum(costs.values()) <= config.stack_fraction * window:
        return None
    for level in sorted({e.level for e in summaries}):
        same = [e for e in summaries if e.level == level]
        if len(same) >= config.fan_in:
            group = tuple(same[: config.fan_in])
            return Fold(level=level + 1, episodes=group, tokens=sum(costs[e.id] for e in group))
    return None


def _is_tool_result(episode: Episode) -> bool:
    return episode.role == "tool" and isinstance(episode.metadata.get(TOOL_CALL_ID_KEY), str)


def summary_prompt(fold: Fold, *, max_words: int) -> tuple[list[ChatMessage], str]:
    """The model prompt for a fold, and the source text it summarizes (without the dates, which
    the prompt states once). The request comes after the text, where a small model reads it last."""
    first, last = fold.episodes[0].occurred_at, fold.episodes[-1].occurred_at
    period = (
        format_date(first) if first.date() == last.date() else f"{format_date(first)} to {format_date(last)}"
    )
    if fold.level == 1:
        source = "\n".join(f"{e.speaker or e.role}: {e.text}" for e in fold.episodes)
        ask = f"Conversation of {period}:\n{source}\n\nFacts from this conversation, in 2-3 short sentences"
    else:
        source = "\n".join(f"- {e.text}" for e in fold.episodes)
        ask = f"Notes of {period}:\n{source}\n\nThe main facts of these notes, in 2-3 short sentences"
    ask += f" (at most {max_words} words):"
    return [ChatMessage(role="system", content=SUMMARY_SYSTEM), ChatMessage(role="user", content=ask)], source


class Compressor:
    """Runs folds for one scope until nothing is due.

    Args:
        store: where episodes live.
        embedder: embeds each summary so recall can find it.
        model: writes the summaries; None means extractive summaries only.
        counter: the model's token counter.
        window: the model's context window.
        config: thresholds and sizes.
        fold_above: the tokens the newest session's unfolded turns may take beside these summaries
            before a fold is due (``Memory`` passes the planner's recent room, so the recent section
            shows every unfolded turn of the chat and its start moves only when a fold lands); older
            sessions fold by the threshold alone. None: the threshold alone.
    """

    def __init__(
        self,
        store: EpisodeStore,
        embedder: Embedder,
        model: ChatModel | None,
        counter: TokenCounter,
        *,
        window: int,
        config: CompressionConfig = CompressionConfig(),
        fold_above: Callable[[Sequence[Episode]], int] | None = None,
    ) -> None:
        self.fold_above = fold_above
        self.store = store
        self.embedder = embedder
        self.model = model
        self.counter = counter
        self.window = window
        self.config = config

    def compress(self, scope: Scope, *, force: bool = False, max_folds: int = 50) -> CompressionReport:
        """Fold what is due in ``scope``'s user and agent (and with ``force``, fold once even
        under the threshold). Returns what was done."""
        return run(self.compress_calls(scope, force=force, max_folds=max_folds), self.ports())

    def ports(self, store: object | None = None) -> Ports:
        """The ports :meth:`compress_calls` calls: this compressor's (or ``store`` instead of its store)."""
        return Ports(
            store=self.store if store is None else store, embedder=self.embedder, summarizer=self.model
        )

    def compress_calls(
        self, scope: Scope, *, force: bool = False, max_folds: int = 50
    ) -> Plan[CompressionReport]:
        """:meth:`compress` as a plan of port calls (:mod:`memstrata.port_calls`), run by
        ``Memory.compress`` and ``Memory.acompress`` alike."""
        report = CompressionReport()
        forced = force
        for _ in range(max_folds):
            current: list[Episode] = yield port_calls.store("scan", scope, only_current=True)
            turns = [e for e in current if e.kind is EpisodeKind.TURN]
            summaries = [e for e in current if e.kind is EpisodeKind.SUMMARY]
            fold = next_summary_fold(summaries, self.counter, window=self.window, config=self.config)
            if fold is None:
                fold = next_turn_fold(
                    turns,
                    self.counter,
                    window=self.window,
                    config=self.config,
                    force=forced,
                    fold_above=None if self.fold_above is None else self.fold_above(summaries),
                )
            if fold is None:
                break
            forced = False
            try:
                report.folds.append((yield from self._write(scope, fold, report)))
            except FoldConflict as exc:
                logger.info("fold skipped: %s", exc)
                report.conflicts += 1
                break
        return report

    def _write(self, scope: Scope, fold: Fold, report: CompressionReport) -> Plan[Episode]:
        max_words = max(16, int(self.config.summary_max_tokens * 0.7))
        messages, source = summary_prompt(fold, max_words=max_words)
        text, method, reason = None, "model", None
        if self.model is None:
            reason = "no model configured"
        else:
            try:
                result: ChatResult = yield port_calls.summarizer(
                    "complete", messages, max_tokens=self.config.summary_max_tokens, temperature=0.0
                )
                prompt_text = "\n".join(m.content for m in messages)
                reason = reject_reason(result.text, source=source, prompt=prompt_text, counter=self.counter)
                text = result.text.strip() if reason is None else None
            except ModelError as exc:
                reason = f"model failed: {exc}"
        if text is None:
            method = "extractive"
            report.fallbacks.append(reason or "unknown")
            text = self._extractive(fold)
        summary = summary_episode(scope, fold, text, method=method, reason=reason)
        [vector] = yield port_calls.embed([text])
        folded: Episode = yield port_calls.store("fold", summary, vector)
        return folded

    def _extractive(self, fold: Fold) -> str:
        lines = [line for e in fold.episodes for line in e.text.splitlines() if line.strip()]
        if fold.level == 1:
            lines = [f"{e.speaker or e.role}: {e.text}" for e in fold.episodes]
        text = extractive_summary(lines, max_tokens=self.config.summary_max_tokens, counter=self.counter)
        return text if text.strip() else lines[0][:400]


def summary_episode(scope: Scope, fold: Fold, text: str, *, method: str, reason: str | None) -> Episode:
    """The summary episode of ``fold``, written by ``method`` (with the fallback's ``reason``)."""
    first, last = fold.episodes[0], fold.episodes[-1]
    return Episode(
        scope=scope.model_copy(update={"session_id": last.scope.session_id}),
        kind=EpisodeKind.SUMMARY,
        level=fold.level,
        text=text,
        occurred_at=last.occurred_at,
        covers=tuple(e.id for e in fold.episodes),
        importance=0.7,
        metadata={
            "period_start": first.occurred_at.isoformat(),
            "period_end": last.occurred_at.isoformat(),
            "method": method,
            "fallback_reason": reason,
            "source_tokens": fold.tokens,
        },
    )
