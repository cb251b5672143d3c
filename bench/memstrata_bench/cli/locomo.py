"""``memstrata bench locomo``: replay LoCoMo conversations and score memstrata's contexts.

Heavy imports (numpy, the embedder, the model, the store) happen inside the command, so
``memstrata --help`` stays fast.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from memstrata.errors import ConfigError, MemstrataError, UsageError

from memstrata_bench.cli.group import bench

if TYPE_CHECKING:
    from memstrata_bench.runtime import EmbedderName, StoreName, TokenizerName

_Name = TypeVar("_Name", bound=str)
_TOKENIZERS: tuple[TokenizerName, ...] = ("model", "cl100k", "words")
_EMBEDDERS: tuple[EmbedderName, ...] = ("minilm", "hashing")
_STORES: tuple[StoreName, ...] = ("postgres", "memory")
ANSWER_COLUMNS = ("f1", "bleu1", "gold_in_answer_rate", "reply_tokens_mean", "replies_at_cap_rate")


def _categories(text: str) -> frozenset[int]:
    try:
        values = frozenset(int(part) for part in text.replace(" ", "").split(",") if part)
    except ValueError:
        raise ConfigError(f"--categories takes comma-separated numbers like 1,2,3,4 (got {text!r})") from None
    return values


def _choice(value: str, allowed: tuple[_Name, ...], option: str) -> _Name:
    for name in allowed:
        if value == name:
            return name
    raise ConfigError(f"{option} must be one of {', '.join(allowed)} (got {value!r})")


@bench.command("locomo")
def locomo(
    data: Annotated[Path, typer.Option("--data", help="A LoCoMo-format JSON file.")],
    budget: Annotated[
        list[int] | None, typer.Option("--budget", help="Memory tokens (repeatable; first = headline).")
    ] = None,
    answer: Annotated[bool, typer.Option("--answer", help="Answer with the model: F1 and BLEU-1.")] = False,
    no_model: Annotated[
        bool,
        typer.Option(
            "--no-model",
            help="Replay without a model: extractive summaries (with --answer, the model only answers).",
        ),
    ] = (False),
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write a PNG of recall vs budget.")] = None,
    limit_conversations: Annotated[int | None, typer.Option(help="Only the first N conversations.")] = None,
    limit_questions: Annotated[
        int | None,
        typer.Option(help="At most N questions per conversation, sampled evenly across categories."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the question sample.")] = 0,
    categories: Annotated[str, typer.Option(help="Question categories, comma-separated.")] = "1,2,3,4",
    tokenizer: Annotated[str, typer.Option(help="Budget tokenizer: model, cl100k or words.")] = "model",
    embedder: Annotated[str, typer.Option(help="Embedder: minilm or hashing.")] = "minilm",
    store: Annotated[str, typer.Option(help="memstrata's store: postgres or memory.")] = "postgres",
    dsn: Annotated[str | None, typer.Option(help="PostgreSQL URI (default: the embedded server).")] = None,
    baselines_only: Annotated[
        bool, typer.Option("--baselines-only", help="Measure the baselines only.")
    ] = False,
    progress: Annotated[bool, typer.Option(help="Progress bar on stderr.")] = True,
) -> None:
    """Replay each conversation into memstrata and the baselines; score every question's context."""
    try:
        report = _run(
            data=data,
            budgets=tuple(budget or (1500,)),
            answer=answer,
            no_model=no_model,
            plot=plot,
            limit_conversations=limit_conversations,
            limit_questions=limit_questions,
            seed=seed,
            categories=_categories(categories),
            tokenizer=_choice(tokenizer, _TOKENIZERS, "--tokenizer"),
            embedder=_choice(embedder, _EMBEDDERS, "--embedder"),
            store=_choice(store, _STORES, "--store"),
            dsn=dsn,
            baselines_only=baselines_only,
            progress=progress,
        )
    except MemstrataError as exc:
        typer.echo(f"memstrata bench locomo: {exc}", err=True)
        raise typer.Exit(2 if isinstance(exc, UsageError) else 1) from None
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2, sort_keys=False) + "\n")
    else:
        _print_table(report)


