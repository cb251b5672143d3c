"""The documented recipe "an OpenAI-compatible provider + your own Postgres" (docs/models.md), run
with exactly its environment variables in a fresh process: ``open_memory()`` then chats through the
server, recalls from the database, and gets JSON-schema output in the configured JSON mode.

The provider is llama-cpp-python's own OpenAI-compatible server (the ``server_url`` fixture of
test_openai_compat.py) serving the default model; the database is the tests' PostgreSQL, reached
by DSN as any user's own would be.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.integration.test_openai_compat import N_CTX, server_url

pytestmark = [pytest.mark.model, pytest.mark.postgres]
__all__ = ["server_url"]  # the fixture, imported for use here

RECIPE = """
import json, uuid
from memstrata import Scope, open_memory
from memstrata.schemas import ChatMessage

schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
with open_memory() as memory:
    scope = Scope(user_id=f"recipe-{uuid.uuid4().hex[:8]}")
    try:
        memory.add([{"role": "user", "content": "My gym locker code is 4417."},
                    {"role": "assistant", "content": "Noted."}], scope=scope)
        reply = memory.chat("What is my gym locker code?", scope=Scope(user_id=scope.user_id, session_id="later"))
        prompt = "\\n".join(m.content for m in reply.plan.messages)
        answer = memory.model.complete(
            [ChatMessage(role="user", content="Reply with a JSON object whose city is Paris.")],
            max_tokens=24, json_schema=schema)
        print(json.dumps({
            "model": type(memory.model).__name__, "window": memory.window,
            "json": json.loads(answer.text),
            "recalled": "4417" in prompt,
        }))
    finally:
        memory.forget(scope=scope)
"""


def run_recipe(env: dict[str, str]) -> dict[str, object]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MEMSTRATA_")}
    done = subprocess.run(
        [sys.executable, "-c", RECIPE],
        env={**clean, "ORT_DISABLE_TELEMETRY": "1", **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_openai_compatible_provider_with_your_own_postgres(server_url: str, postgres_dsn: str) -> None:
    # json_object: llama.cpp's servers. OpenAI and vLLM take json_schema, which llama-cpp-python's
    # server rejects (HTTP 500, "Input should be 'text' or 'json_object'"); the setting reaching the
    # model is checked in tests/unit/test_model_settings.py.
    env = {
        "MEMSTRATA_DATABASE_URL": postgres_dsn,
        "MEMSTRATA_MODEL_URL": f"{server_url}/v1",
        "MEMSTRATA_MODEL_NAME": "smollm2-135m",
        "MEMSTRATA_API_KEY": "sk-recipe-test",
        "MEMSTRATA_MODEL_N_CTX": str(N_CTX),
        "MEMSTRATA_MODEL_JSON_MODE": "json_object",
    }
    result = run_recipe(env)
    assert result["model"] == "OpenAICompatibleChatModel"
    assert result["window"] == N_CTX
    assert isinstance(result["json"], dict) and isinstance(result["json"].get("city"), str)
    assert result["recalled"] is True  # the fact reached the provider's prompt from Postgres
