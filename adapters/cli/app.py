"""``memstrata``: the command-line entry point. Each command group lives in its own module.

Command groups that do not ship in the wheel (the benchmarks of the repository's ``bench/``
package) join through the ``memstrata.cli`` entry-point group: each entry is a function that
takes this ``app`` and adds its commands.
"""

from __future__ import annotations

import importlib.metadata

import typer

app = typer.Typer(help="memstrata: long-term memory for LLM agents on a local model.", no_args_is_help=True)

_registered = False


def register_commands() -> typer.Typer:
    """Attach every command (the built-in ones and the ``memstrata.cli`` entry points) to ``app``,
    once; returns ``app``."""
    global _registered
    if not _registered:
        _registered = True
        # Command modules attach themselves to `app`; imported here so `--help` lists them.
        from memstrata.adapters.cli import chat, keys, serve  # noqa: F401

        for entry in importlib.metadata.entry_points(group="memstrata.cli"):
            entry.load()(app)
    return app


def main() -> None:
    """Run the CLI."""
    register_commands()()