def _run(
    *,
    data: Path,
    budgets: tuple[int, ...],
    answer: bool,
    no_model: bool,
    plot: Path | None,
    limit_conversations: int | None,
    limit_questions: int | None,
    seed: int,
    categories: frozenset[int],
    tokenizer: TokenizerName,
    embedder: EmbedderName,
    store: StoreName,
    dsn: str | None,
    baselines_only: bool,
    progress: bool,
) -> dict[str, Any]:
    from contextlib import ExitStack

    from memstrata import MemoryConfig
    from memstrata.replies import REPLY_STOPS

    from memstrata_bench import runtime
    from memstrata_bench.answering import EXCERPT_INSTRUCTION, ExcerptAnswerer
    from memstrata_bench.baselines import BM25Baseline, DenseBaseline, RecencyBaseline, RRFBaseline
    from memstrata_bench.locomo_data import Conversation, load_locomo
    from memstrata_bench.locomo_report import build_report
    from memstrata_bench.locomo_run import RunOptions, run_locomo, select_questions
    from memstrata_bench.memstrata_provider import MemstrataProvider
    from memstrata_bench.plot import PLOT_BUDGETS, plot_recall_vs_budget

    if plot is not None:
        budgets = budgets + tuple(b for b in PLOT_BUDGETS if b not in budgets)
    options = RunOptions(
        budgets=budgets,
        categories=categories,
        limit_conversations=limit_conversations,
        limit_questions=limit_questions,
        seed=seed,
    )
    conversations = load_locomo(data)
    model = None if (no_model or baselines_only) and not answer else runtime.load_chat_model()
    counter = runtime.load_token_counter(tokenizer, model)
    vectors = runtime.load_embedder(embedder)
    run_id = MemstrataProvider.fresh_run_id()
    with ExitStack() as stack:
        memory = answering = None
        episode_store = None
        if not baselines_only:
            episode_store = stack.enter_context(runtime.open_store(store, vectors.dimensions, dsn=dsn))
            # The headline budget is memstrata's configured one, so its product path (Memory.answer,
            # which plans like Memory.chat: with the configured budget) reads what the others read.
            # With --no-model the replay's memory has no model (extractive summaries) and a second
            # one over the same store, with the model, answers.
            memory = runtime.build_memory(
                episode_store,
                vectors,
                counter,
                None if no_model else model,
                memory_budget=options.primary_budget,
            )
            if no_model and model is not None:
                answering = runtime.build_memory(
                    episode_store, vectors, counter, model, memory_budget=options.primary_budget
                )
        memstrata_runs: list[MemstrataProvider] = []

        def factory(conversation: Conversation) -> list[Any]:
            systems: list[Any] = []
            if memory is not None and episode_store is not None:
                memstrata_runs.append(
                    MemstrataProvider(memory, episode_store, conversation, run_id=run_id, answering=answering)
                )
                systems.append(memstrata_runs[-1])
            systems += [RecencyBaseline(counter), BM25Baseline(counter), DenseBaseline(counter, vectors)]
            systems += [RRFBaseline(counter, vectors), RRFBaseline(counter, vectors, window=1)]
            return systems

        memory_config = getattr(memory, "config", None) or MemoryConfig()
        answer_cap = memory_config.planner.reserve_tokens
        answerer = None
        if answer and model is not None:
            answerer = ExcerptAnswerer(model, max_tokens=answer_cap, stop=REPLY_STOPS)
        result = run_locomo(conversations, factory, counter, options, answerer=answerer, progress=progress)
    chosen = conversations[: options.limit_conversations]
    data_meta = {
        "path": str(data),
        "sha256": hashlib.sha256(data.read_bytes()).hexdigest(),
        "conversations": [c.sample_id for c in chosen],
        "questions": sum(len(select_questions(c, options)) for c in chosen),
        "evidence_ids": {
            "exact": sum(c.evidence_report.exact for c in chosen),
            "repaired": sum(c.evidence_report.repaired for c in chosen),
            "unmatched": [i for c in chosen for i in c.evidence_report.unmatched],
        },
    }
    config = {
        "budgets": list(options.budgets),
        "categories": sorted(options.categories),
        "limit_conversations": limit_conversations,
        "limit_questions": limit_questions,
        "seed": seed,
        "exchange_turns": options.exchange,
        "tokenizer": tokenizer,
        "embedder": embedder,
        "model": None if model is None else runtime.default_model_path(),
        "summaries": None if baselines_only else ("extractive (no model)" if no_model else "model"),
        "store": None if baselines_only else store,
        "answer": answer,
        "answer_failures": None
        if answerer is None
        else answerer.failures + sum(p.failures for p in memstrata_runs),
        "answering": None
        if answerer is None
        else {
            "memstrata": "Memory.context then Memory.answer (the messages and decoding of Memory.chat)",
            "excerpt_instruction": EXCERPT_INSTRUCTION,
            "max_tokens": answer_cap,
            "stop": list(REPLY_STOPS),
            "temperature": 0.0,
            "scored_line": "first non-empty line that is not a bare label, label prefix stripped",
            # The answering memory is fitted to the model that reads its prompts (a small model's floor).
            "memstrata_planner": _dump(getattr(answering or memory, "config", MemoryConfig()).planner),
        },
        "memory_config": None if memory is None else _dump(memory_config),
        "turn_rendering": "[session date] speaker: text [shares <image caption>]",
    }
    report: dict[str, Any] = build_report(
        result, budgets=options.budgets, data=data_meta, config=config, versions=runtime.versions()
    )
    if plot is not None:
        plot_recall_vs_budget(report, plot)
        report["config"]["plot"] = str(plot)
    return report


def _dump(config: Any) -> Any:
    return config.model_dump(mode="json") if hasattr(config, "model_dump") else None


def _print_table(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    keys = (
        "evidence_recall",
        "all_evidence_rate",
        "answer_in_context_rate",
        "memory_tokens_mean",
        "context_p50_ms",
        "context_p95_ms",
        "f1",
    )
    table = Table(title=f"LoCoMo, {report['budget']} memory tokens ({report['config']['tokenizer']} tokens)")
    table.add_column("system")
    for key in keys:
        table.add_column(key.replace("_", " "), justify="right")
    rows = [("memstrata", report["overall"])] if report["overall"] else []
    rows += [
        (f"{name} (reference: reads gold labels)" if entry.get("reference") else name, entry["overall"])
        for name, entry in report["baselines"].items()
        if name != "memstrata_excerpts"  # the same context as memstrata's
    ]
    for name, figures in rows:
        table.add_row(name, *("-" if figures.get(k) is None else str(figures[k]) for k in keys))
    console = Console()
    console.print(table)
    if report.get("answers"):
        _print_answers(report["answers"], console)


def _print_answers(answers: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    table = Table(title="Answers (same model, cap and decoding for every context)")
    for column in ("context", "answered", *ANSWER_COLUMNS, "F1 by category"):
        table.add_column(column.replace("_", " "), justify="left" if column == "context" else "right")
    for name, row in answers.items():
        label = f"{name} (reference: reads gold labels)" if row.get("reference") else name
        by_category = " ".join(f"{c}:{v}" for c, v in row["f1_by_category"].items())
        cells = ("-" if row.get(k) is None else str(row[k]) for k in ANSWER_COLUMNS)
        table.add_row(label, str(row["answered"]), *cells, by_category)
    console.print(table)
