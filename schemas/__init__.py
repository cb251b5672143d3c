"""memstrata's data models: pydantic v2, frozen, ``extra="forbid"``. Imports nothing from memstrata."""

from .chat import ChatMessage, ChatResult, TokenUsage
from .episodes import (
    Episode,
    EpisodeKind,
    RecallHit,
    Role,
    ScanOrder,
    Scope,
    SearchFilters,
    SearchQuery,
    ToolCall,
    Turn,
    check_text,
    utc_now,
)

__all__ = [
    "ChatMessage",
    "ChatResult",
    "Episode",
    "EpisodeKind",
    "RecallHit",
    "Role",
    "ScanOrder",
    "Scope",
    "SearchFilters",
    "SearchQuery",
    "TokenUsage",
    "ToolCall",
    "Turn",
    "check_text",
    "utc_now",
]
