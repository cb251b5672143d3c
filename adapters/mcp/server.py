"""The MCP server: memstrata's memory tools and a summary resource, bound to one scope.

The scope (user, agent, session) is fixed when the server is built, from the command line or
configuration: no tool has a user argument, so a client (or a prompt injected into it) can only
ever reach the memories of the user the server was started for.
"""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from memstrata.errors import InvalidInput
from memstrata.memory import Memory
from memstrata.memory_tools import (
    ForgetArguments,
    MemoryTool,
    RecentArguments,
    SaveArguments,
    SearchArguments,
    ToolName,
    memory_tools,
)
from memstrata.schemas import Scope
from pydantic import BaseModel, Field

__all__ = ["SUMMARY_URI", "create_mcp_server", "summary_text"]

SUMMARY_URI = "memstrata://summary"
"""The resource holding the user's running summary."""


def _describe(model: type[BaseModel], field: str) -> str:
    return str(model.model_fields[field].description)


def create_mcp_server(memory: Memory, *, scope: Scope, allow_forget: bool = True) -> MCPServer:
    """An MCP server with the tools ``search_memory``, ``save_memory``, ``recent_memory`` and
    (unless ``allow_forget`` is False) ``forget_memory``, and the resource ``memstrata://summary``.

    Args:
        memory: the memory served (a model is not needed: nothing here generates text).
        scope: whose memory, bound for the server's lifetime.
        allow_forget: offer ``forget_memory`` (deletes the user's memories by id).

    Returns:
        The server; run it with ``server.run("stdio")`` or ``server.run("streamable-http", ...)``.
    """
    names: list[ToolName] = ["search_memory", "save_memory", "recent_memory"]
    if allow_forget:
        names.append("forget_memory")
    tools = {t.name: t for t in memory_tools(memory, scope=scope, tools=names)}
    server = MCPServer(
        "memstrata",
        instructions=(
            f"Long-term memory of user {scope.user_id!r}: search it before answering questions about "
            "the user's past, and save facts worth remembering."
        ),
    )

    def search_memory(
        query: Annotated[str, Field(description=_describe(SearchArguments, "query"))],
        k: Annotated[int, Field(description=_describe(SearchArguments, "k"))] = 5,
    ) -> str:
        return _run(tools["search_memory"], query=query, k=k)

    def save_memory(text: Annotated[str, Field(description=_describe(SaveArguments, "text"))]) -> str:
        return _run(tools["save_memory"], text=text)

    def recent_memory(
        limit: Annotated[int, Field(description=_describe(RecentArguments, "limit"))] = 10,
    ) -> str:
        return _run(tools["recent_memory"], limit=limit)

    def forget_memory(ids: Annotated[list[str], Field(description=_describe(ForgetArguments, "ids"))]) -> str:
        return _run(tools["forget_memory"], ids=ids)

    for function in (search_memory, save_memory, recent_memory, forget_memory):
        if function.__name__ in tools:
            server.add_tool(function, description=tools[function.__name__].description)

    @server.resource(SUMMARY_URI, name="summary", description="The running summary of the user's memory.")
    def summary() -> str:
        return summary_text(memory, scope=scope)

    return server


def _run(tool: MemoryTool, **arguments: object) -> str:
    try:
        return tool(**arguments)
    except InvalidInput as exc:
        raise ToolError(str(exc)) from exc


def summary_text(memory: Memory, *, scope: Scope) -> str:
    """The user's summary stack as text, oldest period first (a placeholder when there is none)."""
    summaries = memory.summaries(scope=scope)
    if not summaries:
        return f"No summary of {scope.user_id} yet: summaries are written as conversations grow."
    return "\n\n".join(f"[{s.occurred_at:%Y-%m-%d}] {s.text}" for s in summaries)
