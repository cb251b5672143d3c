"""``memstrata``: the command-line entry point. Each command group lives in its own module."""

from __future__ import annotations

import typer

app = typer.Typer(help="memstrata: long-term memory for LLM agents on a local model.", no_args_is_help=True)
bench = typer.Typer(help="Benchmarks. Each prints one JSON object with --json.", no_args_is_help=True)
app.add_typer(bench, name="bench")


def _register() -> None:
    # Command modules attach themselves to `app` / `bench`; imported here so `--help` lists them.
    from memstrata.adapters.cli import (
        bench_embed,  # noqa: F401
        bench_faults,  # noqa: F401
        bench_locomo,  # noqa: F401
        bench_model,  # noqa: F401
        bench_store,  # noqa: F401
        chat,  # noqa: F401
        serve,  # noqa: F401
    )


def main() -> None:
    """Run the CLI."""
    _register()
    app()
