"""One shared thread pool for overlapping waits (a database query while the query is embedded).

Nothing starts at import: the pool is created on first use.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

__all__ = ["background"]

P = ParamSpec("P")
R = TypeVar("R")

_EXECUTOR: ThreadPoolExecutor | None = None
_EXECUTOR_LOCK = threading.Lock()
MAX_WORKERS = 8


def background(fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Future[R]:
    """Run ``fn(*args, **kwargs)`` on memstrata's shared pool and return its future.

    Meant for work that waits on another process or on native code that releases the GIL (a
    database query, an ONNX or llama.cpp call), so that two such waits overlap on two cores.
    """
    global _EXECUTOR
    with _EXECUTOR_LOCK:
        if _EXECUTOR is None:
            _EXECUTOR = ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix="memstrata-io")
    return _EXECUTOR.submit(fn, *args, **kwargs)
