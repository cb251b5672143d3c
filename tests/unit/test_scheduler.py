"""The compression queue: its drain waits for a compression already running, not only queued ones
(a running fold had left the queue, so `wait_for_compression` returned before it finished), and
what runs after a compression runs after every one."""

from __future__ import annotations

import threading

from memstrata import CompressionReport, Scope
from memstrata.scheduler import CompressionQueue


def test_drain_waits_for_a_compression_already_running() -> None:
    started, release, done = threading.Event(), threading.Event(), threading.Event()

    def compress(scope: Scope) -> CompressionReport:
        started.set()
        release.wait(5)
        done.set()
        return CompressionReport()

    queue = CompressionQueue(compress)
    queue.submit(Scope(user_id="alice"))
    assert started.wait(5)  # running now: no longer queued
    threading.Timer(0.2, release.set).start()
    queue.drain()
    assert done.is_set()
    queue.close()


def test_after_runs_after_every_compression_fold_or_not() -> None:
    """``Memory`` warms the next turn's start there: the prefix changes every turn (the user's
    message comes back without its notes), not only when a fold lands."""
    warmed: list[str] = []
    queue = CompressionQueue(
        lambda scope: CompressionReport(), after=lambda scope: warmed.append(scope.user_id)
    )
    queue.submit(Scope(user_id="alice"))
    queue.drain()
    queue.submit(Scope(user_id="bob"))
    queue.close()
    assert warmed == ["alice", "bob"]
