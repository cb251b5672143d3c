"""An agent that manages its memory itself, with memstrata's memory tools, fully offline.

``memory_tools(memory, scope=...)`` gives a LangChain agent ``search_memory`` and ``save_memory``,
bound to one user: no tool argument can name another user. On Monday the user asks the agent to
remember a fact and the agent saves it with ``save_memory``; on Friday, in a new session and a new
conversation, the agent finds it with ``search_memory`` and answers.

Honest about the model: SmolLM2-135M (the offline default) rarely decides by itself to call a
tool, so this example forces the tool choice per step (``ForceTool`` below: the memory tool first,
then a plain answer). The model still writes the tool arguments (grammar-constrained to the
tool's JSON schema) and the final answer; a bigger model runs the same agent without ``ForceTool``.
Run: ``python examples/agent_memory_tools.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
from langchain_core.messages import AIMessage, ToolMessage
from memstrata import Scope
from memstrata.adapters.defaults import open_memory
from memstrata.adapters.langchain import ChatMemstrataLlamaCpp, memory_tools

FACT = "Please remember this: the spare key to my bike lock is hidden under the blue flowerpot."
QUESTION = "Where is the spare key to my bike lock hidden?"
SYSTEM = "You are a helpful assistant with a long-term memory. Use your memory tools."


class ForceTool(AgentMiddleware):
    """Calls ``tool`` after the user's message and answers in plain text after its result: the
    step a bigger model takes on its own."""

    def __init__(self, tool: str) -> None:
        super().__init__()
        self.tool = tool

    def wrap_model_call(
        self, request: ModelRequest[Any], handler: Callable[[ModelRequest[Any]], ModelResponse[Any]]
    ) -> ModelResponse[Any] | AIMessage:
        answered = isinstance(request.messages[-1], ToolMessage)
        return handler(request.override(tool_choice="none" if answered else self.tool))


def tool_results(messages: list[Any], name: str) -> list[str]:
    return [m.text for m in messages if isinstance(m, ToolMessage) and m.name == name]


def main() -> None:
    user = f"example-tools-{uuid.uuid4().hex[:8]}"
    model = ChatMemstrataLlamaCpp(n_ctx=2048, n_threads=1, max_tokens=128)
    with open_memory(model=model.llm) as memory:
        try:
            monday = Scope(user_id=user, session_id="monday")
            agent = create_agent(
                model,
                memory_tools(memory, scope=monday),
                system_prompt=SYSTEM,
                middleware=[ForceTool("save_memory")],
            )
            result = agent.invoke({"messages": [{"role": "user", "content": FACT}]})
            calls = [c for m in result["messages"] if isinstance(m, AIMessage) for c in m.tool_calls]
            print(f"monday> {FACT}\nagent calls> {calls[0]['name']}({calls[0]['args']})")
            print(f"tool> {tool_results(result['messages'], 'save_memory')[0]}")
            print(f"agent> {result['messages'][-1].text}")

            # Friday: a new session and a new conversation; only the memory connects them.
            friday = Scope(user_id=user, session_id="friday")
            agent = create_agent(
                model,
                memory_tools(memory, scope=friday),
                system_prompt=SYSTEM,
                middleware=[ForceTool("search_memory")],
            )
            result = agent.invoke({"messages": [{"role": "user", "content": QUESTION}]})
            calls = [c for m in result["messages"] if isinstance(m, AIMessage) for c in m.tool_calls]
            found = tool_results(result["messages"], "search_memory")[0]
            print(f"friday> {QUESTION}\nagent calls> {calls[0]['name']}({calls[0]['args']})")
            print(f"tool>\n{found}\nagent> {result['messages'][-1].text}")
            assert "flowerpot" in found, "search_memory did not find what save_memory saved on Monday"

            # Another user's tools, on the same database, find nothing of it.
            stranger = memory_tools(memory, scope=Scope(user_id=f"{user}-other"))[0]
            assert "flowerpot" not in str(stranger.invoke({"query": "spare key bike lock flowerpot"}))
            print("ok: saved by a tool on Monday, found by a tool on Friday, invisible to another user")
        finally:
            memory.forget(scope=Scope(user_id=user))


if __name__ == "__main__":
    main()
