"""``with_memory``: long-term memory around any function that answers OpenAI-style messages.

A chatbot pipeline often boils down to ``answer = call_model(messages)``. Wrapped::

    chat = with_memory(call_model, memory, Scope(user_id="alice", session_id="web-42"))
    reply = chat([{"role": "user", "content": "Where did I say I was moving?"}])

each call sends ``call_model`` memstrata's budgeted context instead of the raw list (system
prompt, summary, recalled episodes in a quoted ``<memory>`` block, the session's recent turns,
then the new messages), and records the new messages and the answer when ``call_model`` returns.
Only the new part of the list is answered (see :func:`memstrata.adapters.conversation.split_exchange`):
a client may send the whole history or just the latest message. History turns memory never stored
(a conversation begun elsewhere) are stored first, once (see :mod:`memstrata.adapters.history`).

``call_model`` takes a list of OpenAI message dicts and returns the answer as a string, an
assistant message dict (``{"role": "assistant", "content": ..., "tool_calls": [...]}``), or a
whole chat completion dict (``{"choices": [{"message": {...}}]}``). An answer with tool calls is
not recorded yet: call again with the tool results, and the exchange is recorded when the final
answer comes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from memstrata.errors import InvalidInput, MemstrataError, ModelError
from memstrata.memory import Memory
from memstrata.port_calls import Plan
from memstrata.ports import TokenCounter
from memstrata.schemas import ChatMessage, Scope
from memstrata.schemas.plan import BudgetPlan
from memstrata.turns import to_turn

from .conversation import Prompt, build_prompt, split_exchange
from .history import remember_history, stored_turn

__all__ = ["MemoryPipeline", "arecord", "as_chat_messages", "assistant_message", "record", "with_memory"]

ModelCall = Callable[[list[dict[str, Any]]], Any]


def as_chat_messages(messages: Sequence[Mapping[str, Any] | ChatMessage]) -> list[ChatMessage]:
    """OpenAI message dicts (or ChatMessages) as memstrata chat messages.

    Raises:
        InvalidInput: a message that is not an OpenAI chat message (names the position and problem).
    """
    converted = []
    for index, message in enumerate(messages):
        if isinstance(message, ChatMessage):
            converted.append(message)
            continue
        if not isinstance(message, Mapping):
            raise InvalidInput(f"message {index} is a {type(message).__name__}, not a message dict")
        turn = to_turn(message, index)  # InvalidEpisode (an InvalidInput) names the problem
        converted.append(
            ChatMessage(
                role=turn.role,
                content=turn.content,
                name=message.get("name") if isinstance(message.get("name"), str) else None,
                tool_calls=turn.tool_calls,
                tool_call_id=turn.tool_call_id,
            )
        )
    return converted


def assistant_message(answer: Any) -> ChatMessage:
    """The assistant message in whatever ``call_model`` returned (see the module docstring).

    Raises:
        ModelError: the answer is none of the accepted shapes.
    """
    if isinstance(answer, str):
        return ChatMessage(role="assistant", content=answer)
    if isinstance(answer, Mapping) and isinstance(answer.get("choices"), list) and answer["choices"]:
        answer = answer["choices"][0].get("message")
    if isinstance(answer, Mapping):
        try:
            turn = to_turn({**answer, "role": "assistant"})
        except InvalidInput as exc:
            raise ModelError(f"the model's answer is not an assistant message: {exc}") from exc
        return ChatMessage(role="assistant", content=turn.content, tool_calls=turn.tool_calls)
    raise ModelError(
        f"call_model returned a {type(answer).__name__}; expected a string, an assistant message dict "
        "or a chat completion dict"
    )


class MemoryPipeline:
    """The callable :func:`with_memory` returns; see there.

    Attributes:
        last_prompt: the prompt of the latest call (messages sent and the budget plan).
        history_stored: how many turns of the latest call's history memory lacked and stored
            (see :mod:`memstrata.adapters.history`).
    """

    def __init__(
        self,
        call_model: ModelCall,
        memory: Memory,
        scope: Scope,
        *,
        token_counter: TokenCounter | None = None,
        context_window: int | None = None,
        compress: bool = True,
    ) -> None:
        self.call_model = call_model
        self.memory = memory
        self.scope = scope
        self.token_counter = token_counter
        self.context_window = context_window
        self.compress = compress
        self.last_prompt: Prompt | None = None
        self.history_stored = 0

    @property
    def last_plan(self) -> BudgetPlan | None:
        """The budget plan of the latest call."""
        return self.last_prompt.plan if self.last_prompt is not None else None

    def __call__(self, messages: Sequence[Mapping[str, Any] | ChatMessage]) -> dict[str, Any]:
        """Answer the conversation's new messages from memory.

        Returns:
            The assistant message, as an OpenAI message dict.

        Raises:
            InvalidInput: bad messages, or nothing new to answer.
            PromptTooLong: the new messages do not fit the window even without memory.
            ModelError: ``call_model`` failed (its exception is the cause) or returned something
                unusable. Nothing is recorded.
            StoreUnavailable: the store failed.
        """
        chat = as_chat_messages(messages)
        exchange = split_exchange(chat)
        self.history_stored = remember_history(self.memory, chat, exchange.new_indices, scope=self.scope)
        prompt = build_prompt(
            self.memory, exchange, scope=self.scope, counter=self.token_counter, window=self.context_window
        )
        self.last_prompt = prompt
        try:
            answer = self.call_model([m.to_openai() for m in prompt.messages])
        except MemstrataError:
            raise
        except Exception as exc:
            raise ModelError(f"call_model failed: {type(exc).__name__}: {exc}") from exc
        reply = assistant_message(answer)
        if not reply.tool_calls:
            new = [chat[i] for i in exchange.new_indices]
            record(self.memory, [*new, reply], scope=self.scope, compress=self.compress)
        return reply.to_openai()


def record(memory: Memory, messages: Sequence[ChatMessage], *, scope: Scope, compress: bool = True) -> None:
    """Store a finished exchange in one transaction, then compress if due.

    Empty texts are stored as "(no answer)" / "(empty result)": episodes need text.

    Raises:
        StoreUnavailable: the store failed (nothing stored).
    """
    memory.run_calls(_record_calls(memory, messages, scope, compress))


async def arecord(
    memory: Memory, messages: Sequence[ChatMessage], *, scope: Scope, compress: bool = True
) -> None:
    """:func:`record` on ``Memory``'s async face."""
    await memory.arun_calls(_record_calls(memory, messages, scope, compress))


