"""``MemstrataMiddleware``: long-term memory for LangChain v1 agents (``create_agent``).

Around every model call it

1. replaces the messages the model sees with memstrata's budgeted context: the system prompt,
   the running summary, recalled episodes (in a quoted ``<memory>`` block in the latest user
   message) and the session's recent turns, then the tool calls and results of the answer in
   progress. The agent's state is left alone (a checkpointer still holds the real thread);
2. records the exchange once the model gives its answer (a reply without tool calls): the
   user's message, every tool call and tool result, and the answer, in one transaction, each
   with an idempotency key made from LangChain message ids (a model's message is keyed by the
   message it answers), so re-running a model call or a whole exchange stores nothing twice.
   A failed or interrupted run records nothing; so does a run that ends on a tool call (a
   ``return_direct`` tool), whose exchange never gets a final answer.

Whose memory: ``config={"configurable": {"user_id": ..., "thread_id": ...}}`` (or the same keys
in the agent's runtime context); see :func:`scope_from_config`.

Tokens are counted with the answering model's tokenizer where memstrata knows it: exactly for
:class:`ChatMemstrataLlamaCpp` (tool definitions included), cl100k for OpenAI chat models, else
the ``Memory``'s counter (pass ``token_counter=`` to choose).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from langchain.agents.middleware import AgentMiddleware, AgentState, ModelRequest, ModelResponse
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langgraph.config import get_config
from memstrata.adapters.conversation import Exchange, Prompt, abuild_prompt, build_prompt, split_exchange
from memstrata.errors import InvalidInput
from memstrata.memory import Memory
from memstrata.ports import TokenCounter
from memstrata.schemas import ChatMessage, Scope, Turn
from memstrata.schemas.plan import BudgetPlan

from .chat_model import ChatMemstrataLlamaCpp
from .messages import from_chat_messages, message_text, to_chat_messages, to_turn

__all__ = ["MemstrataMiddleware", "ScopeResolver", "scope_from_config"]

ScopeResolver = Callable[[Mapping[str, Any]], Scope]
"""Turns the run's ``configurable`` values (merged with the runtime context's) into a Scope."""

_SCOPE_KEYS = ("user_id", "agent_id", "session_id", "thread_id")
_OPENAI_CLASSES = frozenset({"ChatOpenAI", "AzureChatOpenAI"})


def scope_from_config(configurable: Mapping[str, Any]) -> Scope:
    """The default :data:`ScopeResolver`.

    ``user_id`` (required), ``agent_id`` (default "default"), and the session from
    ``session_id``, else ``thread_id``, else "default".

    Raises:
        InvalidInput: no ``user_id``, or an id memstrata cannot store.
    """
    user = configurable.get("user_id")
    if not user:
        raise InvalidInput(
            "MemstrataMiddleware needs to know whose memory to use: pass "
            "config={'configurable': {'user_id': ..., 'thread_id': ...}} to the agent's invoke/stream"
        )
    session = configurable.get("session_id") or configurable.get("thread_id") or "default"
    try:
        return Scope(
            user_id=str(user),
            agent_id=str(configurable.get("agent_id") or "default"),
            session_id=str(session),
        )
    except ValueError as exc:
        raise InvalidInput(f"bad scope in the run's config: {exc}") from exc


@dataclass(frozen=True)
class _Framed:
    scope: Scope
    exchange: Exchange
    messages: tuple[BaseMessage, ...]
    settings: dict[str, Any]


@dataclass(frozen=True)
class _Turn:
    scope: Scope
    prompt: Prompt
    new: tuple[BaseMessage, ...]
    query_at: int


class MemstrataMiddleware(AgentMiddleware[AgentState[Any], Any]):
    """Agent middleware that answers from memstrata's memory and records what was said.

    Args:
        memory: the memory to read and write.
        scope_from: builds the scope from the run's ``configurable`` values (and the runtime
            context's ``user_id``/``agent_id``/``session_id``/``thread_id``).
        token_counter: counts prompts for models memstrata does not know; default the memory's.
        context_window: those models' window; default the memory's.
        compress: fold old turns into summaries after recording (as ``Memory.chat`` does) when
            the memory's compression is enabled.

    Raises (from the agent's invoke/stream):
        InvalidInput: no user id in the run's config.
        PromptTooLong: the new messages do not fit the model's window even without memory.
        StoreUnavailable: the store failed (before the model call, or while recording).
    """

    def __init__(
        self,
        memory: Memory,
        *,
        scope_from: ScopeResolver = scope_from_config,
        token_counter: TokenCounter | None = None,
        context_window: int | None = None,
        compress: bool = True,
    ) -> None:
        super().__init__()
        self.memory = memory
        self.scope_from = scope_from
        self.token_counter = token_counter
        self.context_window = context_window
        self.compress = compress
        self.last_plan: BudgetPlan | None = None
        """The plan behind the latest model call (any run): for inspection and tests."""

    # -- hooks -------------------------------------------------------------------------------

    def wrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], ModelResponse[Any]],
    ) -> ModelResponse[Any] | AIMessage:
        turn = self._prepare(request)
        if turn is None:
            return handler(request)
        response = handler(self._rewrite(request, turn))
        self._record(turn, response)
        return response

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse[Any] | AIMessage:
        turn = await self._aprepare(request)
        if turn is None:
            return await handler(request)
        response = await handler(self._rewrite(request, turn))
        turns = _exchange_turns(turn, response)
        if turns is not None:  # on Memory's async face, as the sync hook on its sync face
            await self.memory.aadd(turns, scope=turn.scope)
            if self._compresses:
                await self.memory.acompress(scope=turn.scope)
        return response

    # -- steps -------------------------------------------------------------------------------

    def _scope(self, request: ModelRequest[Any]) -> Scope:
        values: dict[str, Any] = {}
        context = request.runtime.context if request.runtime is not None else None
        for key in _SCOPE_KEYS:
            value = context.get(key) if isinstance(context, Mapping) else getattr(context, key, None)
            if value:
                values[key] = value
        try:
            configurable = get_config().get("configurable") or {}
        except RuntimeError:  # not inside a LangGraph run
            configurable = {}
        values.update({k: v for k, v in configurable.items() if v is not None})
        return self.scope_from(values)

    def _prepare(self, request: ModelRequest[Any]) -> _Turn | None:
        framed = self._frame(request)
        if framed is None:
            return None
        return self._turn(framed, build_prompt(self.memory, framed.exchange, **framed.settings))

    async def _aprepare(self, request: ModelRequest[Any]) -> _Turn | None:
        framed = self._frame(request)
        if framed is None:
            return None
        return self._turn(framed, await abuild_prompt(self.memory, framed.exchange, **framed.settings))

    def _frame(self, request: ModelRequest[Any]) -> _Framed | None:
        """The request's new exchange and how to plan its prompt; None when nothing is new."""
        scope = self._scope(request)
        messages = list(request.messages)
        chat = to_chat_messages(messages)
        if request.system_message is not None:
            chat.insert(0, ChatMessage(role="system", content=message_text(request.system_message)))
            messages.insert(0, request.system_message)
        try:
            exchange = split_exchange(chat)
        except InvalidInput:
            return None  # nothing new to answer: leave the call alone
        model = request.model
        settings: dict[str, Any] = {"scope": scope}
        if isinstance(model, ChatMemstrataLlamaCpp):
            tools = list(request.tools)
            settings.update(
                counter=model.token_counter,
                window=model.context_window,
                reserve=int(request.model_settings.get("max_tokens") or model.max_tokens),
                measure=lambda final: model.count_chat_messages(final, tools=tools),
            )
        else:
            settings.update(
                counter=self.token_counter or _known_counter(model) or self.memory.counter,
                window=self.context_window,
            )
        return _Framed(scope=scope, exchange=exchange, messages=tuple(messages), settings=settings)

    def _turn(self, framed: _Framed, prompt: Prompt) -> _Turn:
        self.last_plan = prompt.plan
        new = tuple(framed.messages[i] for i in framed.exchange.new_indices)
        return _Turn(scope=framed.scope, prompt=prompt, new=new, query_at=len(framed.exchange.lead))

    @staticmethod
    def _rewrite(request: ModelRequest[Any], turn: _Turn) -> ModelRequest[Any]:
        system, *rest = turn.prompt.messages
        # The new messages go to the model as they came (ids, content blocks); memory's part
        # (recent turns, and the query carrying the <memory> block) is rebuilt from the plan.
        new, query_at = list(turn.new), turn.query_at
        context = rest[: len(rest) - len(new)]
        query = rest[len(context) + query_at]
        messages: list[Any] = [
            *from_chat_messages(context),
            *new[:query_at],
            HumanMessage(content=query.content, id=new[query_at].id),
            *new[query_at + 1 :],
        ]
        return request.override(system_message=SystemMessage(content=system.content), messages=messages)

    def _record(self, turn: _Turn, response: ModelResponse[Any] | AIMessage) -> None:
        turns = _exchange_turns(turn, response)
        if turns is None:
            return
        self.memory.add(turns, scope=turn.scope)
        if self._compresses:
            self.memory.compress(scope=turn.scope)

    @property
    def _compresses(self) -> bool:
        """Whether recording folds old turns (as ``Memory.chat`` does)."""
        return self.compress and self.memory.config.compression.enabled


def _exchange_turns(turn: _Turn, response: ModelResponse[Any] | AIMessage) -> list[Turn] | None:
    """The exchange's turns to record once the model gives its answer (None while it is still
    calling tools), each keyed so that a re-run stores nothing twice."""
    results = [response] if isinstance(response, AIMessage) else list(response.result)
    answers = [m for m in results if isinstance(m, AIMessage)]
    if not answers or answers[-1].tool_calls:
        return None  # the answer is still in progress: the exchange is recorded when it ends
    session = turn.scope.session_id
    stored = [m for m in (*turn.new, *results) if m.type != "system"]
    return [
        to_turn(m, idempotency_key=_key(session, m, stored[i - 1] if i else None))
        for i, m in enumerate(stored)
    ]


def _key(session: str, message: BaseMessage, previous: BaseMessage | None) -> str | None:
    """A message's idempotency key: its id; for a model's message, the id of the message it
    answers (a re-run of the model call makes a new message id but answers the same message)."""
    if isinstance(message, AIMessage) and previous is not None and previous.id:
        return f"langchain:{session}:after:{previous.id}"
    return f"langchain:{session}:{message.id}" if message.id else None


def _known_counter(model: Any) -> TokenCounter | None:
    if type(model).__name__ in _OPENAI_CLASSES:
        from memstrata.adapters.openai_compat import TiktokenCounter

        return TiktokenCounter()
    return None
