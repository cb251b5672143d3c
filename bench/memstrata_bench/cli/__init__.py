"""``memstrata bench ...``: joins the ``memstrata`` CLI through its ``memstrata.cli`` entry point."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the ``bench`` group, with every benchmark command, to the ``memstrata`` CLI."""
    from memstrata_bench.cli import chat, embed, faults, locomo, model, store  # noqa: F401  (attach themselves)
    from memstrata_bench.cli.group import bench

    app.add_typer(bench, name="bench")
