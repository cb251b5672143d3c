"""LangChain v1 adapters: agent middleware, a chat model over memstrata's llama.cpp model, and
message conversions.

- :class:`MemstrataMiddleware`: ``create_agent(model, tools, middleware=[MemstrataMiddleware(memory)])``
  gives the agent memstrata's budgeted context before each model call and records each exchange.
- :class:`ChatMemstrataLlamaCpp`: a ``BaseChatModel`` over a local GGUF with exact token counts.
- :func:`memory_tools`: ``search_memory`` / ``save_memory`` (and opt-in ``forget_memory``) as
  LangChain tools bound to one user's scope, for agents that manage their memory themselves.
- :mod:`.messages`: LangChain messages <-> memstrata ``ChatMessage`` / ``Turn``.

Needs the ``langchain`` extra (``pip install memstrata[langchain]``).
"""

from memstrata.adapters.extras import require

require("langchain", extra="langchain", purpose="memstrata.adapters.langchain")

from .chat_model import ChatMemstrataLlamaCpp, TemplateTokenCounter  # noqa: E402
from .memory_tools import memory_tools  # noqa: E402
from .messages import from_chat_message, from_chat_messages, to_chat_message, to_chat_messages, to_turn  # noqa: E402
from .middleware import MemstrataMiddleware, ScopeResolver, scope_from_config  # noqa: E402

__all__ = [
    "ChatMemstrataLlamaCpp",
    "MemstrataMiddleware",
    "ScopeResolver",
    "TemplateTokenCounter",
    "from_chat_message",
    "from_chat_messages",
    "memory_tools",
    "scope_from_config",
    "to_chat_message",
    "to_chat_messages",
    "to_turn",
]
