"""A private embedded PostgreSQL the fault harness may SIGKILL (``bench faults --kill-server``).

The server runs in the harness's scratch directory, never in the user's data dir: killing a
server other processes use would break them. A kill is a crash of the whole server (the
postmaster and every backend, SIGKILL at once, as a power cut would end them without the disk
cache); the restart runs PostgreSQL's crash recovery from its write-ahead log.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from memstrata.adapters.postgres import EmbeddedPostgres
from memstrata.adapters.postgres.pgdata import postmaster_pid
from memstrata.errors import StoreUnavailable

__all__ = ["KillableServer"]

_GONE_TIMEOUT_S = 30.0


class KillableServer:
    """An embedded PostgreSQL in ``data_dir`` that :meth:`kill` crashes and :meth:`restart` revives.

    Args:
        data_dir: a scratch directory (not under root's home).
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server = EmbeddedPostgres(data_dir)
        self.url = ""
        self.kills = 0

    def start(self) -> str:
        """Start the server; returns its URL (the same after every restart)."""
        self.url = self._server.start()
        return self.url

    def kill(self) -> int:
        """SIGKILL the postmaster and all its processes; returns how many were killed.

        Raises:
            StoreUnavailable: the server is not running, or its processes outlived the kill.
        """
        import psutil

        pid = postmaster_pid(self._server.pgdata)
        if pid is None or pid <= 0:
            raise StoreUnavailable(f"no embedded server runs in {self._server.pgdata}")
        postmaster = psutil.Process(pid)
        victims = [postmaster, *postmaster.children(recursive=True)]
        for process in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
        _, alive = psutil.wait_procs(victims, timeout=_GONE_TIMEOUT_S)
        if alive:
            raise StoreUnavailable(f"embedded server processes outlived SIGKILL: {[p.pid for p in alive]}")
        # Forget the dead server without pgserver's stop (which would signal a reused pid).
        self._server._abandon()
        self._server = EmbeddedPostgres(self.data_dir)
        self.kills += 1
        return len(victims)

    def restart(self) -> str:
        """Start the server again after :meth:`kill` (crash recovery runs); returns its URL.

        Raises:
            StoreUnavailable: it did not come back.
        """
        deadline = time.monotonic() + _GONE_TIMEOUT_S
        while True:
            try:
                url = self._server.start()
                break
            except StoreUnavailable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        if url != self.url:
            raise StoreUnavailable(f"the restarted server moved: {url} (was {self.url})")
        return url

    def stop(self) -> None:
        """Stop the server (the harness is its only user)."""
        self._server.stop()
