"""``memstrata mcp --user ID`` end to end through the official MCP client over stdio, on the real
PostgreSQL: initialize, list the tools, save a fact, find it again (also from a later server
start), and never reach another user's memories."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.types import CallToolResult, TextContent, TextResourceContents

pytestmark = [pytest.mark.postgres]

FACT = "Ada's cabin wifi password is maple-7731."


def server(user: str, dsn: str, *extra: str) -> StdioServerParameters:
    found = shutil.which("memstrata", path=str(Path(sys.executable).parent))
    assert found, "the memstrata script is not installed beside this Python"
    env = {**os.environ, "MEMSTRATA_DATABASE_URL": dsn, "ORT_DISABLE_TELEMETRY": "1"}
    return StdioServerParameters(command=found, args=["mcp", "--user", user, *extra], env=env)


def text(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


async def session_calls(
    params: StdioServerParameters, calls: list[tuple[str, dict[str, Any]]]
) -> dict[str, Any]:
    """Start the server, initialize, list tools, run ``calls`` in order and read the summary."""
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        init = await session.initialize()
        tools = await session.list_tools()
        results = [await session.call_tool(name, arguments) for name, arguments in calls]
        summary = await session.read_resource("memstrata://summary")
    return {"init": init, "tools": tools.tools, "results": results, "summary": summary}


def run(params: StdioServerParameters, calls: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    return asyncio.run(asyncio.wait_for(session_calls(params, calls), timeout=180))


def test_round_trip_save_then_search_scoped_to_the_user(postgres_dsn: str) -> None:
    first = run(
        server("ada", postgres_dsn),
        [("save_memory", {"text": FACT}), ("search_memory", {"query": "cabin wifi password"})],
    )
    assert first["init"].server_info.name == "memstrata"
    by_name = {t.name: t for t in first["tools"]}
    assert set(by_name) == {"search_memory", "save_memory", "recent_memory", "forget_memory"}
    assert by_name["search_memory"].input_schema["required"] == ["query"]
    for tool in by_name.values():  # the user is the server's, never an argument
        assert "user" not in " ".join(tool.input_schema.get("properties", {}))
    saved, found = first["results"]
    assert not saved.is_error and re.fullmatch(r"Saved memory [0-9a-f-]{36}\.", text(saved))
    assert "maple-7731" in text(found)
    summary = first["summary"].contents[0]
    assert isinstance(summary, TextResourceContents) and "No summary of ada yet" in summary.text

    # A later start (a new session) finds it; another user's server does not; bad arguments are
    # a tool error, not a crash; Ada's forget_memory with the saved id removes it.
    fact_id = text(saved).removeprefix("Saved memory ").rstrip(".")
    other = run(
        server("grace", postgres_dsn, "--no-forget"),
        [("search_memory", {"query": "cabin wifi password maple-7731"}), ("search_memory", {"query": ""})],
    )
    assert {t.name for t in other["tools"]} == {"search_memory", "save_memory", "recent_memory"}
    assert "maple" not in text(other["results"][0])
    assert other["results"][1].is_error and "query" in text(other["results"][1])

    later = run(
        server("ada", postgres_dsn),
        [
            ("search_memory", {"query": "What is the wifi password at the cabin?"}),
            ("forget_memory", {"ids": [fact_id]}),
            ("search_memory", {"query": "cabin wifi password"}),
        ],
    )
    found_later, forgot, after = later["results"]
    assert "maple-7731" in text(found_later)
    assert text(forgot) == "Forgot 1 memory."
    assert "maple" not in text(after)
