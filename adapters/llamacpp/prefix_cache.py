"""llama.cpp's prompt cache, driven directly: evaluate a prompt's start ahead of the turn that needs
it, and move an evaluated prefix from one context to another on the same weights.

llama-cpp-python reuses the longest common prefix of a prompt with what its context last evaluated
(``Llama.generate``); these helpers leave a context in the state that reuse expects: its KV cells for
sequence 0 hold exactly ``input_ids[:n_tokens]``. Callers hold the model's lock.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from memstrata.adapters.extras import require

if TYPE_CHECKING:
    from llama_cpp import Llama

__all__ = ["CachedPrefix", "WarmsInFlight", "common_length", "copy_prefix", "evaluate_prefix", "paste_prefix"]


CachedPrefix = tuple[list[int], bytes]
"""Prompt tokens and the KV state of sequence 0 that holds them (``llama_state_seq_get_data``)."""


def common_length(a: Sequence[int], b: Sequence[int]) -> int:
    """The length of the longest common prefix of two token lists."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def evaluate_prefix(llama: Llama, tokens: Sequence[int]) -> int:
    """Evaluate what the context does not hold of ``tokens`` (after the common prefix it keeps);
    returns how many tokens that was."""
    keep = common_length(llama.input_ids[: llama.n_tokens].tolist(), tokens)
    if keep == len(tokens):
        return 0
    llama.n_tokens = keep  # eval() first drops the cells from here on
    llama.eval(list(tokens[keep:]))
    # Done here, and counted here: llama.cpp books a decode in its counters when it synchronizes.
    require("llama_cpp", extra="local", purpose="llama.cpp").llama_synchronize(llama.ctx)
    return len(tokens) - keep


def copy_prefix(llama: Llama) -> CachedPrefix:
    """The context's evaluated tokens and their KV cells (a few MB for a small model)."""
    llama_cpp = require("llama_cpp", extra="local", purpose="llama.cpp")
    size = int(llama_cpp.llama_state_seq_get_size(llama.ctx, 0))
    buffer = (ctypes.c_uint8 * size)()
    written = int(llama_cpp.llama_state_seq_get_data(llama.ctx, buffer, size, 0))
    return llama.input_ids[: llama.n_tokens].tolist(), bytes(buffer[:written])


def paste_prefix(llama: Llama, prefix: CachedPrefix) -> bool:
    """Replace the context's cache with ``prefix`` (copied from a context of the same model and
    size); False, with the cache emptied, when llama.cpp refuses it."""
    llama_cpp = require("llama_cpp", extra="local", purpose="llama.cpp")
    tokens, state = prefix
    buffer = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
    if int(llama_cpp.llama_state_seq_set_data(llama.ctx, buffer, len(state), 0)) != len(state):
        llama.reset()  # type: ignore[no-untyped-call]
        return False
    llama.input_ids[: len(tokens)] = tokens
    llama.n_tokens = len(tokens)
    llama._requires_eval = True  # restored cells, no logits: a prompt must decode before sampling
    return True


class WarmsInFlight:
    """The prefixes being warmed in a sibling context right now, so that a turn whose prompt starts
    with one waits for its copy instead of evaluating the same tokens beside it: the warm started
    first, so waiting is never slower, and on a small machine the two would only share the cores.

    Args:
        timeout: the longest a turn waits for one warm, in seconds (then it evaluates itself).
    """

    def __init__(self, timeout: float = 300.0) -> None:
        self._lock = threading.Lock()
        self._running: dict[int, tuple[list[int], threading.Event]] = {}
        self._timeout = timeout

    @contextmanager
    def warming(self, tokens: Sequence[int]) -> Iterator[None]:
        """Mark ``tokens`` as being warmed for the duration of the block."""
        done = threading.Event()
        with self._lock:
            self._running[id(done)] = (list(tokens), done)
        try:
            yield
        finally:
            with self._lock:
                del self._running[id(done)]
            done.set()

    def wait_for(self, prompt: Callable[[], Sequence[int]]) -> bool:
        """Wait for the warms whose prefix starts ``prompt()`` (tokenized only if one runs);
        returns True when there was one."""
        with self._lock:
            running = list(self._running.values())
        if not running:
            return False
        tokens = prompt()
        covering = [done for warm, done in running if common_length(warm, tokens) == len(warm)]
        for done in covering:
            done.wait(self._timeout)
        return bool(covering)
