"""``memstrata chat`` in a real terminal (pexpect): it remembers across restarts, and its slash
commands show, export and forget what it remembers. Real model, real PostgreSQL."""

from __future__ import annotations

import json
import os
import shutil
import sys
import uuid
from pathlib import Path

import pexpect
import pytest
from memstrata.adapters.postgres import PostgresEpisodeStore
from memstrata.schemas import Scope

pytestmark = [pytest.mark.postgres, pytest.mark.model, pytest.mark.slow]

PROMPT = "you>"
FACT = "My favourite colour is teal-octarine."


def memstrata_command() -> str:
    found = shutil.which("memstrata", path=str(Path(sys.executable).parent))
    assert found, "the memstrata console script is not installed next to this Python"
    return found


def start(user: str, dsn: str, tmp_path: Path) -> pexpect.spawn[str]:
    env = {
        **os.environ,
        "MEMSTRATA_DATABASE_URL": dsn,
        "TERM": "dumb",
        "COLUMNS": "200",
        "ORT_DISABLE_TELEMETRY": "1",
    }
    args = ["chat", "--user", user, "--n-ctx", "1024", "--threads", "1", "--max-tokens", "12"]
    child = pexpect.spawn(
        memstrata_command(), args, env=env, cwd=str(tmp_path), encoding="utf-8", timeout=180
    )
    child.expect(PROMPT)
    return child


def say(child: pexpect.spawn[str], line: str, *expected: str) -> str:
    child.sendline(line)
    for pattern in expected:
        child.expect_exact(pattern)
    child.expect_exact(PROMPT)
    return str(child.before)


def test_chat_remembers_across_restarts(postgres_dsn: str, tmp_path: Path) -> None:
    user = f"chat-{uuid.uuid4().hex[:8]}"
    first = start(user, postgres_dsn, tmp_path)
    say(first, FACT, "memstrata>")
    say(first, "/plan", "memory budget")
    first.sendline("/quit")
    first.expect(pexpect.EOF)

    second = start(user, postgres_dsn, tmp_path)  # a new process and a new session
    say(second, "/recall favourite colour", "memories for", "teal-octarine")
    say(second, "What is my favourite colour?", "memstrata>")
    say(second, "/recall", "recalled for the last answer:", "teal-octarine")
    export = tmp_path / "mine.jsonl"
    say(second, f"/export {export}", "exported")
    lines = [json.loads(line) for line in export.read_text().splitlines()]
    assert any("teal-octarine" in line["text"] for line in lines)
    assert {line["scope"]["user_id"] for line in lines} == {user}
    assert len({line["scope"]["session_id"] for line in lines}) == 2  # two sessions, one memory
    second.sendline("/forget")
    second.expect_exact("[y/N]")
    say(second, "y", "forgot")
    say(second, "/recall favourite colour", "nothing recalled")
    say(second, "/help", "/export")
    second.sendline("/quit")
    second.expect(pexpect.EOF)
    second.close()
    assert second.exitstatus == 0

    with PostgresEpisodeStore.from_conn_string(postgres_dsn, dimensions=384) as store:
        assert store.scan(Scope(user_id=user)) == []
