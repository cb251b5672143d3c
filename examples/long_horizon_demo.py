"""memstrata's offline long-horizon demo (``make demo``).

Replays a four-week assistant log (several times larger than the model's window) into memory on
the embedded defaults: embedded PostgreSQL + pgvector, the offline MiniLM embedder and the
default local model (SmolLM2-135M-Instruct), with the model folding old turns into summaries as
it goes. Then it asks questions whose answers were said weeks earlier, and prints each answer,
its budget plan, the memories used, and the tokens sent against the full history. It ends with
``N/M answers correct`` (an answer is correct when it contains the expected words) and exits
non-zero unless every answer is.

Options: ``--window N`` (the model's context, default 2048), ``--turns-per-day N`` (default 8),
``--keep`` (keep the demo's memories instead of forgetting them at the end).
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from demo_log import QUESTIONS, build_log
from memstrata import CompressionConfig, MemoryConfig, Scope, Turn
from memstrata.adapters.defaults import open_memory
from memstrata.adapters.llamacpp import LlamaCppChatModel


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=int, default=2048)
    parser.add_argument("--turns-per-day", type=int, default=8)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    out = Console()
    progress_console = Console(stderr=True)

    started = time.perf_counter()
    model = LlamaCppChatModel(n_ctx=args.window)
    # The shipped defaults, but for the fold size: a day's log is folded in one summary.
    config = MemoryConfig(compression=CompressionConfig(chunk_fraction=0.5, summary_max_tokens=96))
    log = build_log(turns_per_day=args.turns_per_day)
    user = f"demo-{uuid.uuid4().hex[:8]}"
    out.rule("[bold]memstrata long-horizon demo")
    out.print(
        f"model: {model.name} (window {model.context_window} tokens, loaded in {model.load_seconds:.2f} s)"
    )

    with open_memory(model=model, config=config) as memory:
        history_tokens = sum(memory.counter.count(render_transcript_line_of(t)) for t in log)
        out.print(
            f"log: {len(log)} turns over {log[-1].day + 1} days, {history_tokens} tokens "
            f"= {history_tokens / model.context_window:.1f}x the model's window"
        )
        folds = fallbacks = 0
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=progress_console,
        ) as progress:
            task = progress.add_task("replaying days", total=log[-1].day + 1)
            for day in range(log[-1].day + 1):
                turns = [t for t in log if t.day == day]
                scope = Scope(user_id=user, session_id=f"{turns[0].at:%Y-%m-%d}")
                memory.add([Turn(role=t.role, content=t.text, occurred_at=t.at) for t in turns], scope=scope)  # type: ignore[arg-type]
                report = memory.compress(scope=scope)
                folds += len(report.folds)
                fallbacks += len(report.fallbacks)
                progress.update(task, advance=1, description=f"day {day + 1}: {folds} summaries written")
        out.print(
            f"compression: {folds} summaries written by the model ({fallbacks} fell back to extractive)"
        )

        ask = Scope(user_id=user, session_id="questions")
        found = correct = 0
        for question in QUESTIONS:
            out.rule(f"[bold cyan]Q: {question.text}")
            reply = memory.chat(question.text, scope=ask, occurred_at=log[-1].at)
            plan = reply.plan
            prompt = "\n".join(m.content for m in plan.messages).lower()
            in_context = all(word.lower() in prompt for word in question.expected)
            right = all(word.lower() in reply.text.lower() for word in question.expected)
            found += in_context
            correct += right
            out.print(f"[bold]A:[/bold] {escape(reply.text.strip())}")
            out.print(
                f"{'[green]correct[/]' if right else '[red]wrong[/]'}: expected {', '.join(question.expected)}, "
                f"said on day {question.said_on_day + 1} "
                f"({'in the context' if in_context else 'NOT in the context'})"
            )
            out.print(plan.explain(), markup=False, highlight=False)
            out.print("memories used:")
            for hit in sorted(plan.recalled, key=lambda h: h.episode.occurred_at)[:6]:
                e = hit.episode
                out.print(
                    f"  {e.occurred_at:%Y-%m-%d} {e.kind.value:<7} {e.text[:90]}",
                    markup=False,
                    highlight=False,
                )
            if len(plan.recalled) > 6:
                out.print(f"  ... and {len(plan.recalled) - 6} more")
            out.print(
                f"tokens sent: {plan.prompt_tokens} of a {history_tokens}-token history "
                f"({plan.prompt_tokens / history_tokens:.0%}); answer {reply.usage.completion_tokens} tokens"
            )
        out.rule()
        out.print(f"[bold]{correct}/{len(QUESTIONS)} answers correct[/]")
        out.print(
            f"{found}/{len(QUESTIONS)} answers' evidence reached the model's context; "
            f"total time {time.perf_counter() - started:.0f} s"
        )
        if not args.keep:
            memory.forget(scope=Scope(user_id=user))
    model.close()
    return 0 if correct == len(QUESTIONS) else 1


def render_transcript_line_of(turn: object) -> str:
    return f"[{turn.at:%Y-%m-%d %H:%M}] {turn.role}: {turn.text}"  # type: ignore[attr-defined]


if __name__ == "__main__":
    raise SystemExit(main())
