"""The LoCoMo replay and evaluation loop.

For each conversation every system under test (memstrata and the baselines, each a
:class:`~memstrata_bench.baselines.ContextProvider`) is fed the sessions in order, one
exchange at a time, and asked to compress after each one; then, for every selected question and
every budget, each system is asked for its memory context, which is scored (evidence recall,
answer in context, tokens, latency). With an answerer (``--answer``), at the primary budget:

- ``memstrata`` is answered through its product path (the provider's ``answer``: the messages and
  decoding of ``Memory.chat``);
- ``memstrata_excerpts`` is memstrata's memory text answered with the shared excerpt prompt;
- ``recency`` (plain truncation) is answered with the same excerpt prompt;
- ``oracle`` is the question's gold evidence turns alone in the same prompt: a reference ceiling
  that reads the gold labels, not a system.

Each reply is scored (F1, BLEU-1, gold in answer, reply tokens, cap reached).

The loop is pure apart from the clock: the caller builds the systems
(:data:`ProviderFactory`), so unit tests run it with test doubles.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from memstrata.errors import ConfigError
from memstrata.ports import TokenCounter

from .answering import AnswerReply
from .baselines import ContextProvider, ContextResult
from .locomo_data import Conversation, Question, render_turn
from .metrics import answer_in_context, bleu1, evidence_found, token_f1

__all__ = [
    "EXCERPTS",
    "EXCERPT_ANSWERED",
    "ORACLE",
    "Answerer",
    "Observation",
    "ProductAnswering",
    "ProviderFactory",
    "Replay",
    "RunOptions",
    "RunResult",
    "run_locomo",
    "select_questions",
]

ProviderFactory = Callable[[Conversation], Sequence[ContextProvider]]
Answerer = Callable[[str, str], AnswerReply]
"""Answers a question from a context with the shared excerpt prompt."""
EXCERPT_ANSWERED = ("recency",)
"""Baselines whose contexts are answered with the excerpt prompt (the plain truncation)."""
EXCERPTS = "memstrata_excerpts"
"""memstrata's memory text answered with the excerpt prompt."""
ORACLE = "oracle"
"""The gold evidence turns answered with the excerpt prompt: a reference that reads the labels."""


@runtime_checkable
class ProductAnswering(Protocol):
    """A system that answers through its own product path (memstrata: ``Memory.answer``)."""

    def answer(self, question: str, *, now: datetime) -> AnswerReply:
        """The system's own reply to ``question`` asked at ``now``."""
        ...


@runtime_checkable
class SummaryReporting(Protocol):
    """A system that can say how its summaries were written (memstrata after a replay)."""

    def summary_stats(self) -> dict[str, Any]:
        """Figures about the summaries written during the replay."""
        ...


@dataclass(frozen=True, slots=True)
class RunOptions:
    """What to run.

    Attributes:
        budgets: memory budgets in tokens; the first is the primary one (answers, headline).
        categories: question categories to evaluate (LoCoMo's 1-4 by default; 5 is adversarial).
        limit_conversations: evaluate only the first N conversations.
        limit_questions: evaluate at most N questions per conversation, sampled evenly across
            the categories (round robin over each category's questions, shuffled with ``seed``).
        exchange: turns given to a system per ``ingest`` call (two: one exchange).
        seed: the question sample's seed.
    """

    budgets: tuple[int, ...] = (1500,)
    categories: frozenset[int] = frozenset({1, 2, 3, 4})
    limit_conversations: int | None = None
    limit_questions: int | None = None
    exchange: int = 2
    seed: int = 0

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
    gold_in_answer: bool | None = None
    reply_tokens: int | None = None
    at_cap: bool | None = None
    reply: str | None = None


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
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)


