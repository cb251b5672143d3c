"""Leave the embedded server on SIGTERM and SIGHUP too, not only on a normal exit or Ctrl-C.

The embedded PostgreSQL stops when the last process using it releases it, which happens in an
``atexit`` handler. Python runs those on a normal exit and after Ctrl-C (``KeyboardInterrupt``),
but SIGTERM and SIGHUP kill a process that left them at their default action without running
them: the server then outlives its last user. While a process uses the embedded server, those
two signals raise ``SystemExit(128 + signal)`` instead (the code a shell reports for a signal
death), so ``finally`` blocks and ``atexit`` handlers run. A handler the program installed itself
is left alone, and nothing changes outside the main thread or before the server is started.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

__all__ = ["exit_on_termination"]

_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


def _exit(signum: int, frame: FrameType | None) -> None:
    del frame
    raise SystemExit(128 + signum)


def exit_on_termination() -> list[int]:
    """Make SIGTERM and SIGHUP raise ``SystemExit`` where they are still at their default action.

    Returns:
        The signals changed by this call.
    """
    if threading.current_thread() is not threading.main_thread():
        return []
    changed = []
    for signum in _SIGNALS:
        if signal.getsignal(signum) is signal.SIG_DFL:
            signal.signal(signum, _exit)
            changed.append(int(signum))
    return changed
