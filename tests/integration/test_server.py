"""``memstrata serve``'s app against an unmodified OpenAI client, on the real default model and
the embedded PostgreSQL. Failures are real too: a closed port upstream, a closed database pool."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest
from fastapi.testclient import TestClient
from memstrata import Memory, MemoryConfig, PlannerConfig, RecallConfig, Scope
from memstrata.adapters.defaults import open_memory
from memstrata.adapters.llamacpp import LlamaCppChatModel
from memstrata.adapters.openai_compat import OpenAICompatibleChatModel
from memstrata.adapters.postgres import PostgresEpisodeStore
from memstrata.adapters.server import SESSION_HEADER, USER_HEADER, create_app
from memstrata.adapters.server.run import running_server
from openai.types.chat import ChatCompletionMessageParam

pytestmark = [pytest.mark.postgres, pytest.mark.model]

CONFIG = MemoryConfig(planner=PlannerConfig(reserve_tokens=16, memory_budget=300), recall=RecallConfig(k=5))


@pytest.fixture(scope="module")
def llm() -> Iterator[LlamaCppChatModel]:
    with LlamaCppChatModel(n_ctx=1024, n_threads=1) as model:
        yield model


@pytest.fixture(scope="module")
def memory(postgres_dsn: str, llm: LlamaCppChatModel) -> Iterator[Memory]:
    with open_memory(dsn=postgres_dsn, model=llm, config=CONFIG) as opened:
        yield opened


@pytest.fixture(scope="module")
def client(memory: Memory) -> Iterator[openai.OpenAI]:
    with running_server(create_app(memory, trust_user_header=True)) as url:
        yield openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


def new_user() -> str:
    return f"server-{uuid.uuid4().hex[:10]}"


def texts(memory: Memory, user: str) -> list[str]:
    return [e.text for e in memory.store.scan(Scope(user_id=user))]


def test_answers_and_records_with_exact_prompt_counts(client: openai.OpenAI, memory: Memory) -> None:
    user = new_user()
    reply = client.chat.completions.create(
        model="anything",
        messages=[{"role": "user", "content": "My bike is green."}],
        user=user,
        max_tokens=12,
    )
    answer = reply.choices[0].message.content
    assert isinstance(answer, str) and answer.strip()
    assert reply.usage is not None and 0 < reply.usage.completion_tokens <= 12
    accounting = (reply.model_extra or {})["memstrata"]
    assert accounting["prompt_tokens"] == reply.usage.prompt_tokens  # counted here = evaluated by llama.cpp
    assert accounting["scope"] == f"{user}/default/default"
    assert texts(memory, user) == ["My bike is green.", answer.strip()]


def test_streaming_in_openai_chunks(client: openai.OpenAI, memory: Memory) -> None:
    user = new_user()
    stream = client.chat.completions.create(
        model="anything",
        messages=[{"role": "user", "content": "Say hello to Porto."}],
        user=user,
        max_tokens=12,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert texts(memory, user) == ["Say hello to Porto.", content.strip() or "(no answer)"]


def test_header_scope_and_session(client: openai.OpenAI, memory: Memory) -> None:
    user = new_user()
    client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "Remember: the wifi password is lemon-42."}],
        max_tokens=8,
        extra_headers={USER_HEADER: user, SESSION_HEADER: "kitchen"},
    )
    stored = memory.store.scan(Scope(user_id=user))
    assert {e.scope.session_id for e in stored} == {"kitchen"}


def test_users_never_see_each_others_memories(client: openai.OpenAI, memory: Memory) -> None:
    alice, bob = new_user(), new_user()
    client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "My locker code is zebra-7731."}],
        user=alice,
        max_tokens=8,
    )
    asked = client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "What is my locker code zebra?"}],
        user=bob,
        max_tokens=8,
    )
    alice_ids = {str(e.id) for e in memory.store.scan(Scope(user_id=alice))}
    assert not alice_ids & set((asked.model_extra or {})["memstrata"]["recalled"])
    plan = memory.context("locker code zebra-7731", scope=Scope(user_id=bob))
    assert "7731" not in "\n".join(m.content for m in plan.messages[:-1])
    # ...while Alice's own next question recalls it.
    again = client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "What is my locker code?"}],
        user=alice,
        max_tokens=8,
        extra_headers={SESSION_HEADER: "later"},
    )
    assert alice_ids & set((again.model_extra or {})["memstrata"]["recalled"])


def test_missing_user_is_a_400_with_an_openai_error(client: openai.OpenAI, memory: Memory) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=4)
    body = caught.value.body
    assert isinstance(body, dict) and body["code"] == "missing_user" and body["param"] == "user"
    assert "user" in body["message"]


def test_bad_requests_are_400_json(memory: Memory) -> None:
    user = new_user()
    with TestClient(create_app(memory, trust_user_header=True)) as http:
        cases = [
            {"model": "m", "user": user},  # no messages
            {"model": "m", "user": user, "messages": [{"role": "robot", "content": "beep"}]},
            {"model": "m", "user": user, "messages": [{"role": "user", "content": "hi"}], "n": 2},
            {"model": "m", "user": user, "messages": [{"role": "assistant", "content": "done"}]},
            {"model": "m", "user": user, "messages": [{"role": "user", "content": "x"}], "max_tokens": 0},
        ]
        for body in cases:
            response = http.post("/v1/chat/completions", json=body)
            assert response.status_code == 400, body
            assert set(response.json()["error"]) == {"message", "type", "param", "code"}
        long_text = "word " * 3000
        response = http.post(
            "/v1/chat/completions",
            json={"model": "m", "user": user, "messages": [{"role": "user", "content": long_text}]},
        )
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "context_length_exceeded"
        assert http.get("/healthz").json()["status"] == "ok"
        assert http.get("/v1/models").json()["data"][0]["owned_by"] == "memstrata"
    assert texts(memory, user) == []


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_upstream_down_is_a_502_and_stores_nothing(memory: Memory, llm: LlamaCppChatModel) -> None:
    dead = OpenAICompatibleChatModel(
        f"http://127.0.0.1:{closed_port()}",
        model="gone",
        context_window=1024,
        token_counter=llm.token_counter,
        max_retries=0,
        timeout_s=5,
    )
    user = new_user()
    body = {"model": "m", "user": user, "messages": [{"role": "user", "content": "hello?"}], "max_tokens": 8}
    with TestClient(create_app(memory, upstream=dead, trust_user_header=True)) as http:
        for stream in (False, True):
            response = http.post("/v1/chat/completions", json={**body, "stream": stream})
            assert response.status_code == 502
            error = json.loads(response.text)["error"]
            assert error["type"] == "upstream_error" and error["code"] == "upstream_failed"
    assert texts(memory, user) == []


def test_store_down_is_a_503(postgres_dsn: str, llm: LlamaCppChatModel, memory: Memory) -> None:
    with PostgresEpisodeStore.from_conn_string(postgres_dsn, dimensions=memory.embedder.dimensions) as store:
        broken = Memory(store, memory.embedder, model=llm, config=CONFIG)
    # The store's pool is closed now: every operation fails the way an unreachable database does.
    with TestClient(create_app(broken, trust_user_header=True)) as http:
        response = http.post(
            "/v1/chat/completions",
            json={"model": "m", "user": new_user(), "messages": [{"role": "user", "content": "hi"}]},
        )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "store_unavailable"


def test_concurrent_streams_and_completions(client: openai.OpenAI, memory: Memory) -> None:
    """Streams read on their own threads: requests served meanwhile never see the model as busy
    re-entered, and every exchange is recorded once."""
    users = [new_user() for _ in range(6)]

    def ask(index: int) -> str:
        message: list[ChatCompletionMessageParam] = [{"role": "user", "content": f"Count to {index + 2}."}]
        completions, user = client.chat.completions, users[index]
        if index % 2:
            reply = completions.create(model="m", user=user, max_tokens=8, messages=message)
            return reply.choices[0].message.content or ""
        stream = completions.create(model="m", user=user, max_tokens=8, messages=message, stream=True)
        return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(ask, range(6)))
    for user, answer in zip(users, answers, strict=True):
        assert texts(memory, user)[1] == (answer.strip() or "(no answer)")


@pytest.mark.slow
def test_memstrata_serve_command(postgres_dsn: str, memory: Memory, tmp_path: Path) -> None:
    """The `memstrata serve` console command, as a user starts it, answers an OpenAI client."""
    port = closed_port()
    command = shutil.which("memstrata", path=str(Path(sys.executable).parent))
    assert command is not None
    env = {**os.environ, "MEMSTRATA_DATABASE_URL": postgres_dsn, "ORT_DISABLE_TELEMETRY": "1"}
    user = new_user()
    created = subprocess.run(
        [command, "keys", "create", "--user", user], env=env, capture_output=True, text=True, check=True
    )
    key = created.stdout.strip().splitlines()[-1]
    args = ["serve", "--port", str(port), "--n-ctx", "1024", "--threads", "1", "--max-tokens", "8"]
    log = tmp_path / "serve.log"
    with log.open("w") as out, subprocess.Popen([command, *args], env=env, stdout=out, stderr=out) as server:
        try:
            deadline = time.monotonic() + 180
            while True:
                assert server.poll() is None, log.read_text()[-3000:]
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()["ready"]:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, (
                    f"memstrata serve did not start:\n{log.read_text()[-3000:]}"
                )
                time.sleep(0.5)
            client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0)
            reply = client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "My kayak is orange."}]
            )
            assert reply.usage is not None and reply.usage.completion_tokens <= 8
            assert texts(memory, user)[0] == "My kayak is orange."
        finally:
            server.terminate()
            server.wait(timeout=30)


def test_requests_run_on_the_async_face_of_the_store(memory: Memory) -> None:
    """While the app runs, requests use the memory's async face on psycopg's async pool (a view of
    the memory with a twin of its Postgres store; the memory itself is left as it was)."""
    from memstrata.adapters.postgres import AsyncPostgresEpisodeStore

    user = new_user()
    app = create_app(memory, trust_user_header=True)
    with TestClient(app) as http:
        assert isinstance(app.state.memory.async_store, AsyncPostgresEpisodeStore)
        response = http.post(
            "/v1/chat/completions",
            json={
                "model": "m",
                "user": user,
                "max_tokens": 4,
                "messages": [
                    {"role": "user", "content": "The boiler was serviced in May."},
                    {"role": "assistant", "content": "Noted."},
                    {"role": "user", "content": "When was the boiler serviced?"},
                ],
            },
        )
        assert response.status_code == 200
        assert response.json()["memstrata"]["history_stored"] == 2
    assert memory.async_store is None
    stored = memory.store.scan(Scope(user_id=user), session_id="default")
    assert [e.text for e in stored][:3] == [
        "The boiler was serviced in May.",
        "Noted.",
        "When was the boiler serviced?",
    ]
