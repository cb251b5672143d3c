"""Tool calling for a local model whose chat template has no tool syntax (SmolLM2's has none).

Tools are described in the system message as text, and the model is asked to answer a tool call
with a bare JSON object ``{"name": ..., "arguments": {...}}``; earlier tool calls in the history are
written the same way into their assistant message, so the model sees one consistent format.
:func:`parse_tool_calls` reads such an object back; :func:`tool_call_schema` is the JSON schema
that forces one (grammar-constrained output) when a tool call is required.

Everything here is pure text and JSON over OpenAI-format tool definitions
(``{"type": "function", "function": {"name", "description", "parameters"}}``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from memstrata.schemas import ChatMessage

__all__ = [
    "ParsedCall",
    "forced_tool",
    "parse_tool_calls",
    "render_messages",
    "tool_call_schema",
    "tool_instructions",
    "tool_names",
]

ParsedCall = dict[str, Any]
"""``{"name": str, "args": dict, "id": str}``: one tool call read from the model's text."""

_FREE_CHOICES = frozenset({"auto", "none"})
_ANY_CHOICES = frozenset({"any", "required"})


def _function(tool: Mapping[str, Any]) -> Mapping[str, Any]:
    inner = tool.get("function")
    return inner if isinstance(inner, Mapping) else tool


def tool_names(tools: Sequence[Mapping[str, Any]]) -> list[str]:
    """The names of OpenAI-format tool definitions."""
    return [str(_function(t).get("name")) for t in tools]


def tool_instructions(tools: Sequence[Mapping[str, Any]]) -> str:
    """The system-message text that describes the tools and how to call one.

    Compact signatures (``name(city: string): description``) and one concrete example call: small
    models follow this; given the raw JSON schemas, a 135M model tends to echo them back.
    """
    lines = ["Tools you may call:"]
    for tool in tools:
        function = _function(tool)
        description = str(function.get("description") or "").strip()
        lines.append(f"- {function.get('name')}({_signature(function)}): {description}")
    first = _function(tools[0])
    example = json.dumps(
        {"name": first.get("name"), "arguments": _example_arguments(first)}, ensure_ascii=False
    )
    lines.append(f"To call one, reply with only JSON like: {example}. Otherwise answer normally.")
    return "\n".join(lines)


def _properties(function: Mapping[str, Any]) -> tuple[Mapping[str, Any], set[str]]:
    parameters = function.get("parameters")
    if not isinstance(parameters, Mapping):
        return {}, set()
    properties = parameters.get("properties")
    required = parameters.get("required")
    return (
        properties if isinstance(properties, Mapping) else {},
        set(required) if isinstance(required, list) else set(),
    )


