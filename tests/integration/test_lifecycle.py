"""Start-up and shutdown as a user meets them: the embedded server is stopped by the last process
using it on SIGTERM, SIGHUP and Ctrl-C (``memstrata serve`` included); failed starts are one line
and a non-zero exit, with no banner; bad ids are errors, not defaults."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from .test_postgres_embedded import accepts, start_process, wait_until_down

pytestmark = pytest.mark.postgres


def memstrata() -> str:
    found = shutil.which("memstrata", path=str(Path(sys.executable).parent))
    assert found is not None
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_the_last_process_stops_the_server_on_a_signal(postgres_test_root: Path, signum: int) -> None:
    data = postgres_test_root / f"signal-{signum}"
    owner = start_process(data, "hold")
    assert owner.stdout is not None
    url = owner.stdout.readline().strip()
    assert accepts(url)
    owner.send_signal(signum)
    owner.communicate(timeout=60)
    assert owner.returncode != 0
    assert wait_until_down(url), f"signal {signum} left the embedded server running"


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serve_stops_the_embedded_server_on_sigterm_and_sigint(postgres_test_root: Path, signum: int) -> None:
    data, port = postgres_test_root / f"serve-{signum}", free_port()
    env = {**os.environ, "MEMSTRATA_DATA_DIR": str(data), "ORT_DISABLE_TELEMETRY": "1"}
    env.pop("MEMSTRATA_DATABASE_URL", None)
    args = ["serve", "--port", str(port), "--upstream-url", "http://127.0.0.1:9", "--n-ctx", "4096"]
    with subprocess.Popen([memstrata(), *args], env=env, stderr=subprocess.PIPE, text=True) as server:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()["ready"]:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.3)
        pid_file = data / "postgres" / "postmaster.pid"
        postmaster = int(pid_file.read_text().split()[0])
        server.send_signal(signum)
        server.communicate(timeout=60)
    deadline = time.monotonic() + 15
    while Path(f"/proc/{postmaster}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not Path(f"/proc/{postmaster}").exists(), "memstrata serve left its embedded server running"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [memstrata(), *args], env={**os.environ, "ORT_DISABLE_TELEMETRY": "1", **(env or {})},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


@pytest.mark.slow
def test_failed_starts_are_one_line_without_a_banner(postgres_dsn: str) -> None:
    upstream = ["--upstream-url", "http://127.0.0.1:9", "--n-ctx", "4096"]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        busy = run("serve", "--port", port, *upstream, env={"MEMSTRATA_DATABASE_URL": postgres_dsn})
    bad_dsn = run("serve", "--port", str(free_port()), *upstream,
                  env={"MEMSTRATA_DATABASE_URL": "postgresql://bob:pw@127.0.0.1:1/x"})  # fmt: skip
    for done, says in (
        (busy, "cannot listen on 127.0.0.1"),
        (bad_dsn, "cannot connect to postgresql://bob:***@"),
    ):
        assert done.returncode == 2, done.stderr
        output = (done.stdout + done.stderr).strip()
        assert "\n" not in output, output
        assert output.startswith(f"memstrata serve: {says}"), output
        assert "/v1 (OpenAI-compatible" not in output  # no banner


def test_an_empty_chat_user_is_an_error() -> None:
    done = run("chat", "--user", "")
    assert done.returncode == 2
    assert done.stderr.strip() == "memstrata chat: --user: Value error, must not be empty or blank"
