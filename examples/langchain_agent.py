"""A LangChain v1 agent with long-term memory, fully offline.

``create_agent(model, tools, middleware=[MemstrataMiddleware(memory)])`` on the default local model
(SmolLM2-135M through ``ChatMemstrataLlamaCpp``, exact token counts) and the embedded PostgreSQL
(or ``MEMSTRATA_DATABASE_URL``). On Monday the user tells the agent a fact, then 50+ more turns
follow; on Friday, in another session, the agent is asked about it. The middleware recalls the
fact from Monday's session into Friday's prompt (checked below on the prompt the model received).

A 135M model's answers are not a quality bar (it may garble the number); what this shows is that
the fact reaches the model through a budgeted prompt. Run: ``python examples/langchain_agent.py``.
"""

from __future__ import annotations

import uuid
from typing import Any

from langchain.agents import create_agent
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.tools import tool
from memstrata import CompressionConfig, MemoryConfig, PlannerConfig, RecallConfig, Scope
from memstrata.adapters.defaults import open_memory
from memstrata.adapters.langchain import ChatMemstrataLlamaCpp, MemstrataMiddleware

FACT = "My gym locker code is 4417, please remember it."
QUESTION = "What is my gym locker code?"
FILLER = [
    ("Can you suggest a quick breakfast?", "Oatmeal with banana takes five minutes."),
    ("What is a good name for a goldfish?", "How about Bubbles?"),
    ("How long should I boil an egg?", "About nine minutes for a hard-boiled egg."),
    ("Recommend a podcast about history.", "Try a long-form history podcast series."),
    ("What's the capital of Canada?", "Ottawa."),
    ("How do I say thank you in Italian?", "Grazie."),
    ("Any tip for sleeping better?", "Keep a regular bedtime and a dark room."),
    ("What should I pack for a day hike?", "Water, snacks, a map and a rain jacket."),
    ("How many minutes in a day?", "1440 minutes."),
    ("Suggest a board game for four people.", "Ticket to Ride works well for four."),
    ("What's a synonym for happy?", "Cheerful."),
    ("How do I water a cactus?", "Rarely: soak the soil, then let it dry completely."),
    ("Is tomato a fruit?", "Botanically, yes."),
]


class PromptRecorder(BaseCallbackHandler):
    """Keeps the messages every chat-model call received (a LangChain callback, no mocking)."""

    def __init__(self) -> None:
        self.prompts: list[list[BaseMessage]] = []

    def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[BaseMessage]], **_: Any
    ) -> None:
        self.prompts.extend(messages)


@tool
def days_until_weekend(today: str) -> str:
    """How many days are left until Saturday, given today's weekday name."""
    order = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
    index = order.index(today.strip().lower()) if today.strip().lower() in order else 0
    return str(max(0, 5 - index))


def main() -> None:
    user = f"example-agent-{uuid.uuid4().hex[:8]}"
    # One thread is often faster on a busy small CPU; short answers keep the example quick.
    model = ChatMemstrataLlamaCpp(n_ctx=2048, n_threads=1, max_tokens=40)
    # Small-model settings: a few recalled memories (a 135M model loses track in a long list),
    # memory capped at 400 tokens per prompt, and old turns folded into summaries only once they
    # pass the whole window (the default is half), which keeps this example fast on a small CPU.
    config = MemoryConfig(
        planner=PlannerConfig(reserve_tokens=40, memory_budget=400),
        recall=RecallConfig(k=6),
        compression=CompressionConfig(threshold=1.0),
    )
    with open_memory(model=model.llm, config=config) as memory:
        middleware = MemstrataMiddleware(memory)
        agent = create_agent(model, [days_until_weekend], middleware=[middleware])
        try:
            monday = {"configurable": {"user_id": user, "thread_id": "monday"}}
            first = agent.invoke({"messages": [{"role": "user", "content": FACT}]}, monday)
            print(f"monday> {FACT}\nagent> {first['messages'][-1].text}")
            turns: list[dict[str, str]] = []
            for i in range(26):  # 52 more turns in Monday's session, after the fact
                asked, answered = FILLER[i % len(FILLER)]
                turns += [{"role": "user", "content": asked}, {"role": "assistant", "content": answered}]
            memory.add(turns, scope=Scope(user_id=user, session_id="monday"))
            print(f"(+{len(turns)} more turns on Monday)")

            recorder = PromptRecorder()
            friday = {"configurable": {"user_id": user, "thread_id": "friday"}, "callbacks": [recorder]}
            answer = agent.invoke({"messages": [{"role": "user", "content": QUESTION}]}, friday)
            print(f"friday> {QUESTION}\nagent> {answer['messages'][-1].text}")

            assert middleware.last_plan is not None
            print(middleware.last_plan.explain())
            seen = "\n".join(m.text for m in recorder.prompts[0])
            assert "4417" in seen, "the fact from Monday's session did not reach the model"
            print("ok: the fact from 52+ turns earlier, in another session, was in the model's prompt")
        finally:
            memory.forget(scope=Scope(user_id=user))


if __name__ == "__main__":
    main()
