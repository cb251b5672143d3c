"""Locks memstrata's public names: a change here is a change to the API (and the CHANGELOG)."""

from __future__ import annotations

import memstrata
import memstrata.testing

PUBLIC = {
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
}


def test_exported_names_are_locked() -> None:
    assert set(memstrata.__all__) == PUBLIC
    for name in memstrata.__all__:
        assert getattr(memstrata, name) is not None


def test_testing_doubles_are_public() -> None:
    assert set(memstrata.testing.__all__) == {
        "HashingEmbedder",
        "InMemoryEpisodeStore",
        "ScriptedChatModel",
        "WordTokenCounter",
    }


def test_error_tree_keeps_misuse_apart_from_failure() -> None:
    assert issubclass(memstrata.InvalidInput, ValueError)
    assert issubclass(memstrata.PromptTooLong, memstrata.UsageError)
    assert issubclass(memstrata.StoreUnavailable, memstrata.RuntimeFailure)
    assert not issubclass(memstrata.ModelError, memstrata.UsageError)
    assert not hasattr(memstrata, "MemoryError")