def _record_calls(
    memory: Memory, messages: Sequence[ChatMessage], scope: Scope, compress: bool
) -> Plan[None]:
    yield from memory.add_calls([stored_turn(m) for m in messages], scope)
    if compress and memory.config.compression.enabled:
        yield from memory.compressor.compress_calls(scope)


def with_memory(
    call_model: ModelCall,
    memory: Memory,
    scope: Scope,
    *,
    token_counter: TokenCounter | None = None,
    context_window: int | None = None,
    compress: bool = True,
) -> MemoryPipeline:
    """Wrap ``call_model`` so every call answers from ``memory`` and records what was said.

    Args:
        call_model: takes OpenAI message dicts, returns the answer (a string, an assistant
            message dict, or a chat completion dict). Synchronous.
        memory: the memory to read and write.
        scope: whose memory; ``scope.session_id`` is the conversation.
        token_counter: counts prompts for ``call_model``'s model; default the memory's.
        context_window: that model's window; default the memory's.
        compress: fold old turns into summaries after recording, when the memory's compression
            is enabled.

    Returns:
        A callable taking the conversation's messages and returning the assistant message dict.
    """
    return MemoryPipeline(
        call_model,
        memory,
        scope,
        token_counter=token_counter,
        context_window=context_window,
        compress=compress,
    )
