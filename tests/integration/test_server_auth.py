"""API keys in front of ``memstrata serve``'s app, on the real PostgreSQL store: every ``/v1``
endpoint refuses callers without a valid key, and no key ever reads another tenant's memory.

The upstream model echoes its whole prompt, so any episode memory put into the prompt shows in
the answer: a secret of one tenant appearing in another tenant's answer would be a leak.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from memstrata import Memory, MemoryConfig
from memstrata.adapters.postgres import PostgresEpisodeStore
from memstrata.adapters.postgres.api_keys import ApiKeys
from memstrata.adapters.server import USER_HEADER, create_app
from memstrata.errors import ConfigError, InvalidInput
from memstrata.schemas import ChatMessage, Scope
from memstrata.schemas.config import CompressionConfig, PlannerConfig
from memstrata.testing import HashingEmbedder, InMemoryEpisodeStore, ScriptedChatModel

pytestmark = pytest.mark.postgres

DIMENSIONS = 32
CONFIG = MemoryConfig(planner=PlannerConfig(reserve_tokens=32), compression=CompressionConfig(enabled=False))
SECRET = "locker code zebra-7731"


def echo(messages: Sequence[ChatMessage]) -> str:
    # One line, so no stop string (e.g. "\nNotes from") cuts the echo short and hides a leak.
    return " | ".join(m.content.replace("\n", " / ") for m in messages)


@pytest.fixture(scope="module")
def store(postgres_dsn: str) -> Iterator[PostgresEpisodeStore]:
    with PostgresEpisodeStore.from_conn_string(
        postgres_dsn, dimensions=DIMENSIONS, schema="server_auth"
    ) as s:
        s.setup()
        yield s


@pytest.fixture(scope="module")
def memory(store: PostgresEpisodeStore) -> Memory:
    model = ScriptedChatModel(echo, context_window=4096)
    return Memory(store, HashingEmbedder(DIMENSIONS), model=model, config=CONFIG)


@pytest.fixture(scope="module")
def keys(store: PostgresEpisodeStore) -> ApiKeys:
    return ApiKeys(store.pool, schema=store.schema)


@pytest.fixture(scope="module")
def http(memory: Memory) -> Iterator[TestClient]:
    with TestClient(create_app(memory), raise_server_exceptions=False) as client:
        yield client


def tenant() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def ask(http: TestClient, secret: str | None, text: str, user: str | None = None, **extra: Any) -> Any:
    # The echo is cut at max_tokens: leave it room to show the whole prompt.
    body: dict[str, Any] = {
        "model": "m",
        "messages": [{"role": "user", "content": text}],
        "max_tokens": 2000,
        **extra,
    }
    if user is not None:
        body["user"] = user
    return http.post("/v1/chat/completions", json=body, headers=bearer(secret) if secret else {})


def stored(memory: Memory, user: str) -> list[str]:
    return [e.text for e in memory.store.scan(Scope(user_id=user))]


def test_every_v1_endpoint_needs_a_valid_key(http: TestClient, keys: ApiKeys, memory: Memory) -> None:
    _, revoked = keys.create(tenant=tenant())
    key = keys.verify(revoked)
    assert key is not None and keys.revoke(key.id)
    assert isinstance(http.app, FastAPI)
    routes = [r for r in http.app.routes if isinstance(r, APIRoute) and r.path.startswith("/v1/")]
    assert {r.path for r in routes} == {"/v1/models", "/v1/chat/completions"}
    user = f"u-{uuid.uuid4().hex[:8]}"
    for route in routes:
        for headers in ({}, bearer("msk_nope_guess"), bearer(revoked), {"Authorization": "Basic eDp5"}):
            for method in route.methods or ():
                body = {"model": "m", "user": user, "messages": [{"role": "user", "content": SECRET}]}
                response = http.request(method, route.path, json=body, headers=headers)
                assert response.status_code == 401, (route.path, headers, response.text)
                assert response.json()["error"]["code"] == "invalid_api_key"
                assert response.headers["www-authenticate"] == "Bearer"
    assert stored(memory, user) == []
    assert http.get("/healthz").status_code == 200  # health stays open: it shows no user data


def test_no_tenant_reads_another(http: TestClient, keys: ApiKeys, memory: Memory) -> None:
    acme, other = tenant(), tenant()
    _, acme_key = keys.create(tenant=acme)
    _, other_key = keys.create(tenant=other)
    told = ask(http, acme_key, f"Remember my {SECRET}.", user="alice")
    assert told.status_code == 200, told.text
    assert stored(memory, f"{acme}:alice")[0] == f"Remember my {SECRET}."
    leaks = 0
    for stream in (False, True):
        for user in ("alice", "bob"):
            response = ask(http, other_key, "What is my locker code zebra?", user=user, stream=stream)
            assert response.status_code == 200, response.text
            leaks += "7731" in response.text
        for named in (f"{acme}:alice", f"{acme}:alice:x", ":alice"):  # naming into another tenant
            response = ask(http, other_key, "What is my locker code zebra?", user=named, stream=stream)
            assert response.status_code == 403, response.text
            assert response.json()["error"]["code"] == "forbidden_user"
            leaks += "7731" in response.text
    assert leaks == 0
    # the owner's tenant key does recall it (so the probe above could have found it)
    own = ask(http, acme_key, "What is my locker code zebra?", user="alice")
    assert "7731" in own.json()["choices"][0]["message"]["content"]
    assert own.json()["memstrata"]["scope"] == f"{acme}:alice/default/default"


def test_a_user_key_acts_for_its_user_only(http: TestClient, keys: ApiKeys, memory: Memory) -> None:
    acme = tenant()
    _, alice_key = keys.create(user_id=f"{acme}:alice")
    _, bob_key = keys.create(user_id=f"{acme}:bob")
    assert ask(http, alice_key, f"My {SECRET}.").status_code == 200  # no user named: the key's
    assert ask(http, alice_key, "again", user=f"{acme}:alice").status_code == 200
    assert stored(memory, f"{acme}:alice")[::2] == [f"My {SECRET}.", "again"]
    for named in ("alice", f"{acme}:bob", "bob"):
        refused = ask(http, alice_key, "hi", user=named)
        assert refused.status_code == 403, refused.text
    header = http.post(
        "/v1/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "code?"}]},
        headers={**bearer(alice_key), USER_HEADER: f"{acme}:bob"},
    )
    assert header.status_code == 403
    bob = ask(http, bob_key, "What is my locker code zebra?")
    assert bob.status_code == 200 and "7731" not in bob.text
    assert stored(memory, f"{acme}:bob")[0] == "What is my locker code zebra?"


def test_a_tenant_key_must_name_a_user(http: TestClient, keys: ApiKeys) -> None:
    _, key = keys.create(tenant=tenant())
    response = ask(http, key, "hi")
    assert response.status_code == 400 and response.json()["error"]["code"] == "missing_user"
    assert http.get("/v1/models", headers=bearer(key)).status_code == 200


def test_keys_are_stored_hashed_and_revocable(
    store: PostgresEpisodeStore, keys: ApiKeys, http: TestClient
) -> None:
    key, secret = keys.create(user_id="hashed-user", name="note")
    with store.pool.connection() as conn:
        rows = conn.execute("SELECT * FROM server_auth.api_keys WHERE id = %s", (key.id,)).fetchall()
    # msk_<id>_<random part>: the random part may itself hold "_" (URL-safe base64), so split twice only.
    assert len(rows) == 1 and secret not in repr(rows) and secret.split("_", 2)[2] not in repr(rows)
    assert keys.verify(secret) == key
    assert ask(http, secret, "hello").status_code == 200
    assert keys.revoke(key.id) and not keys.revoke(key.id)
    assert keys.verify(secret) is None
    assert ask(http, secret, "hello").status_code == 401
    assert key.id in [k.id for k in keys.list(include_revoked=True)]
    assert key.id not in [k.id for k in keys.list()]
    with pytest.raises(InvalidInput):
        keys.create(tenant="a:b")
    with pytest.raises(InvalidInput):
        keys.create(user_id="u", tenant="t")
    with pytest.raises(InvalidInput):
        keys.create()


def test_trusting_the_header_is_an_opt_in_with_a_warning(
    memory: Memory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with TestClient(create_app(memory, trust_user_header=True)) as client:
        assert ask(client, None, "hi", user=f"gw-{uuid.uuid4().hex[:6]}").status_code == 200
    assert "trusts the X-Memstrata-User header" in caplog.text
    in_memory = Memory(InMemoryEpisodeStore(DIMENSIONS), HashingEmbedder(DIMENSIONS), model=memory.model)
    with pytest.raises(ConfigError, match="keys"):
        create_app(in_memory)


def test_keys_command(postgres_dsn: str, keys: ApiKeys) -> None:
    from memstrata.adapters.cli.app import register_commands
    from typer.testing import CliRunner

    cli, runner = register_commands(), CliRunner()
    where = ["--dsn", postgres_dsn, "--schema", "server_auth"]
    created = runner.invoke(cli, ["keys", "create", "--user", "cli-user", "--name", "laptop", *where])
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip().splitlines()[-1]
    found = keys.verify(secret)
    assert found is not None and found.user_id == "cli-user" and found.name == "laptop"
    listed = runner.invoke(cli, ["keys", "list", *where])
    assert found.id in listed.stdout and secret not in listed.stdout
    assert runner.invoke(cli, ["keys", "revoke", found.id, *where]).exit_code == 0
    assert keys.verify(secret) is None
    assert runner.invoke(cli, ["keys", "revoke", found.id, *where]).exit_code == 1
    both = runner.invoke(cli, ["keys", "create", "--user", "u", "--tenant", "t", *where])
    assert both.exit_code == 2 and "exactly one" in both.stderr
