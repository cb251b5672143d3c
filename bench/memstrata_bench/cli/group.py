"""The ``memstrata bench`` command group; each benchmark module attaches its command to it."""

from __future__ import annotations

import typer

bench = typer.Typer(help="Benchmarks. Each prints one JSON object with --json.", no_args_is_help=True)
