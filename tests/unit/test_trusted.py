"""``construct`` builds the same models as ``model_construct``, only faster."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from memstrata.schemas import Episode, EpisodeKind, RecallHit, Scope, SearchQuery
from memstrata.schemas.trusted import construct

NOW = datetime(2026, 11, 30, tzinfo=UTC)


def episode_fields() -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "scope": Scope(user_id="u", session_id="s"),
        "kind": EpisodeKind.SUMMARY,
        "text": "a summary",
        "role": None,
        "speaker": "Bob",
        "occurred_at": NOW,
        "created_at": NOW,
        "importance": 0.5,
        "level": 1,
        "covers": (uuid.uuid4(),),
        "superseded_by": None,
        "metadata": {"a": [1, 2]},
        "idempotency_key": "k",
        "seq": 7,
    }


def test_a_constructed_model_equals_the_model_construct_one_in_every_respect() -> None:
    fields = episode_fields()
    assert set(fields) == set(Episode.model_fields)
    fast, slow = construct(Episode, dict(fields)), Episode.model_construct(**fields)
    assert fast == slow and type(fast) is Episode
    assert fast.model_dump() == slow.model_dump() and fast.model_fields_set == slow.model_fields_set
    assert Episode.model_validate(fast.model_dump()) == fast  # the values were valid as given
    hit: dict[str, Any] = {
        "episode": fast,
        "score": 0.1,
        "vector_rank": 1,
        "text_rank": None,
        "vector_distance": 0.2,
        "recency": 1.0,
    }
    assert construct(RecallHit, dict(hit)) == RecallHit(**hit)


def test_an_incomplete_set_of_fields_falls_back_to_model_construct_and_its_defaults() -> None:
    fields = episode_fields()
    del fields["importance"], fields["seq"]
    built = construct(Episode, dict(fields))
    assert built == Episode.model_construct(**fields)
    assert built.importance == Episode.model_fields["importance"].default
    query = construct(SearchQuery, {"scope": Scope(user_id="u")})
    assert query.k == 10 and query.candidates == SearchQuery.model_fields["candidates"].default
