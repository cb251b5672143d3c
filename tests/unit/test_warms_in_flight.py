"""A turn whose prompt starts with a prefix being warmed waits for that warm (and only then)."""

from __future__ import annotations

import threading
import time

from memstrata.adapters.llamacpp.prefix_cache import WarmsInFlight


def test_a_turn_starting_with_the_warmed_prefix_waits_for_it_and_another_does_not() -> None:
    warms = WarmsInFlight()
    started, release, finished = threading.Event(), threading.Event(), threading.Event()

    def warm() -> None:
        with warms.warming([1, 2, 3]):
            started.set()
            release.wait(10)
        finished.set()

    thread = threading.Thread(target=warm)
    thread.start()
    assert started.wait(10)
    tokenized: list[str] = []

    def other() -> list[int]:
        tokenized.append("other")
        return [1, 2, 9, 4]

    assert warms.wait_for(other) is False  # another prompt (another scope's): no wait
    waited: list[bool] = []
    turn = threading.Thread(target=lambda: waited.append(warms.wait_for(lambda: [1, 2, 3, 4, 5])))
    turn.start()
    time.sleep(0.2)
    assert turn.is_alive() and not waited  # held while the warm runs
    release.set()
    turn.join(10)
    thread.join(10)
    assert waited == [True] and finished.is_set()

    def idle() -> list[int]:
        tokenized.append("idle")
        return [1, 2, 3]

    assert warms.wait_for(idle) is False
    assert tokenized == ["other"]  # with no warm running, the prompt is not even tokenized
