"""Episodes: the unit of long-term memory, and the turns and scopes they are made from."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, field_validator, model_validator

from ._model import FrozenModel

Role = Literal["system", "user", "assistant", "tool"]
"""Who said a turn. ``tool`` is the result of a tool call."""

MAX_ID_CHARS = 256


def utc_now() -> datetime:
    """The current time, timezone-aware (UTC)."""
    return datetime.now(UTC)


def check_text(value: str) -> str:
    """Reject text PostgreSQL cannot store or that cannot be encoded as UTF-8.

    Raises:
        ValueError: on a NUL byte or a lone surrogate (the message names which and where).
    """
    nul = value.find("\x00")
    if nul >= 0:
        raise ValueError(f"text contains a NUL byte at character {nul}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"text contains a lone surrogate at character {exc.start}") from None
    return value


def _check_id(value: str) -> str:
    check_text(value)
    if not value.strip():
        raise ValueError("must not be empty or blank")
    if len(value) > MAX_ID_CHARS:
        raise ValueError(f"must be at most {MAX_ID_CHARS} characters, got {len(value)}")
    return value


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp must be timezone-aware (e.g. 2024-05-08T13:56:00+00:00)")
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+05:00 is before year 1 in UTC
        raise ValueError(f"timestamp {value.isoformat()} is out of range in UTC (years 1-9999)") from None


MAX_METADATA_DEPTH = 32
MAX_METADATA_INT_DIGITS = 4000
"""Python's JSON encoder refuses integers over 4300 digits (``sys.int_info.default_max_str_digits``)."""


def _walk_json(value: Any, depth: int, path: str) -> Any:
    """``value`` checked, with tuples made lists (what JSON, and so every store, reads back)."""
    if depth > MAX_METADATA_DEPTH:
        raise ValueError(f"metadata is nested deeper than {MAX_METADATA_DEPTH} levels at {path}")
    if isinstance(value, str):
        try:
            check_text(value)
        except ValueError as exc:
            raise ValueError(f"metadata {path}: {exc}") from None
    elif isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise ValueError(f"metadata keys must be strings, got {type(key).__name__} at {path}")
            _walk_json(key, depth + 1, f"{path}.{key!r}")
        return {key: _walk_json(item, depth + 1, f"{path}.{key}") for key, item in value.items()}
    elif isinstance(value, (list, tuple)):
        return [_walk_json(item, depth + 1, f"{path}[{index}]") for index, item in enumerate(value)]
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"metadata {path} is {value}, which JSON cannot represent")
    elif isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > 13_000 and abs(value) >= 10**MAX_METADATA_INT_DIGITS:
            raise ValueError(f"metadata {path} is an integer over {MAX_METADATA_INT_DIGITS} digits")
    elif value is not None and not isinstance(value, bool):
        raise ValueError(f"metadata must be JSON-serializable: {path} is a {type(value).__name__}")
    return value


def _json_metadata(value: dict[str, Any]) -> dict[str, Any]:
    checked: dict[str, Any] = _walk_json(value, 0, "$")
    return checked


ScopeId = Annotated[str, AfterValidator(_check_id)]
CleanText = Annotated[str, AfterValidator(check_text)]
AwareDatetime = Annotated[datetime, AfterValidator(_aware)]
JsonMetadata = Annotated[dict[str, Any], AfterValidator(_json_metadata)]


