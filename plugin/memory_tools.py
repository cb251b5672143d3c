"""Memory tools an agent calls itself: search, save, recent and (opt-in) forget, bound to one scope.

The scope is bound when the tools are built and is never a tool argument: whatever a model (or a
prompt injected into it) puts in a call, a tool reads and writes only its own user's memories.
Each tool is a plain callable with a JSON schema for its arguments (OpenAI function format), so any
framework can offer it; ``memstrata.adapters.langchain.memory_tools`` wraps the same tools for
LangChain and ``memstrata mcp`` serves them over the Model Context Protocol.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from memstrata.errors import InvalidInput
from memstrata.memory import Memory
from memstrata.schemas import Episode, Scope, Turn
from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "DEFAULT_TOOLS",
    "SAVED_KEY",
    "MemoryTool",
    "ToolName",
    "memory_tools",
]

ToolName = Literal["search_memory", "save_memory", "recent_memory", "forget_memory"]

DEFAULT_TOOLS: tuple[ToolName, ...] = ("search_memory", "save_memory")
"""What :func:`memory_tools` builds unless asked: forgetting must be asked for by name."""

SAVED_KEY = "memstrata.saved_by"
"""Metadata key marking an episode written by ``save_memory`` (its value: the tool's name)."""

_SNIPPET_CHARS = 600  # one recalled memory as a tool shows it: enough for a fact, short for a small window


class _Arguments(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SearchArguments(_Arguments):
    query: str = Field(min_length=1, max_length=2000, description="What to look for, in plain words.")
    k: int = Field(default=5, ge=1, le=20, description="How many memories to return at most.")


class SaveArguments(_Arguments):
    text: str = Field(
        min_length=1, max_length=4000, description="The fact to remember, as one self-contained sentence."
    )


class RecentArguments(_Arguments):
    limit: int = Field(default=10, ge=1, le=100, description="How many of the latest turns to return.")


class ForgetArguments(_Arguments):
    ids: list[uuid.UUID] = Field(
        min_length=1, max_length=100, description="Ids of memories to delete, as search_memory shows them."
    )


@dataclass(frozen=True)
class MemoryTool:
    """One memory tool: a name, a description for the model, a JSON schema and the function.

    Call it with keyword arguments (``tool(query="...")``) or with a model's arguments as a dict or
    JSON text (``tool.call('{"query": "..."}')``); both validate the arguments first.

    Raises:
        InvalidInput: arguments that do not match :attr:`parameters` (nothing is read or written).
    """

    name: ToolName
    description: str
    arguments: type[BaseModel]
    run: Callable[[Any], str] = field(repr=False)

    @property
    def parameters(self) -> dict[str, Any]:
        """The JSON schema of the arguments."""
        schema = self.arguments.model_json_schema()
        schema.pop("title", None)
        return schema

    def openai_tool(self) -> dict[str, Any]:
        """The tool in OpenAI's function-calling format (also what LangChain's ``bind_tools`` takes)."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    def __call__(self, **arguments: Any) -> str:
        return self.call(arguments)

    def call(self, arguments: Mapping[str, Any] | str) -> str:
        """Run the tool on a model's arguments (a dict, or JSON text as OpenAI sends them)."""
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError as exc:
                raise InvalidInput(f"{self.name}: the arguments are not JSON ({exc.msg})") from None
        if not isinstance(arguments, Mapping):
            raise InvalidInput(f"{self.name}: the arguments must be a JSON object")
        try:
            parsed = self.arguments.model_validate(dict(arguments))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "arguments"
            raise InvalidInput(f"{self.name}: {where}: {first['msg']}") from None
        return self.run(parsed)


def memory_tools(
    memory: Memory, *, scope: Scope, tools: Sequence[ToolName] = DEFAULT_TOOLS
) -> list[MemoryTool]:
    """The memory tools for one scope, in the order asked.

    Args:
        memory: the memory the tools read and write.
        scope: whose memories: bound here, never an argument the model could change. Saved facts
            go to ``scope.session_id``; search and forget cover every session of the user and agent.
        tools: which tools to build; ``forget_memory`` lets the model delete memories by id, so it
            is only built when named.

    Returns:
        The tools, each a :class:`MemoryTool`.

    Raises:
        InvalidInput: an unknown tool name.
    """
    builders: dict[str, Callable[[Memory, Scope], MemoryTool]] = {
        "search_memory": _search_tool,
        "save_memory": _save_tool,
        "recent_memory": _recent_tool,
        "forget_memory": _forget_tool,
    }
    unknown = [t for t in tools if t not in builders]
    if unknown:
        raise InvalidInput(f"unknown memory tools {unknown}; known: {sorted(builders)}")
    return [builders[t](memory, scope) for t in dict.fromkeys(tools)]


def _search_tool(memory: Memory, scope: Scope) -> MemoryTool:
    def run(args: SearchArguments) -> str:
        hits = memory.recall(args.query, scope=scope, k=args.k)
        return _listing([h.episode for h in hits], empty="No memories match.")

    return MemoryTool(
        "search_memory",
        "Search your long-term memory of this user (every earlier conversation) for facts relevant to a query.",
        SearchArguments,
        run,
    )


def _save_tool(memory: Memory, scope: Scope) -> MemoryTool:
    def run(args: SaveArguments) -> str:
        turn = Turn(role="assistant", content=args.text.strip(), metadata={SAVED_KEY: "save_memory"})
        stored = memory.add([turn], scope=scope)
        return f"Saved memory {stored[0].id}."

    return MemoryTool(
        "save_memory",
        "Save a fact about this user to long-term memory, to find it again in a later conversation.",
        SaveArguments,
        run,
    )


def _recent_tool(memory: Memory, scope: Scope) -> MemoryTool:
    def run(args: RecentArguments) -> str:
        return _listing(memory.recent(scope=scope, limit=args.limit), empty="No turns yet.")

    return MemoryTool(
        "recent_memory",
        "The latest turns of the current conversation, oldest first.",
        RecentArguments,
        run,
    )


def _forget_tool(memory: Memory, scope: Scope) -> MemoryTool:
    def run(args: ForgetArguments) -> str:
        deleted = memory.forget(scope=scope, ids=list(dict.fromkeys(args.ids)))
        return f"Forgot {deleted} memor{'y' if deleted == 1 else 'ies'}."

    return MemoryTool(
        "forget_memory",
        "Delete memories of this user by id (ids as search_memory shows them), with anything summarized from them.",
        ForgetArguments,
        run,
    )


def _listing(episodes: Sequence[Episode], *, empty: str) -> str:
    """One line per memory: id, date, who said it, text (cut to a snippet)."""
    if not episodes:
        return empty
    lines = []
    for episode in episodes:
        who = episode.role or episode.kind.value
        text = " ".join(episode.text.split())
        if len(text) > _SNIPPET_CHARS:
            text = text[: _SNIPPET_CHARS - 1] + "…"
        lines.append(f"[{episode.id}] {episode.occurred_at:%Y-%m-%d} {who}: {text}")
    return "\n".join(lines)
