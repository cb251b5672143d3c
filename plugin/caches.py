"""The one eviction rule of memstrata's in-process caches (token counts, held episodes, the
latest turns per session): insertion-ordered dicts that drop their oldest half when full."""

from __future__ import annotations

from itertools import islice
from typing import Any

__all__ = ["make_room"]


def make_room(cache: dict[Any, Any], adding: int, max_entries: int) -> None:
    """Before ``adding`` entries to ``cache``: if they would take it past ``max_entries``, drop its
    oldest entries until half of ``max_entries`` remain. Call it under the lock that guards writes;
    readers may use ``cache.get`` meanwhile."""
    if len(cache) + adding > max_entries:
        for key in list(islice(cache, max(0, len(cache) - max_entries // 2))):
            cache.pop(key, None)
