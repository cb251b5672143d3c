"""Compression off the critical path: folds run after the reply is returned, on one worker thread.

A fold costs a model call (seconds on a CPU); a chat turn should not wait for it. Each scope is
queued at most once (a turn arriving while its scope waits adds nothing), and a fold is one
transaction as ever, so a process killed mid-fold loses nothing: the next compression of the
scope finds the same turns due and folds them. After each run, ``after`` runs on the same worker
(``Memory`` warms the chat model's prompt cache there with the next turn's start, in the user's
pause, so the next turn evaluates only its new message and notes).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from memstrata.compression import CompressionReport
from memstrata.errors import MemstrataError
from memstrata.schemas import Scope

__all__ = ["CompressionQueue"]

logger = logging.getLogger(__name__)


class CompressionQueue:
    """Runs ``compress(scope)`` for the scopes handed to :meth:`submit`, one at a time.

    Args:
        compress: what to run for a scope.
        after: what to run next for the scope, after its compression (fold or not); a failure
            there is logged, not raised (it can only cost speed).
    """

    def __init__(
        self,
        compress: Callable[[Scope], CompressionReport],
        *,
        after: Callable[[Scope], object] | None = None,
    ) -> None:
        self._compress = compress
        self._after = after
        self._lock = threading.Lock()
        self._queued: dict[tuple[str, str], Future[CompressionReport | None]] = {}
        self._unfinished: set[Future[CompressionReport | None]] = set()  # queued or running
        self._executor: ThreadPoolExecutor | None = None
        self.failures = 0
        """Compressions that raised (logged; the next submission retries what is due)."""

    def submit(self, scope: Scope) -> Future[CompressionReport | None]:
        """Queue a compression of ``scope``'s user and agent (once, however often it is asked)."""
        key = (scope.user_id, scope.agent_id)
        with self._lock:
            pending = self._queued.get(key)
            if pending is not None:
                return pending
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="memstrata-compress")
            future = self._executor.submit(self._run, key, scope)
            self._queued[key] = future
            self._unfinished.add(future)
        future.add_done_callback(self._finished)
        return future

    def _finished(self, future: Future[CompressionReport | None]) -> None:
        with self._lock:
            self._unfinished.discard(future)

    def _run(self, key: tuple[str, str], scope: Scope) -> CompressionReport | None:
        with self._lock:
            self._queued.pop(key, None)  # a turn stored from now on queues a new run
        try:
            report = self._compress(scope)
        except MemstrataError as exc:
            self.failures += 1
            logger.warning("background compression of %s failed: %s", scope.user_id, exc)
            return None
        if self._after is not None:
            try:
                self._after(scope)
            except MemstrataError as exc:
                logger.warning("after the compression of %s: %s", scope.user_id, exc)
        return report

    def drain(self) -> None:
        """Wait until every queued or running compression (and what runs after it) has finished."""
        while True:
            with self._lock:
                pending = list(self._unfinished)
            if not pending:
                return
            for future in pending:
                future.exception()

    def close(self) -> None:
        """Finish what is queued and stop the worker."""
        self.drain()
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
