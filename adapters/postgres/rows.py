"""Episodes to table rows and back (column order: :data:`.sql.COLUMNS`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from memstrata.schemas import Episode, EpisodeKind, RecallHit, Scope
from psycopg.types.json import Jsonb

__all__ = ["as_array", "episode_from_row", "episode_values", "hit_from_row"]


def as_array(vector: Sequence[float]) -> npt.NDArray[np.float32]:
    """A vector as the float32 array pgvector's binary dumper sends."""
    return np.asarray(vector, dtype=np.float32)


def episode_values(episode: Episode, vector: Sequence[float]) -> tuple[Any, ...]:
    """The write row of an episode: :data:`.sql.WRITE_COLUMNS` order."""
    scope = episode.scope
    return (
        scope.user_id,
        scope.agent_id,
        scope.session_id,
        episode.id,
        episode.kind.value,
        episode.text,
        episode.role,
        episode.speaker,
        episode.occurred_at,
        episode.created_at,
        float(episode.importance),
        episode.level,
        list(episode.covers),
        episode.superseded_by,
        Jsonb(episode.metadata),
        episode.idempotency_key,
        as_array(vector),
    )


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def episode_from_row(row: Sequence[Any]) -> Episode:
    """An episode from a row in :data:`.sql.READ_COLUMNS` order (trusted: no re-validation)."""
    (user_id, agent_id, session_id, episode_id, kind, text, role, speaker, occurred_at, created_at,
     importance, level, covers, superseded_by, metadata, idempotency_key, seq) = row[:17]  # fmt: skip
    return Episode.model_construct(
        id=episode_id if isinstance(episode_id, uuid.UUID) else uuid.UUID(str(episode_id)),
        scope=Scope.model_construct(user_id=user_id, agent_id=agent_id, session_id=session_id),
        kind=EpisodeKind(kind),
        text=text,
        role=role,
        speaker=speaker,
        occurred_at=_utc(occurred_at),
        created_at=_utc(created_at),
        importance=float(importance),
        level=int(level),
        covers=tuple(covers or ()),
        superseded_by=superseded_by,
        metadata=metadata if metadata is not None else {},
        idempotency_key=idempotency_key,
        seq=int(seq),
    )


def hit_from_row(row: Sequence[Any]) -> RecallHit:
    """A recall hit from a row of :func:`.sql.search`."""
    vector_rank, distance, text_rank, recency, score = row[17:22]
    return RecallHit.model_construct(
        episode=episode_from_row(row),
        score=float(score),
        vector_rank=None if vector_rank is None else int(vector_rank),
        text_rank=None if text_rank is None else int(text_rank),
        vector_distance=None if distance is None else float(distance),
        recency=float(recency),
    )
