"""Hostile requests to ``memstrata serve``'s app (in-process, a scripted upstream model), on the
in-memory store and on the real PostgreSQL store: every request is answered (and recorded exactly
as sent) or refused with a 4xx JSON error in OpenAI's shape, recording nothing. The upstream's own
answer is hostile input too: one that cannot be stored is a 502, with nothing recorded.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import event, given
from hypothesis import strategies as st
from memstrata import Memory, MemoryConfig
from memstrata.adapters.postgres import PostgresEpisodeStore
from memstrata.adapters.server import SESSION_HEADER, USER_HEADER, create_app
from memstrata.ports import EpisodeStore
from memstrata.schemas import Episode, Scope
from memstrata.schemas.config import CompressionConfig, PlannerConfig
from memstrata.testing import HashingEmbedder, InMemoryEpisodeStore, ScriptedChatModel
from pydantic import ValidationError

from .hostile import (
    BAD_CHARS,
    clean_text,
    hostile_roles,
    hostile_text,
    scaled,
    sql_text,
    storable_metadata,
    timestamp_strings,
)

DIMENSIONS = 16
ANSWER = "Noted: ' OR 1=1; -- $$ \\ %s"
# The reserve holds any scripted reply whole (the scripted model cuts replies at max_tokens, as a real one).
CONFIG = MemoryConfig(planner=PlannerConfig(reserve_tokens=256), compression=CompressionConfig(enabled=False))
JSON = {"content-type": "application/json"}


class Upstream:
    """A scripted upstream whose next answer a test can set."""

    def __init__(self) -> None:
        self.reply = ANSWER
        self.model = ScriptedChatModel(lambda _: self.reply, context_window=2048)


@pytest.fixture(scope="module")
def upstream() -> Upstream:
    return Upstream()


@pytest.fixture(scope="module", params=["in-memory", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest) -> Iterator[EpisodeStore]:
    if request.param == "in-memory":
        yield InMemoryEpisodeStore(DIMENSIONS)
        return
    dsn: str = request.getfixturevalue("postgres_dsn")
    with PostgresEpisodeStore.from_conn_string(dsn, dimensions=DIMENSIONS, schema="hostile_http") as postgres:
        postgres.setup()
        yield postgres


@pytest.fixture(scope="module")
def memory(store: EpisodeStore, upstream: Upstream) -> Memory:
    return Memory(store, HashingEmbedder(DIMENSIONS), model=upstream.model, config=CONFIG)


@pytest.fixture(scope="module")
def http(memory: Memory, upstream: Upstream) -> Iterator[TestClient]:
    app = create_app(memory, upstream=upstream.model, trust_user_header=True)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def post(http: TestClient, body: Any, headers: dict[str, Any] | None = None) -> Any:
    """POST a body as JSON (non-ASCII escaped, so lone surrogates travel as ``\\ud800``)."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return http.post("/v1/chat/completions", content=raw, headers={**JSON, **(headers or {})})


def assert_json_error(response: Any, *statuses: int) -> dict[str, Any]:
    assert response.status_code in statuses, response.text[:500]
    assert response.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    return error


def scope_of(user: Any, session: str = "default") -> Scope | None:
    try:
        return Scope(user_id=user, session_id=session)
    except (ValidationError, TypeError):
        return None


def stored(memory: Memory, scope: Scope | None) -> list[Episode]:
    return memory.store.scan(scope) if scope is not None else []


def answer_text(response: Any, stream: bool) -> str:
    if not stream:
        return str(response.json()["choices"][0]["message"]["content"])
    events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]", response.text[-500:]
    chunks = [json.loads(e) for e in events[:-1]]
    return "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])


