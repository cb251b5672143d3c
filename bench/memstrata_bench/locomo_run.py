"""The LoCoMo replay and evaluation loop.

For each conversation every system under test (memstrata and the baselines, each a
:class:`~memstrata_bench.baselines.ContextProvider`) is fed the sessions in order, one
exchange at a time, and asked to compress after each one; then, for every selected question and
every budget, each system is asked for its memory context, which is scored (evidence recall,
answer in context, tokens, latency). With an answerer, the primary budget's contexts of memstrata
and of the plain truncation (``recency``) are also answered and scored (F1, BLEU-1).

The loop is pure apart from the clock: the caller builds the systems
(:data:`ProviderFactory`), so unit tests run it with test doubles.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from memstrata.errors import ConfigError
from memstrata.ports import TokenCounter

from .baselines import ContextProvider, ContextResult
from .locomo_data import Conversation, Question, render_turn
from .metrics import answer_in_context, bleu1, evidence_found, token_f1

__all__ = [
    "ANSWERING_SYSTEMS",
    "Answerer",
    "Observation",
    "ProviderFactory",
    "Replay",
    "RunOptions",
    "RunResult",
    "run_locomo",
    "select_questions",
]

ProviderFactory = Callable[[Conversation], Sequence[ContextProvider]]
Answerer = Callable[[str, str], str]
ANSWERING_SYSTEMS = ("memstrata", "recency")
"""Systems whose contexts are answered with ``--answer``: memstrata and the plain truncation."""


@dataclass(frozen=True, slots=True)
class RunOptions:
    """What to run.

    Attributes:
        budgets: memory budgets in tokens; the first is the primary one (answers, headline).
        categories: question categories to evaluate (LoCoMo's 1-4 by default; 5 is adversarial).
        limit_conversations: evaluate only the first N conversations.
        limit_questions: evaluate at most N questions per conversation (file order).
        exchange: turns given to a system per ``ingest`` call (two: one exchange).
    """

    budgets: tuple[int, ...] = (1500,)
    categories: frozenset[int] = frozenset({1, 2, 3, 4})
    limit_conversations: int | None = None
    limit_questions: int | None = None
    exchange: int = 2

    def __post_init__(self) -> None:
        if not self.budgets or any(b < 1 for b in self.budgets):
            raise ConfigError(f"budgets must be positive token counts, got {list(self.budgets)}")
        if not self.categories or not self.categories <= {1, 2, 3, 4, 5}:
            raise ConfigError(f"categories must be among 1-5, got {sorted(self.categories)}")
        for name in ("limit_conversations", "limit_questions"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be at least 1, got {value}")
        if self.exchange < 1:
            raise ConfigError(f"exchange must be at least 1, got {self.exchange}")

    @property
    def primary_budget(self) -> int:
        return self.budgets[0]


@dataclass(frozen=True, slots=True)
class Observation:
    """One system's context for one question at one budget, scored."""

    sample_id: str
    system: str
    budget: int
    category: int
    evidence: int
    found: int
    answer_in_context: bool | None
    memory_tokens: int
    conversation_tokens: int
    context_ms: float
    f1: float | None = None
    bleu1: float | None = None
    sections: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class Replay:
    """How long one system took to take in one conversation."""

    sample_id: str
    system: str
    turns: int
    sessions: int
    ingest_s: float
    compress_s: float


@dataclass(slots=True)
class RunResult:
    """Everything measured, unaggregated."""

    observations: list[Observation] = field(default_factory=list)
    replays: list[Replay] = field(default_factory=list)
    conversation_tokens: dict[str, int] = field(default_factory=dict)
    questions: dict[str, int] = field(default_factory=dict)
    systems: list[str] = field(default_factory=list)


def select_questions(conversation: Conversation, options: RunOptions) -> list[Question]:
    """The questions of the selected categories, at most ``limit_questions``, in file order."""
    chosen = [q for q in conversation.questions if q.category in options.categories]
    return chosen if options.limit_questions is None else chosen[: options.limit_questions]


class _Progress:
    """A rich progress bar on stderr, or nothing."""

    def __init__(self, enabled: bool, total: int) -> None:
        self._bar = None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("{task.description:<32}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._task = self._bar.add_task("locomo", total=total)

    @contextmanager
    def running(self) -> Iterator[_Progress]:
        if self._bar is None:
            yield self
            return
        with self._bar:
            yield self

    def step(self, description: str, amount: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(self._task, advance=amount, description=description)


def run_locomo(
    conversations: Sequence[Conversation],
    factory: ProviderFactory,
    counter: TokenCounter,
    options: RunOptions,
    *,
    answerer: Answerer | None = None,
    progress: bool = False,
) -> RunResult:
    """Replay each conversation into every system and score every selected question.

    Args:
        conversations: the conversations (already loaded and validated).
        factory: builds the systems under test for one conversation (fresh state each time).
        counter: the token counter budgets and conversation sizes are measured with.
        options: budgets, categories, limits.
        answerer: with ``--answer``, answers a question from a context.
        progress: show a progress bar on stderr.

    Returns:
        The observations and replay timings.
    """
    chosen = list(conversations)[: options.limit_conversations]
    work = sum(len(c.sessions) + len(select_questions(c, options)) for c in chosen)
    result = RunResult()
    with _Progress(progress, work).running() as bar:
        for conversation in chosen:
            _run_one(conversation, factory, counter, options, answerer, bar, result)
    return result


def _run_one(
    conversation: Conversation,
    factory: ProviderFactory,
    counter: TokenCounter,
    options: RunOptions,
    answerer: Answerer | None,
    bar: _Progress,
    result: RunResult,
) -> None:
    sample = conversation.sample_id
    turns = conversation.turns
    whole = counter.count("\n".join(render_turn(t) for t in turns))
    result.conversation_tokens[sample] = whole
    providers = list(factory(conversation))
    result.systems.extend(p.name for p in providers if p.name not in result.systems)
    try:
        result.replays.extend(_replay(conversation, providers, options, bar))
        now = (turns[-1].occurred_at if turns else conversation.sessions[0].started_at) + timedelta(minutes=1)
        texts = {t.dia_id: t.text for t in turns}
        questions = select_questions(conversation, options)
        result.questions[sample] = len(questions)
        for number, question in enumerate(questions, start=1):
            evidence = [texts[i] for i in question.evidence]
            for budget in options.budgets:
                for p in providers:
                    began = time.perf_counter()
                    context = p.context(question.question, budget=budget, now=now)
                    elapsed_ms = (time.perf_counter() - began) * 1000.0
                    answering = budget == options.primary_budget and p.name in ANSWERING_SYSTEMS
                    result.observations.append(
                        _score(
                            sample,
                            p.name,
                            budget,
                            question,
                            evidence,
                            context,
                            whole,
                            elapsed_ms,
                            answerer if answering else None,
                        )
                    )
            bar.step(f"{sample} question {number}/{len(questions)}")
    finally:
        for p in providers:
            p.close()


def _replay(
    conversation: Conversation, providers: Sequence[ContextProvider], options: RunOptions, bar: _Progress
) -> list[Replay]:
    """Feed every session to every system, one exchange at a time; time ingest and compression."""
    ingest = dict.fromkeys((p.name for p in providers), 0.0)
    compress = dict(ingest)
    for session in conversation.sessions:
        for start in range(0, len(session.turns), options.exchange):
            chunk = session.turns[start : start + options.exchange]
            for p in providers:
                began = time.perf_counter()
                p.ingest(chunk)
                middle = time.perf_counter()
                p.compress()
                ingest[p.name] += middle - began
                compress[p.name] += time.perf_counter() - middle
        bar.step(f"{conversation.sample_id} session {session.number}")
    turns, sessions = len(conversation.turns), len(conversation.sessions)
    return [
        Replay(conversation.sample_id, p.name, turns, sessions, ingest[p.name], compress[p.name])
        for p in providers
    ]


def _score(
    sample: str,
    system: str,
    budget: int,
    question: Question,
    evidence: Sequence[str],
    context: ContextResult,
    conversation_tokens: int,
    elapsed_ms: float,
    answerer: Answerer | None,
) -> Observation:
    """One context scored: evidence found, answer present, and (with an answerer) F1 and BLEU-1."""
    gold = question.answer
    f1 = b1 = None
    if answerer is not None and gold is not None:
        reply = answerer(question.question, context.text)
        f1, b1 = token_f1(reply, gold), bleu1(reply, gold)
    return Observation(
        sample_id=sample,
        system=system,
        budget=budget,
        category=question.category,
        evidence=len(evidence),
        found=sum(evidence_found(evidence, context.text)),
        answer_in_context=None if gold is None else answer_in_context(gold, context.text),
        memory_tokens=context.memory_tokens,
        conversation_tokens=conversation_tokens,
        context_ms=elapsed_ms,
        f1=f1,
        bleu1=b1,
        sections=context.sections,
    )