def select_questions(conversation: Conversation, options: RunOptions) -> list[Question]:
    """The questions of the selected categories, in file order; with ``limit_questions``, a
    sample of that many taken evenly across the categories (a category with too few questions
    leaves its share to the others), the same for the same ``seed``."""
    chosen = [q for q in conversation.questions if q.category in options.categories]
    if options.limit_questions is None or len(chosen) <= options.limit_questions:
        return chosen
    rng = random.Random(f"{options.seed}:{conversation.sample_id}")
    pools: dict[int, list[int]] = {}
    for index, question in enumerate(chosen):
        pools.setdefault(question.category, []).append(index)
    for pool in pools.values():
        rng.shuffle(pool)
    picked: list[int] = []
    while len(picked) < options.limit_questions:
        for category in sorted(pools):
            if pools[category] and len(picked) < options.limit_questions:
                picked.append(pools[category].pop())
    return [chosen[i] for i in sorted(picked)]


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
    if answerer is not None:
        result.systems.extend(
            name
            for name, present in ((EXCERPTS, any(p.name == "memstrata" for p in providers)), (ORACLE, True))
            if present and name not in result.systems
        )
    try:
        result.replays.extend(_replay(conversation, providers, options, bar))
        for p in providers:
            if isinstance(p, SummaryReporting):
                result.summaries[sample] = p.summary_stats()
        now = (turns[-1].occurred_at if turns else conversation.sessions[0].started_at) + timedelta(minutes=1)
        by_id = {t.dia_id: t for t in turns}
        questions = select_questions(conversation, options)
        result.questions[sample] = len(questions)
        for number, question in enumerate(questions, start=1):
            evidence = [by_id[i].text for i in question.evidence]
            score = _Scorer(sample, question, evidence, whole)
            for budget in options.budgets:
                for p in providers:
                    began = time.perf_counter()
                    context = p.context(question.question, budget=budget, now=now)
                    elapsed_ms = (time.perf_counter() - began) * 1000.0
                    observed = score(p.name, budget, context, elapsed_ms)
                    if (
                        answerer is not None
                        and budget == options.primary_budget
                        and question.answer is not None
                    ):
                        result.observations.extend(_answered(p, observed, question, now, context, answerer))
                    else:
                        result.observations.append(observed)
            if answerer is not None and question.answer is not None:
                gold = "\n".join(render_turn(by_id[i]) for i in question.evidence)
                oracle = ContextResult(gold, counter.count(gold))
                observed = score(ORACLE, options.primary_budget, oracle, 0.0)
                result.observations.append(score.reply(observed, answerer(question.question, gold)))
            bar.step(f"{sample} question {number}/{len(questions)}")
    finally:
        for p in providers:
            p.close()


def _answered(
    provider: ContextProvider,
    observed: Observation,
    question: Question,
    now: datetime,
    context: ContextResult,
    answerer: Answerer,
) -> list[Observation]:
    """A primary-budget observation with its answers: memstrata through its product path and
    its memory text through the excerpt prompt; the truncation through the excerpt prompt."""
    gold = question.answer or ""
    if provider.name == "memstrata":
        answered = [observed]
        if isinstance(provider, ProductAnswering):
            answered = [_with_reply(observed, provider.answer(question.question, now=now), gold)]
        excerpts = answerer(question.question, context.text)
        return [*answered, _with_reply(replace(observed, system=EXCERPTS), excerpts, gold)]
    if provider.name in EXCERPT_ANSWERED:
        return [_with_reply(observed, answerer(question.question, context.text), gold)]
    return [observed]


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


class _Scorer:
    """Scores the contexts of one question: evidence found, answer present, and replies."""

    def __init__(self, sample: str, question: Question, evidence: Sequence[str], conversation_tokens: int):
        self.sample = sample
        self.question = question
        self.evidence = evidence
        self.conversation_tokens = conversation_tokens

    def __call__(self, system: str, budget: int, context: ContextResult, elapsed_ms: float) -> Observation:
        gold = self.question.answer
        return Observation(
            sample_id=self.sample,
            system=system,
            budget=budget,
            category=self.question.category,
            evidence=len(self.evidence),
            found=sum(evidence_found(self.evidence, context.text)),
            answer_in_context=None if gold is None else answer_in_context(gold, context.text),
            memory_tokens=context.memory_tokens,
            conversation_tokens=self.conversation_tokens,
            context_ms=elapsed_ms,
            sections=context.sections,
        )

    def reply(self, observed: Observation, reply: AnswerReply) -> Observation:
        return _with_reply(observed, reply, self.question.answer or "")


def _with_reply(observed: Observation, reply: AnswerReply, gold: str) -> Observation:
    """The observation with its reply scored: F1 and BLEU-1 of the extracted answer; the gold
    answer's words anywhere in the whole reply (what the user reads)."""
    return replace(
        observed,
        f1=token_f1(reply.answer, gold),
        bleu1=bleu1(reply.answer, gold),
        gold_in_answer=answer_in_context(gold, reply.text),
        reply_tokens=reply.tokens,
        at_cap=reply.at_cap,
        reply=reply.answer,
    )
