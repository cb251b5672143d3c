"""DSN passwords never show: not in errors (message, repr, cause, context, traceback), not in the
store's repr, not in logs (psycopg's and memstrata's, at DEBUG), not in exports, not in the
server's error responses, not in what the ``memstrata`` CLI prints for a bad
``MEMSTRATA_DATABASE_URL``. Real sockets: a closed port, an unresolvable host, a real server."""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from memstrata import Memory, MemoryConfig
from memstrata.adapters.postgres import PostgresEpisodeStore
from memstrata.adapters.postgres.dsn import redact_dsn, scrub
from memstrata.adapters.server import create_app
from memstrata.errors import StoreUnavailable
from memstrata.schemas import Scope
from memstrata.testing import HashingEmbedder, ScriptedChatModel
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from .hostile import scaled

SECRET = "Tr0ub4dor-xyzzy-9"
SEPARATED = "Tr0ub4dor/xyzzy?9#q"  # URL separators unencoded: libpq misreads the URL
URL_SPECIAL = "p@ss:w%zz rd'\\"  # '@', ':', a bad percent escape, a space, a quote, a backslash


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def chain(exc: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in found:
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


def exposed(exc: BaseException) -> str:
    """Everything an exception shows: str and repr of its whole chain, and its traceback."""
    texts = [text for e in chain(exc) for text in (str(e), repr(e))]
    return "\n".join([*texts, *traceback.format_exception(exc)])


def assert_hidden(secret: str, text: str) -> None:
    """Neither the password nor any 4+ character piece of it between URL separators is shown."""
    pieces = {secret} | {p for p in re.split(r"[/?#@:,&=\s]+", secret) if len(p) >= 4}
    for piece in pieces:
        assert piece not in text, f"{piece!r} leaked in: {text[:2000]}"


def unreachable_dsns(password: str) -> list[str]:
    port = closed_port()
    escaped = password.replace("\\", "\\\\").replace("'", "\\'")
    return [
        f"postgresql://bob:{quote(password, safe='')}@127.0.0.1:{port}/app?connect_timeout=2",
        f"postgresql://bob:{password}@127.0.0.1:{port}/app",  # as a user would paste it, unencoded
        f"postgresql://bob@127.0.0.1:{port}/app?password={quote(password, safe='')}",
        f"postgres://bob:{quote(password, safe='')}@no-such-host.invalid/app",
        f"host=127.0.0.1 port={port} user=bob password='{escaped}' connect_timeout=2",
        f"host=127.0.0.1 port={port} user=bob password='{escaped}",  # the quote never closed
        f"postgresql://bob:{quote(password, safe='')}@[::1/app",  # a malformed URL, echoed by libpq
    ]


@pytest.mark.parametrize("password", [SECRET, SEPARATED, URL_SPECIAL])
def test_a_failed_connection_never_shows_the_password(
    password: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for dsn in unreachable_dsns(password):
        with (
            pytest.raises(StoreUnavailable) as caught,
            PostgresEpisodeStore.from_conn_string(dsn, dimensions=8, timeout=2),
        ):
            pass
        assert "cannot connect to" in str(caught.value)
        assert_hidden(password, exposed(caught.value))
        assert_hidden(password, redact_dsn(dsn))
    assert_hidden(password, caplog.text)


passwords = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=6, max_size=24).map(
    lambda p: "Zq8" + p
)


@given(password=passwords)
@scaled(0.5)
def test_redaction_hides_any_printable_password(password: str) -> None:
    """Whatever a password holds (URL separators, quotes, '%', '@'), the redacted DSN and a
    message quoting the raw DSN or the password never show it."""
    for dsn in unreachable_dsns(password):
        assert_hidden(password, redact_dsn(dsn))
        assert_hidden(password, scrub(f"failed for {dsn} ({password})", dsn))


@pytest.fixture(scope="module")
def secret_dsns(postgres_dsn: str) -> list[tuple[str, str]]:
    """(dsn, password) pairs that reach the test database: a password is added when it has none
    (the embedded server trusts its Unix socket and ignores it)."""
    given_password = conninfo_to_dict(postgres_dsn).get("password")
    if given_password:
        return [(postgres_dsn, str(given_password))]
    keyword_form = make_conninfo(postgres_dsn, password=SECRET)
    forms = [(keyword_form, SECRET)]
    if postgres_dsn.startswith("postgresql://postgres:@"):
        forms.append(
            (postgres_dsn.replace("postgres:@", f"postgres:{quote(SEPARATED, safe='')}@", 1), SEPARATED)
        )
    return forms


@pytest.fixture
def broken_memory(secret_dsns: list[tuple[str, str]]) -> Iterator[tuple[Memory, str]]:
    """A memory over a store opened with a password, whose pool is closed: every call fails."""
    dsn, password = secret_dsns[0]
    upstream = ScriptedChatModel(lambda _: "ok", context_window=1024)
    with PostgresEpisodeStore.from_conn_string(dsn, dimensions=8, schema="secrets") as store:
        store.setup()
        memory = Memory(store, HashingEmbedder(8), model=upstream, config=MemoryConfig())
        scope = Scope(user_id=f"secrets-{uuid.uuid4().hex[:8]}")
        memory.add([{"role": "user", "content": "my database is safe"}], scope=scope)
        assert_hidden(password, repr(store) + repr(memory) + "".join(memory.export(scope=scope)))
        memory.forget(scope=scope)
    yield memory, password


@pytest.mark.postgres
def test_a_working_store_never_shows_the_password(
    secret_dsns: list[tuple[str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for dsn, password in secret_dsns:
        with PostgresEpisodeStore.from_conn_string(dsn, dimensions=8, schema="secrets") as store:
            store.setup()
            scope = Scope(user_id="secrets")
            memory = Memory(store, HashingEmbedder(8), token_counter=ScriptedChatModel([]).token_counter,
                            config=MemoryConfig(context_window=2048))  # fmt: skip
            memory.add([{"role": "user", "content": "hello"}], scope=scope)
            shown = [
                repr(store),
                repr(memory),
                *memory.export(scope=scope),
                repr(memory.context("hi", scope=scope)),
            ]
            memory.forget(scope=scope)
        assert_hidden(password, "\n".join(shown))
        with pytest.raises(StoreUnavailable) as caught:  # the pool is closed now
            store.scan(scope)
        assert_hidden(password, exposed(caught.value))
    assert_hidden(SECRET, caplog.text)
    assert_hidden(SEPARATED, caplog.text)


@pytest.mark.postgres
def test_server_errors_never_show_the_password(
    broken_memory: tuple[Memory, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    memory, password = broken_memory
    with TestClient(create_app(memory, trust_user_header=True), raise_server_exceptions=False) as http:
        for stream in (False, True):
            response = http.post(
                "/v1/chat/completions",
                json={
                    "model": "m",
                    "user": "u",
                    "stream": stream,
                    "messages": [{"role": "user", "content": "hi"}],
                },
            )
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "store_unavailable"
            assert_hidden(password, response.text)
    assert_hidden(password, caplog.text)


def memstrata_command() -> str:
    found = shutil.which("memstrata", path=str(Path(sys.executable).parent))
    assert found, "the memstrata console script is not installed next to this Python"
    return found


@pytest.mark.slow
def test_the_cli_never_prints_a_bad_database_urls_password() -> None:
    """``memstrata serve`` (upstream given, so no model loads) with an unreachable database: it
    fails at start-up, and nothing it prints (uvicorn's traceback included) shows the password."""
    password = SEPARATED  # unencoded, as users paste it: the hardest to mask
    url = f"postgresql://bob:{password}@127.0.0.1:{closed_port()}/app"
    env = {**os.environ, "MEMSTRATA_DATABASE_URL": url, "ORT_DISABLE_TELEMETRY": "1"}
    args = ["serve", "--port", str(closed_port()), "--upstream-url", f"http://127.0.0.1:{closed_port()}",
            "--n-ctx", "512"]  # fmt: skip
    done = subprocess.run(
        [memstrata_command(), *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "cannot connect to postgresql://bob:***@127.0.0.1" in output, output[-3000:]
    assert_hidden(password, output)
