"""Read a model's stream on one dedicated thread and hand its pieces to whichever thread serves
the HTTP response.

A llama.cpp model is held by the thread that reads its stream until the stream ends; the
server's worker threads change from one piece to the next, and a worker that started a stream
and then served another request would look like a thread re-entering the model. One reader
thread per stream keeps the ownership simple; the response only reads a queue.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Literal

__all__ = ["StreamRelay"]

_Event = tuple[Literal["piece", "end", "error"], str | BaseException | None]


class StreamRelay:
    """Consumes ``pieces`` on a daemon thread.

    Args:
        pieces: the model's stream (its generator is closed when reading stops).
    """

    def __init__(self, pieces: Iterator[str]) -> None:
        self._pieces = pieces
        self._events: queue.Queue[_Event] = queue.Queue()
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._read, name="memstrata-stream", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for piece in self._pieces:
                if self._cancel.is_set():
                    return
                self._events.put(("piece", piece))
            self._events.put(("end", None))
        except BaseException as exc:  # handed to the response thread, which raises it
            self._events.put(("error", exc))
        finally:
            close = getattr(self._pieces, "close", None)
            if close is not None:
                close()

    def __iter__(self) -> Iterator[str]:
        """The pieces in order; re-raises the stream's exception where it happened."""
        while True:
            kind, value = self._events.get()
            if kind == "end":
                return
            if kind == "error":
                assert isinstance(value, BaseException)
                raise value
            assert isinstance(value, str)
            yield value

    def cancel(self) -> None:
        """Stop reading (the client went away): the model is released after its current piece."""
        self._cancel.set()
