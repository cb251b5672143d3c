"""``memstrata mcp --user ID``: one user's memory as a Model Context Protocol server.

The user is fixed here (``--user`` or ``MEMSTRATA_MCP_USER``), never by a tool argument. Memory is
``open_memory()``'s (``MEMSTRATA_DATABASE_URL`` or the embedded PostgreSQL) without a chat model:
the tools only search, save, list and forget, so only the tokenizer is loaded.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import typer
from memstrata.adapters.cli.app import app
from memstrata.adapters.extras import require
from memstrata.errors import MemstrataError
from memstrata.schemas import Scope
from pydantic import ValidationError

__all__ = ["mcp"]


@app.command()
def mcp(
    user: Annotated[
        str,
        typer.Option(envvar="MEMSTRATA_MCP_USER", help="Whose memory: every tool works on this user only."),
    ],
    agent: Annotated[
        str, typer.Option(help="The agent id: separate memories for separate assistants.")
    ] = "default",
    session: Annotated[
        str | None, typer.Option(help="The session saved memories go to (default: a new one per start).")
    ] = None,
    transport: Annotated[
        str, typer.Option(help="stdio (for a client that starts the server) or streamable-http.")
    ] = "stdio",
    host: Annotated[
        str, typer.Option(help="Address for streamable-http (no authentication: keep it local).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port for streamable-http.")] = 8765,
    forget: Annotated[bool, typer.Option(help="Offer the forget_memory tool.")] = True,
) -> None:
    """Serve one user's memory over the Model Context Protocol (tools: search, save, recent, forget)."""
    if transport not in ("stdio", "streamable-http"):
        typer.echo(
            f"memstrata mcp: --transport must be stdio or streamable-http, not {transport!r}", err=True
        )
        raise typer.Exit(2)
    try:
        scope = Scope(
            user_id=user,
            agent_id=agent,
            session_id=session or f"mcp-{datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}",
        )
    except ValidationError as exc:
        typer.echo(f"memstrata mcp: bad scope: {exc.errors()[0]['msg']}", err=True)
        raise typer.Exit(2) from exc
    try:
        require("mcp", extra="mcp", purpose="memstrata mcp")
        from memstrata.adapters.defaults import open_memory
        from memstrata.adapters.mcp import create_mcp_server

        with open_memory(with_model=False) as memory:
            server = create_mcp_server(memory, scope=scope, allow_forget=forget)
            if transport == "stdio":
                server.run("stdio")
            else:
                kind: Literal["streamable-http"] = "streamable-http"
                typer.echo(f"memstrata mcp: http://{host}:{port}/mcp (user {user})", err=True)
                server.run(kind, host=host, port=port)
    except MemstrataError as exc:
        typer.echo(f"memstrata mcp: {exc}", err=True)
        raise typer.Exit(2) from exc
