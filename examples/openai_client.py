"""An unmodified OpenAI client talking to ``memstrata serve``.

The server (started here in-process on a free port; ``memstrata serve`` runs the same app) answers
``/v1/chat/completions`` from the user's memory with the default local model. The client only
sets ``base_url`` and ``api_key``, a key bound to the user (``memstrata keys create --user ...``);
the conversation is told on one session and asked about on another (``X-Memstrata-Session``),
streaming included. Run: ``python examples/openai_client.py``.
"""

from __future__ import annotations

import uuid

import openai
from memstrata import MemoryConfig, PlannerConfig, RecallConfig, Scope
from memstrata.adapters.defaults import open_memory
from memstrata.adapters.llamacpp import LlamaCppChatModel
from memstrata.adapters.postgres import PostgresEpisodeStore
from memstrata.adapters.postgres.api_keys import ApiKeys
from memstrata.adapters.server import SESSION_HEADER, create_app
from memstrata.adapters.server.run import running_server


def main() -> None:
    user = f"example-openai-{uuid.uuid4().hex[:8]}"
    model = LlamaCppChatModel(n_ctx=2048, n_threads=1)
    config = MemoryConfig(
        planner=PlannerConfig(reserve_tokens=32, memory_budget=300), recall=RecallConfig(k=5)
    )
    with open_memory(model=model, config=config) as memory, running_server(create_app(memory)) as url:
        assert isinstance(memory.store, PostgresEpisodeStore)
        keys = ApiKeys(memory.store.pool, schema=memory.store.schema)
        _, secret = keys.create(user_id=user, name="examples/openai_client.py")
        try:
            client = openai.OpenAI(base_url=f"{url}/v1", api_key=secret)
            told = client.chat.completions.create(
                model="local",
                messages=[{"role": "user", "content": "My bike is a green Bianchi with a broken bell."}],
                max_tokens=32,
                extra_headers={SESSION_HEADER: "tuesday"},
            )
            print("tuesday> My bike is a green Bianchi with a broken bell.")
            print("server>", told.choices[0].message.content)

            stream = client.chat.completions.create(
                model="local",
                messages=[{"role": "user", "content": "What colour is my bike?"}],
                max_tokens=32,
                stream=True,
                extra_headers={SESSION_HEADER: "saturday"},
            )
            pieces = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
            print("saturday> What colour is my bike?")
            print("server (streamed)>", "".join(pieces))

            again = client.chat.completions.create(
                model="local",
                messages=[{"role": "user", "content": "Which bike brand do I ride?"}],
                max_tokens=32,
                extra_headers={SESSION_HEADER: "saturday"},
            )
            accounting = (again.model_extra or {})["memstrata"]
            print("server>", again.choices[0].message.content, "| memory used:", accounting)
            told_on_tuesday = {
                str(e.id) for e in memory.store.scan(Scope(user_id=user), session_id="tuesday") if "Bianchi" in e.text
            }
            assert told_on_tuesday & set(accounting["recalled"]), "the fact from Tuesday was not recalled"
            turns = [e.text for e in memory.store.scan(Scope(user_id=user), session_id="saturday")]
            assert len(turns) == 4 and turns[1] == ("".join(pieces).strip() or "(no answer)")  # all recorded
            print("ok")
        finally:
            memory.forget(scope=Scope(user_id=user))
            keys.forget_user(user)


if __name__ == "__main__":
    main()
