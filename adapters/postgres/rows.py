"""Episodes to table rows and back (column order: :data:`.statements.COLUMNS`)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
from memstrata.adapters.postgres.vector_copy import VectorPayload
from memstrata.schemas import Episode, EpisodeKind, Scope
from memstrata.schemas.trusted import construct
from psycopg.types.json import Jsonb

__all__ = ["as_array", "episode_from_row", "episode_values", "metadata_json"]


def as_array(vector: Sequence[float]) -> npt.NDArray[np.float32]:
    """A vector as the float32 array pgvector's binary dumper sends.

    A value beyond float32's range becomes infinity, which pgvector refuses (InvalidEpisode), with
    no numpy overflow warning on the way.
    """
    with np.errstate(over="ignore"):
        return np.asarray(vector, dtype=np.float32)


def metadata_json(value: Any) -> str:
    """JSON for the ``jsonb`` column that reads back equal to ``value``.

    ``json.dumps`` writes floats from 1e16 up in exponent form (``1e+23``); PostgreSQL keeps a
    JSON number as ``numeric`` and prints it back positionally with no decimal point, which
    ``json.loads`` reads as an int of another value (10**23 != 1e23). Such floats (always whole
    numbers) are written as ``<exact integer>.0`` instead, which reads back as the same float.
    """
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{metadata_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(map(metadata_json, value)) + "]"
    if isinstance(value, float) and "e+" in repr(value):
        return f"{int(value)}.0"
    return json.dumps(value)


def episode_values(episode: Episode, vector: Sequence[float]) -> tuple[Any, ...]:
    """The write row of an episode: :data:`.statements.WRITE_COLUMNS` order."""
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
        Jsonb(episode.metadata, dumps=metadata_json),
        episode.idempotency_key,
        vector if isinstance(vector, VectorPayload) else as_array(vector),
    )


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


_KINDS = {kind.value: kind for kind in EpisodeKind}


@lru_cache(maxsize=4096)
def _scope(user_id: str, agent_id: str, session_id: str) -> Scope:
    # The rows of one read share a few scopes; building one costs more than looking it up.
    return Scope.model_construct(user_id=user_id, agent_id=agent_id, session_id=session_id)


def episode_from_row(row: Sequence[Any]) -> Episode:
    """An episode from a row in :data:`.statements.READ_COLUMNS` order (trusted: no re-validation)."""
    (user_id, agent_id, session_id, episode_id, kind, text, role, speaker, occurred_at, created_at,
     importance, level, covers, superseded_by, metadata, idempotency_key, seq) = row[:17]  # fmt: skip
    return construct(
        Episode,
        {
            "id": episode_id if isinstance(episode_id, uuid.UUID) else uuid.UUID(str(episode_id)),
            "scope": _scope(user_id, agent_id, session_id),
            "kind": _KINDS[kind],
            "text": text,
            "role": role,
            "speaker": speaker,
            "occurred_at": _utc(occurred_at),
            "created_at": _utc(created_at),
            "importance": float(importance),
            "level": int(level),
            "covers": tuple(covers or ()),
            "superseded_by": superseded_by,
            "metadata": metadata if metadata is not None else {},
            "idempotency_key": idempotency_key,
            "seq": int(seq),
        },
    )
