"""Error bodies of ``memstrata serve``'s app that name the right thing (in-process, in-memory
store, a scripted upstream with a 2,048-token window)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from memstrata import Memory, MemoryConfig
from memstrata.adapters.server import create_app
from memstrata.schemas import Scope
from memstrata.schemas.config import CompressionConfig
from memstrata.testing import HashingEmbedder, InMemoryEpisodeStore, ScriptedChatModel


@pytest.fixture(scope="module")
def memory() -> Memory:
    model = ScriptedChatModel(lambda _: "ok", context_window=2048)
    config = MemoryConfig(compression=CompressionConfig(enabled=False))
    return Memory(InMemoryEpisodeStore(16), HashingEmbedder(16), model=model, config=config)


@pytest.fixture(scope="module")
def http(memory: Memory) -> Iterator[TestClient]:
    with TestClient(create_app(memory, trust_user_header=True)) as client:
        yield client


def test_bad_json_names_no_param(http: TestClient) -> None:
    response = http.post(
        "/v1/chat/completions",
        content=b'{"model": "m", "messages": [',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] is None
    assert error["message"].startswith("invalid request: the body is not valid JSON")
    assert "at character 28" in error["message"]


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_an_answer_longer_than_the_window_names_the_field(
    http: TestClient, memory: Memory, field: str
) -> None:
    body = {
        "model": "m",
        "user": f"errors-{field}",
        "messages": [{"role": "user", "content": "hi"}],
        field: 100000,
    }
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == field and error["code"] == "context_length_exceeded"
    assert error["message"].startswith(
        f"{field}=100000 leaves no room for a prompt in the model's 2048-token window"
    )
    assert "prompt 100000" not in error["message"]
    assert memory.store.scan(Scope(user_id=f"errors-{field}")) == []
