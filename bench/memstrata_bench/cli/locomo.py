"""``memstrata bench locomo``: replay LoCoMo conversations and score memstrata's contexts.

Heavy imports (numpy, the embedder, the model, the store) happen inside the command, so
``memstrata --help`` stays fast.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from memstrata.errors import ConfigError, MemstrataError, UsageError

from memstrata_bench.cli.group import bench

_TOKENIZERS = ("model", "cl100k", "words")
_EMBEDDERS = ("minilm", "hashing")
_STORES = ("postgres", "memory")


def _categories(text: str) -> frozenset[int]:
    try:
        values = frozenset(int(part) for part in text.replace(" ", "").split(",") if part)
    except ValueError:
        raise ConfigError(f"--categories takes comma-separated numbers like 1,2,3,4 (got {text!r})") from None
    return values


def _choice(value: str, allowed: tuple[str, ...], option: str) -> str:
    if value not in allowed:
        raise ConfigError(f"{option} must be one of {', '.join(allowed)} (got {value!r})")
    return value


@bench.command("locomo")  # type: ignore[untyped-decorator]
def locomo(
    data: Annotated[Path, typer.Option("--data", help="A LoCoMo-format JSON file.")],
    budget: Annotated[
        list[int] | None, typer.Option("--budget", help="Memory tokens (repeatable; first = headline).")
    ] = None,
    answer: Annotated[bool, typer.Option("--answer", help="Answer with the model: F1 and BLEU-1.")] = False,
    no_model: Annotated[
        bool, typer.Option("--no-model", help="Replay without a model: extractive summaries, no answers.")
    ] = (False),
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write a PNG of recall vs budget.")] = None,
    limit_conversations: Annotated[int | None, typer.Option(help="Only the first N conversations.")] = None,
    limit_questions: Annotated[int | None, typer.Option(help="At most N questions per conversation.")] = None,
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
    categories: frozenset[int],
    tokenizer: str,
    embedder: str,
    store: str,
    dsn: str | None,
    baselines_only: bool,
    progress: bool,
) -> dict[str, Any]:
    from contextlib import ExitStack

    from memstrata_bench import runtime
    from memstrata_bench.answering import ANSWER_INSTRUCTIONS, ModelAnswerer
    from memstrata_bench.baselines import BM25Baseline, DenseBaseline, RecencyBaseline, RRFBaseline
    from memstrata_bench.locomo_data import Conversation, load_locomo
    from memstrata_bench.locomo_report import build_report
    from memstrata_bench.locomo_run import RunOptions, run_locomo, select_questions
    from memstrata_bench.memstrata_provider import MemstrataProvider
    from memstrata_bench.plot import PLOT_BUDGETS, plot_recall_vs_budget

    if answer and no_model:
        raise ConfigError("--answer needs the model to answer: drop --no-model")
    if plot is not None:
        budgets = budgets + tuple(b for b in PLOT_BUDGETS if b not in budgets)
    options = RunOptions(
        budgets=budgets,
        categories=categories,
        limit_conversations=limit_conversations,
        limit_questions=limit_questions,
    )
    conversations = load_locomo(data)
    model = None if no_model or (baselines_only and not answer) else runtime.load_chat_model()
    counter = runtime.load_token_counter(tokenizer, model)
    vectors = runtime.load_embedder(embedder)
    run_id = MemstrataProvider.fresh_run_id()
    with ExitStack() as stack:
        memory = None
        episode_store = None
        if not baselines_only:
            episode_store = stack.enter_context(runtime.open_store(store, vectors.dimensions, dsn=dsn))
            memory = runtime.build_memory(episode_store, vectors, counter, model)

        def factory(conversation: Conversation) -> list[Any]:
            systems: list[Any] = []
            if memory is not None and episode_store is not None:
                systems.append(MemstrataProvider(memory, episode_store, conversation, run_id=run_id))
            systems += [RecencyBaseline(counter), BM25Baseline(counter), DenseBaseline(counter, vectors)]
            systems += [RRFBaseline(counter, vectors), RRFBaseline(counter, vectors, window=1)]
            return systems

        answerer = ModelAnswerer(model) if answer and model is not None else None
        result = run_locomo(conversations, factory, counter, options, answerer=answerer, progress=progress)
        memory_config = getattr(memory, "config", None)
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
        "exchange_turns": options.exchange,
        "tokenizer": tokenizer,
        "embedder": embedder,
        "model": None if model is None else runtime.default_model_path(),
        "summaries": None if baselines_only else ("model" if model is not None else "extractive (no model)"),
        "store": None if baselines_only else store,
        "answer": answer,
        "answer_failures": getattr(answerer, "failures", None),
        "answer_instructions": ANSWER_INSTRUCTIONS if answer else None,
        "memory_config": _dump(memory_config),
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
    rows += [(name, entry["overall"]) for name, entry in report["baselines"].items()]
    for name, figures in rows:
        table.add_row(name, *("-" if figures.get(k) is None else str(figures[k]) for k in keys))
    Console().print(table)
