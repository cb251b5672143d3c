"""memstrata: long-term memory for LLM agents on a local model.

The public API is what ``__all__`` lists; ``tests/unit/test_public_api.py`` locks it.
Adapters (Postgres, llama.cpp, LangChain, the server, the CLI) live in ``memstrata.adapters``;
test doubles in ``memstrata.testing``. ``memstrata.open_memory`` (a ``Memory`` on the defaults or
the environment's settings) is the one name that reaches into the adapters, and only when used.
"""

from importlib.metadata import entry_points
from typing import Any

from memstrata.compression import CompressionReport
from memstrata.errors import (
    ConfigError,
    FoldConflict,
    InvalidEpisode,
    InvalidInput,
    MemstrataError,
    MissingExtra,
    ModelError,
    ModelUnavailable,
    OutputParseError,
    PromptTooLong,
    RuntimeFailure,
    StoreUnavailable,
    UsageError,
)
from memstrata.memory import Memory
from memstrata.planner import TokenBudgetPlanner
from memstrata.ports import (
    AsyncEpisodeStore,
    ChatModel,
    Embedder,
    EpisodeStore,
    StreamingChatModel,
    TokenCounter,
)
from memstrata.replies import Reply
from memstrata.schemas import (
    ChatMessage,
    ChatResult,
    Episode,
    EpisodeKind,
    RecallHit,
    Scope,
    SearchFilters,
    SearchQuery,
    TokenUsage,
    ToolCall,
    Turn,
)
from memstrata.schemas.config import (
    BudgetShares,
    CompressionConfig,
    MemoryConfig,
    PlannerConfig,
    RecallConfig,
)
from memstrata.schemas.plan import BudgetPlan, Omission, PlanSection

__version__ = "0.1.0.dev0"


def __getattr__(name: str) -> Any:
    # open_memory lives with the adapters; the installed distribution registers it as an entry
    # point, so the core names no adapter and imports none until the name is first used.
    if name == "open_memory":
        found = entry_points(group="memstrata.factories", name=name)
        if not found:
            raise ImportError(
                "memstrata.open_memory is not registered: reinstall memstrata (pip install -e .)"
            )
        return next(iter(found)).load()
    raise AttributeError(f"module 'memstrata' has no attribute {name!r}")


__all__ = [
    "AsyncEpisodeStore",
    "BudgetPlan",
    "BudgetShares",
    "ChatMessage",
    "ChatModel",
    "ChatResult",
    "CompressionConfig",
    "CompressionReport",
    "ConfigError",
    "Embedder",
    "Episode",
    "EpisodeKind",
    "EpisodeStore",
    "FoldConflict",
    "InvalidEpisode",
    "InvalidInput",
    "Memory",
    "MemoryConfig",
    "MemstrataError",
    "MissingExtra",
    "ModelError",
    "ModelUnavailable",
    "Omission",
    "OutputParseError",
    "PlanSection",
    "PlannerConfig",
    "PromptTooLong",
    "RecallConfig",
    "RecallHit",
    "Reply",
    "RuntimeFailure",
    "Scope",
    "SearchFilters",
    "SearchQuery",
    "StoreUnavailable",
    "StreamingChatModel",
    "TokenBudgetPlanner",
    "TokenCounter",
    "TokenUsage",
    "ToolCall",
    "Turn",
    "UsageError",
    "__version__",
    "open_memory",
]