class _Frozen(FrozenModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Scope(_Frozen):
    """Whose memory an episode belongs to.

    ``user_id`` is required and is the isolation boundary: no call ever returns another user's
    episodes. ``agent_id`` separates agents serving the same user. ``session_id`` records the
    conversation an episode came from; recall searches every session of a user and agent, and
    can be narrowed to one session with a filter.
    """

    user_id: ScopeId
    agent_id: ScopeId = "default"
    session_id: ScopeId = "default"

    def __str__(self) -> str:
        return f"{self.user_id}/{self.agent_id}/{self.session_id}"


class ToolCall(_Frozen):
    """A tool call requested by an assistant turn (OpenAI shape, arguments as JSON text)."""

    id: CleanText
    name: CleanText
    arguments: CleanText = "{}"


class Turn(_Frozen):
    """One message of a conversation, as a user's agent sends it to memstrata."""

    role: Role
    content: CleanText
    speaker: CleanText | None = None
    occurred_at: AwareDatetime = Field(default_factory=utc_now)
    metadata: JsonMetadata = Field(default_factory=dict)
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: CleanText | None = None
    idempotency_key: CleanText | None = None


class EpisodeKind(StrEnum):
    """What an episode is: a raw turn, a summary made by the model, or an extracted fact."""

    TURN = "turn"
    SUMMARY = "summary"
    FACT = "fact"


class Episode(_Frozen):
    """A stored memory: a turn, a summary or a fact, with its lineage.

    ``covers`` lists the ids a summary or fact was made from. ``superseded_by`` is set when a
    newer episode stands in for this one in the running context (a turn folded into a summary,
    a summary folded into a higher-level one); superseded episodes stay recallable.
    ``seq`` is assigned by the store: the order in which episodes of a scope were written.
    """

    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    scope: Scope
    kind: EpisodeKind = EpisodeKind.TURN
    text: CleanText
    role: Role | None = None
    speaker: CleanText | None = None
    occurred_at: AwareDatetime = Field(default_factory=utc_now)
    created_at: AwareDatetime = Field(default_factory=utc_now)
    importance: float = Field(default=0.5, ge=0.0, le=1.0)
    level: int = Field(default=0, ge=0, le=32)
    covers: tuple[uuid.UUID, ...] = ()
    superseded_by: uuid.UUID | None = None
    metadata: JsonMetadata = Field(default_factory=dict)
    idempotency_key: CleanText | None = None
    seq: int | None = None

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("episode text must not be empty or blank")
        return value


class RecallHit(_Frozen):
    """One recalled episode and how its score was made.

    ``score`` is the fused score (reciprocal-rank fusion of the vector and text ranks, times the
    recency weight when recency is on; recall also multiplies it by the query's cue weight, see
    :mod:`memstrata.cues`). Ranks are 1-based; ``None`` means the episode was not among that
    retriever's candidates.
    """

    episode: Episode
    score: float
    vector_rank: int | None = None
    text_rank: int | None = None
    vector_distance: float | None = None
    recency: float = 1.0


class SearchFilters(_Frozen):
    """Optional narrowing of a search inside its scope."""

    kinds: tuple[EpisodeKind, ...] = ()
    session_id: ScopeId | None = None
    occurred_after: AwareDatetime | None = None
    occurred_before: AwareDatetime | None = None
    include_superseded: bool = True


DEFAULT_CANDIDATES = 40
"""Candidates a search takes from each retriever unless it asks for more hits (see ``SearchQuery``)."""


class SearchQuery(_Frozen):
    """A hybrid search: vector + full text, fused by reciprocal rank, inside one user's scope."""

    scope: Scope
    vector: tuple[float, ...] | None = None
    text: CleanText = ""
    k: int = Field(default=10, ge=1, le=1000)
    filters: SearchFilters = SearchFilters()
    recency_half_life_days: float | None = Field(default=None, gt=0)
    now: AwareDatetime | None = None
    candidates: int = Field(default=DEFAULT_CANDIDATES, ge=1, le=10_000)
    """Candidates taken from each retriever before fusion; when not given, 40 or ``k`` if that is
    more. 40 is 4x the default ``k``: against 60 it agreed more with exact search and was faster
    (docs/benchmarks.md). Recall (:class:`~memstrata.schemas.RecallConfig`) sets its own (80)."""
    rrf_k: int = Field(default=60, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _at_least_k_candidates(cls, data: Any) -> Any:
        if isinstance(data, dict) and "candidates" not in data:
            k = data.get("k")
            if isinstance(k, int) and not isinstance(k, bool) and k > DEFAULT_CANDIDATES:
                return {**data, "candidates": k}
        return data


ScanOrder = Literal["oldest", "newest"]
