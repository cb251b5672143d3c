"""Everything foreign to the core: Postgres, llama.cpp, ONNX, OpenAI-compatible HTTP, LangChain,
LangGraph, the server and the CLI. Each subpackage imports its third-party library lazily enough
that ``import memstrata`` never pulls it in."""

from typing import Any

__all__ = ["open_memory"]


def __getattr__(name: str) -> Any:
    # Looked up on first use: importing one adapter must not import every default's.
    if name == "open_memory":
        from memstrata.adapters.defaults import open_memory

        return open_memory
    raise AttributeError(f"module 'memstrata.adapters' has no attribute {name!r}")