content = st.one_of(
    hostile_text,
    st.lists(st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url"]), "text": hostile_text})),
    st.none(),
    st.integers(),
    st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
)
extras = st.dictionaries(
    st.sampled_from(["occurred_at", "metadata", "idempotency_key", "refusal", "speaker", "tool_call_id"]),
    st.one_of(timestamp_strings, storable_metadata, hostile_text, st.none()),
    max_size=2,
)
hostile_message = st.builds(
    lambda role, body, name, extra: {**extra, "role": role, "content": body, **name},
    hostile_roles,
    content,
    st.one_of(st.just({}), st.builds(lambda n: {"name": n}, hostile_text)),
    extras,
)
plain_message = st.builds(
    lambda role, text, name: {"role": role, "content": text, **name},
    st.sampled_from(["user", "user", "system"]),
    st.one_of(clean_text, sql_text, st.text(st.characters(), max_size=12)),
    st.one_of(st.just({}), st.builds(lambda n: {"name": n}, sql_text)),
)


@given(
    user=st.one_of(clean_text, hostile_text, st.none(), st.integers()),
    messages=st.one_of(
        st.lists(plain_message, min_size=1, max_size=3), st.lists(hostile_message, min_size=1, max_size=3)
    ),
    options=st.fixed_dictionaries(
        {},
        optional={
            "stream": st.booleans(),
            "max_tokens": st.one_of(st.none(), st.integers(-3, 10**6)),
            "temperature": st.one_of(st.none(), st.floats()),
            "n": st.integers(0, 3),
        },
    ),
)
@scaled(1.0)
def test_requests_are_answered_and_recorded_exactly_or_refused_with_json(
    http: TestClient, memory: Memory, user: Any, messages: list[dict[str, Any]], options: dict[str, Any]
) -> None:
    scope = scope_of(user)
    before = stored(memory, scope)
    response = post(http, {"model": "m", "user": user, "messages": messages, **options})
    event(f"HTTP {response.status_code}")
    try:
        if response.status_code != 200:
            assert_json_error(response, 400)
            assert stored(memory, scope) == before, "a refused request recorded something"
            return
        assert scope is not None
        stream = bool(options.get("stream"))
        assert answer_text(response, stream).strip() == ANSWER
        rows = stored(memory, scope)[len(before) :]
        assert [e.text for e in rows][-1] == ANSWER and rows[-1].role == "assistant"
        if all(m.get("role") in ("user", "system") and isinstance(m.get("content"), str) for m in messages):
            users = [m for m in messages if m["role"] == "user"]
            assert [(e.role, e.text) for e in rows[:-1]] == [
                ("user", m["content"] if m["content"].strip() else "(no answer)") for m in users
            ]
            assert [e.speaker for e in rows[:-1]] == [m.get("name") for m in users]
    finally:
        if scope is not None:
            memory.forget(scope=scope)


_bodies = [
    b"",
    b"{",
    b"null",
    b"[]",
    b'"text"',
    b"\xff\xfe\x00",
    b'{"model": "m", "user": "u", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    b'{"model": "m", "user": "u", "messages": [{"role": "user", "content": "\\ud800"}]}',
    b'{"model": "m", "user": "u\\u0000", "messages": [{"role": "user", "content": "x"}]}',
    b'{"model": "m", "user": "u", "temperature": NaN, "messages": [{"role": "user", "content": "x"}]}',
    b'{"model": "m", "user": "u", "messages": [{"role": "user", "content": "x", "metadata": '
    + b'{"a": ' * 40
    + b"1"
    + b"}" * 40
    + b"}]}",
    # one 1,000,001-byte word: few tokens, so the model answers, and then the store refuses it
    json.dumps(
        {"model": "m", "user": "u", "messages": [{"role": "user", "content": "a" * 1_000_001}]}
    ).encode(),
    json.dumps(
        {"model": "m", "user": "u", "messages": [{"role": "user", "content": "ab " * 50_000}]}
    ).encode(),
]


@pytest.mark.parametrize("raw", _bodies, ids=range(len(_bodies)))
def test_malformed_bodies_are_400_json(http: TestClient, memory: Memory, raw: bytes) -> None:
    assert_json_error(post(http, raw), 400)
    assert stored(memory, Scope(user_id="u")) == []


ascii_text = st.one_of(sql_text.filter(str.isascii), st.text(st.characters(max_codepoint=127), max_size=12))


@given(user=ascii_text, session=ascii_text, text=clean_text)
@scaled(0.5)
def test_hostile_scope_headers(http: TestClient, memory: Memory, user: str, session: str, text: str) -> None:
    """ASCII only: the test client re-encodes other header bytes (a real server gets Latin-1)."""
    headers = {USER_HEADER: user.encode(), SESSION_HEADER: session.encode()}
    scope = scope_of(user, session or "default")
    response = post(http, {"model": "m", "messages": [{"role": "user", "content": text}]}, headers)
    try:
        if scope is None:
            assert_json_error(response, 400)
            return
        assert response.status_code == 200, response.text[:300]
        assert response.json()["memstrata"]["scope"] == str(scope)
        assert [e.text for e in stored(memory, scope)] == [text, ANSWER]
    finally:
        if scope is not None:
            memory.forget(scope=scope)


@given(
    reply=st.one_of(hostile_text, st.sampled_from([f"answer {c} here" for c in BAD_CHARS])),
    stream=st.booleans(),
)
@scaled(0.5)
def test_an_upstream_answer_that_cannot_be_stored_is_a_502_and_records_nothing(
    http: TestClient, memory: Memory, upstream: Upstream, reply: str, stream: bool
) -> None:
    scope = Scope(user_id=f"upstream-'{uuid.uuid4().hex[:8]}")
    upstream.reply = reply
    try:
        body = {
            "model": "m",
            "user": scope.user_id,
            "stream": stream,
            "messages": [{"role": "user", "content": "hi"}],
        }
        response = post(http, body)
        storable = not any(c in reply for c in BAD_CHARS) and not any(
            0xD800 <= ord(c) <= 0xDFFF for c in reply
        )
        if storable:
            assert response.status_code == 200
            assert [e.text for e in stored(memory, scope)] == ["hi", reply.strip() or "(no answer)"]
        elif stream and response.status_code == 200:  # the stream had started: an error event ends it
            error = json.loads(response.text.strip().splitlines()[-1].removeprefix("data: "))["error"]
            assert error["type"] == "upstream_error" and stored(memory, scope) == []
        else:
            assert assert_json_error(response, 502)["type"] == "upstream_error"
            assert stored(memory, scope) == []
    finally:
        upstream.reply = ANSWER
        memory.forget(scope=scope)
