"""How a search query fills in what it was not told."""

from __future__ import annotations

from memstrata.schemas import Scope, SearchQuery


def test_a_search_takes_at_least_k_candidates_unless_told_otherwise() -> None:
    scope = Scope(user_id="u")
    assert SearchQuery(scope=scope).candidates == 40
    assert SearchQuery(scope=scope, k=50).candidates == 50
    assert SearchQuery(scope=scope, k=50, candidates=20).candidates == 20
    assert SearchQuery.model_validate({"scope": {"user_id": "u"}, "k": 70}).candidates == 70
