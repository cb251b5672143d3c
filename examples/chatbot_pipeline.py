"""Memory around a plain chatbot function: ``with_memory(call_model, memory, scope)``.

``call_model`` is any function from OpenAI-style messages to an answer; here it calls
llama-cpp-python's OpenAI-like ``create_chat_completion`` on the default local model directly.
``with_memory`` hands it memstrata's budgeted prompt and records each exchange, so a fact told in
one session is in the prompt of another. Run: ``python examples/chatbot_pipeline.py``.
"""

from __future__ import annotations

import uuid
from typing import Any

from memstrata import MemoryConfig, PlannerConfig, RecallConfig, Scope
from memstrata.adapters.defaults import open_memory
from memstrata.adapters.llamacpp import LlamaCppChatModel
from memstrata.adapters.openai_pipeline import with_memory


def main() -> None:
    user = f"example-pipeline-{uuid.uuid4().hex[:8]}"
    model = LlamaCppChatModel(n_ctx=2048, n_threads=1)

    def call_model(messages: list[dict[str, Any]]) -> Any:
        # Any function from OpenAI messages to an answer (str, message dict or completion dict).
        return model.llama.create_chat_completion(messages=messages, max_tokens=32, temperature=0.0)

    config = MemoryConfig(
        planner=PlannerConfig(reserve_tokens=32, memory_budget=300), recall=RecallConfig(k=5)
    )
    with open_memory(model=model, config=config) as memory:
        try:
            morning = with_memory(call_model, memory, Scope(user_id=user, session_id="morning"))
            for text in ["Hi! My daughter Lena turns seven on the 14th of March.", "Can you suggest a cake?"]:
                reply = morning([{"role": "user", "content": text}])
                print(f"morning> {text}\nbot> {reply['content']}")

            evening = with_memory(call_model, memory, Scope(user_id=user, session_id="evening"))
            question = "When is Lena's birthday?"
            reply = evening(
                [
                    {"role": "system", "content": "Answer in one short sentence."},
                    {"role": "user", "content": question},
                ]
            )
            print(f"evening> {question}\nbot> {reply['content']}")

            prompt = evening.last_prompt
            assert prompt is not None
            assert prompt.messages[0].content == "Answer in one short sentence."  # the caller's system prompt
            assert "14th of March" in prompt.messages[-1].content, "the morning's fact is not in the prompt"
            print(prompt.plan.explain())
            stored = memory.store.scan(Scope(user_id=user))
            assert len(stored) == 6  # three exchanges, user and assistant turns
            print("ok")
        finally:
            memory.forget(scope=Scope(user_id=user))
            model.close()


if __name__ == "__main__":
    main()