def _type_name(schema: Any) -> str:
    if not isinstance(schema, Mapping):
        return "any"
    if isinstance(schema.get("enum"), list):
        return "|".join(json.dumps(v, ensure_ascii=False) for v in schema["enum"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return "|".join(str(k) for k in kind)
    return str(kind or "any")


def _signature(function: Mapping[str, Any]) -> str:
    properties, required = _properties(function)
    return ", ".join(
        f"{name}{'' if name in required else '?'}: {_type_name(schema)}"
        for name, schema in properties.items()
    )


def _example_arguments(function: Mapping[str, Any]) -> dict[str, Any]:
    """Placeholders a 135M model will not copy as a value: ``"..."`` for a string (``"<string>"``
    was copied verbatim), the type in angle brackets otherwise (``1`` for an integer was copied
    instead of the number asked for), an enum's first value."""
    properties, _ = _properties(function)
    example: dict[str, Any] = {}
    for name, schema in properties.items():
        if isinstance(schema, Mapping) and isinstance(schema.get("enum"), list) and schema["enum"]:
            example[name] = schema["enum"][0]
        elif isinstance(schema, Mapping) and schema.get("type") == "string":
            example[name] = "..."
        else:
            example[name] = f"<{_type_name(schema)}>"
    return example


def _call_text(message: ChatMessage) -> str:
    calls = [
        json.dumps({"name": c.name, "arguments": _loads(c.arguments)}, ensure_ascii=False)
        for c in message.tool_calls
    ]
    return "\n".join(part for part in (message.content.strip(), *calls) if part)


def _loads(text: str) -> Any:
    try:
        return json.loads(text) if text.strip() else {}
    except json.JSONDecodeError:
        return text


def render_messages(
    messages: Sequence[ChatMessage], tools: Sequence[Mapping[str, Any]] = ()
) -> list[ChatMessage]:
    """The messages as the template will see them: the tool instructions appended to the system
    message (one is added when there is none), and each assistant tool call written into its
    message's text as the JSON object the model is asked to produce."""
    rendered = [
        m.model_copy(update={"content": _call_text(m), "tool_calls": ()}) if m.tool_calls else m
        for m in messages
    ]
    if not tools:
        return rendered
    instructions = tool_instructions(tools)
    if rendered and rendered[0].role == "system":
        first = rendered[0]
        joined = f"{first.content}\n\n{instructions}" if first.content.strip() else instructions
        return [first.model_copy(update={"content": joined}), *rendered[1:]]
    return [ChatMessage(role="system", content=instructions), *rendered]


def forced_tool(tool_choice: Any, tools: Sequence[Mapping[str, Any]]) -> str | bool:
    """What ``tool_choice`` demands: a tool's name, True for "some tool", False for nothing.

    Accepts LangChain's and OpenAI's forms: ``"auto"``/``"none"``/``None`` (nothing forced),
    ``"any"``/``"required"``/``True``, a tool name, or ``{"type": "function", "function": {"name": ...}}``.
    """
    if not tools or tool_choice is None or tool_choice is False:
        return False
    if isinstance(tool_choice, Mapping):
        name = _function(tool_choice).get("name")
        return str(name) if name else True
    if tool_choice is True or tool_choice in _ANY_CHOICES:
        return True
    return False if tool_choice in _FREE_CHOICES else str(tool_choice)


def tool_call_schema(tools: Sequence[Mapping[str, Any]], forced: str | bool) -> dict[str, Any]:
    """The JSON schema of a call to ``forced`` (one tool, with its argument schema) or, for True,
    of a call to any one of ``tools`` (one alternative per tool, each with its own arguments: a
    free-form arguments object let a small model fill a no-argument call with junk)."""
    chosen = [t for t in tools if not isinstance(forced, str) or _function(t).get("name") == forced]
    if not chosen:  # a forced name that is not among the tools: the call is still that name
        return _call_schema(str(forced), None)
    variants = [_call_schema(str(_function(t).get("name")), _function(t).get("parameters")) for t in chosen]
    return variants[0] if len(variants) == 1 else {"anyOf": variants}


def _call_schema(name: str, parameters: Any) -> dict[str, Any]:
    arguments = parameters if isinstance(parameters, Mapping) and parameters else {"type": "object"}
    return {
        "type": "object",
        "properties": {"name": {"type": "string", "enum": [name]}, "arguments": _grammar_safe(arguments)},
        "required": ["name", "arguments"],
    }


_LARGE_BOUNDS = frozenset({"maxLength", "maxItems"})
_GRAMMAR_BOUND_MAX = 64


def _grammar_safe(schema: Any) -> Any:
    """``schema`` as llama.cpp's grammar can hold it: without large upper bounds (``maxLength:
    4000`` is spelled as 4,000 nested optional repetitions, which crashed the process), and with a
    small integer range as an enum (the grammar ignores ``minimum``/``maximum``, so a model asked
    for 1-20 wrote 100). The tool still checks its own arguments."""
    if isinstance(schema, Mapping):
        low, high = schema.get("minimum"), schema.get("maximum")
        if (
            schema.get("type") == "integer"
            and isinstance(low, int)
            and isinstance(high, int)
            and 0 <= high - low < _GRAMMAR_BOUND_MAX
        ):
            kept = {k: v for k, v in schema.items() if k not in ("type", "minimum", "maximum")}
            return {**kept, "enum": list(range(low, high + 1))}
        return {
            key: _grammar_safe(value)
            for key, value in schema.items()
            if not (key in _LARGE_BOUNDS and isinstance(value, int) and value > _GRAMMAR_BOUND_MAX)
        }
    if isinstance(schema, list):
        return [_grammar_safe(item) for item in schema]
    return schema


def parse_tool_calls(text: str, names: Sequence[str]) -> tuple[str, list[ParsedCall]]:
    """Read tool calls from the model's text.

    A call is a JSON object with a ``name`` among ``names`` and an ``arguments`` (or
    ``parameters``/``args``) object, anywhere in the text (code fences allowed).

    Returns:
        The text left once the calls are taken out, and the calls (ids generated), in order.
    """
    decoder = json.JSONDecoder()
    calls: list[ParsedCall] = []
    kept: list[str] = []
    position = 0
    while True:
        start = text.find("{", position)
        if start < 0:
            break
        try:
            value, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            kept.append(text[position : start + 1])
            position = start + 1
            continue
        call = _as_call(value, names)
        if call is None:
            kept.append(text[position:end])
        else:
            kept.append(text[position:start])
            calls.append(call)
        position = end
    kept.append(text[position:])
    rest = "".join(kept) if calls else text
    for fence in ("```json", "```"):
        rest = rest.replace(fence, "") if calls else rest
    return rest.strip() if calls else text, calls


def _as_call(value: Any, names: Sequence[str]) -> ParsedCall | None:
    if not isinstance(value, dict) or value.get("name") not in names:
        return None
    arguments: Any = next((value[k] for k in ("arguments", "parameters", "args") if k in value), {})
    if isinstance(arguments, str):
        arguments = _loads(arguments)
    if not isinstance(arguments, dict):
        return None
    return {"name": value["name"], "args": arguments, "id": f"call_{uuid.uuid4().hex[:24]}"}
