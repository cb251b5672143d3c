"""memstrata's memory tools (:mod:`memstrata.memory_tools`) as LangChain tools.

``create_agent(model, tools=memory_tools(memory, scope=scope))`` lets an agent search and save its
user's long-term memory itself. The scope is bound here, per user (build the tools per request or
per session); no tool argument can name another user.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool, ToolException
from memstrata import Memory, Scope
from memstrata.errors import InvalidInput
from memstrata.memory_tools import DEFAULT_TOOLS, MemoryTool, ToolName
from memstrata.memory_tools import memory_tools as core_memory_tools
from pydantic import ValidationError

__all__ = ["memory_tools"]


def memory_tools(
    memory: Memory, *, scope: Scope, tools: Sequence[ToolName] = DEFAULT_TOOLS
) -> list[BaseTool]:
    """LangChain tools over :func:`memstrata.memory_tools.memory_tools` (same arguments).

    Bad arguments from the model come back to it as the tool's answer (a ``ToolException``,
    handled), so an agent can correct its call; store and model failures propagate.

    Raises:
        InvalidInput: an unknown tool name.
    """
    return [_structured(t) for t in core_memory_tools(memory, scope=scope, tools=tools)]


def _structured(tool: MemoryTool) -> StructuredTool:
    def run(**arguments: Any) -> str:
        try:
            return tool(**arguments)
        except InvalidInput as exc:
            raise ToolException(str(exc)) from exc

    return StructuredTool.from_function(
        func=run,
        name=tool.name,
        description=tool.description,
        args_schema=tool.arguments,
        handle_tool_error=True,
        handle_validation_error=_validation_message,
    )


def _validation_message(exc: ValidationError) -> str:
    """The first problem, named, for the model to correct (LangChain's default says only that
    validation failed)."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "arguments"
    return f"{where}: {first['msg']}"
