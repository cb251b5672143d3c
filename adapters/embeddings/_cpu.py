"""How many CPU cores this process may use (the default thread count of the embedders)."""

from __future__ import annotations

import os


def available_cores() -> int:
    """Cores in this process's CPU affinity mask (``os.cpu_count()`` where there is none), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)
