"""Which searches are planned once per scope, and how their statements carry the scope. No database."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from memstrata.adapters.postgres import retriever_statements, statements
from memstrata.adapters.postgres.fulltext import PrunedQuery
from memstrata.adapters.postgres.plan_cache import LARGE_SCOPE_ROWS, planned_once, scope_statement
from memstrata.schemas import EpisodeKind, Scope, SearchFilters, SearchQuery

T = statements.Tables("memstrata")
NOW = datetime(2024, 5, 8, 12, 0, tzinfo=UTC)
PERCENT = re.compile(r"%%|%\((\w+)\)s|%")


def as_sent(text: str) -> tuple[str, set[str]]:
    """``text`` as psycopg sends it (placeholders as ``$``, ``%%`` as ``%``) and the parameters
    it names; a lone ``%`` is what psycopg would reject."""
    names: set[str] = set()

    def sent(match: re.Match[str]) -> str:
        if match.group(0) == "%%":
            return "%"
        assert match.group(1), f"a lone % at {match.start()}: {text[match.start() - 20 : match.start() + 20]}"
        names.add(match.group(1))
        return "$"

    return PERCENT.sub(sent, text), names


PRUNED = PrunedQuery(q="'zeppelin' | 'harbor'", q_all="'zeppelin' & 'harbor'", words=2, q_fallback="'ride'")


def query(scope: Scope, **filters: Any) -> SearchQuery:
    return SearchQuery(
        scope=scope, vector=(0.1, 0.2), text="zeppelin harbor", k=7, filters=SearchFilters(**filters)
    )


def test_only_a_large_scope_without_session_or_time_filters_is_planned_once() -> None:
    scope = Scope(user_id="alice")
    assert planned_once(query(scope), LARGE_SCOPE_ROWS)
    assert planned_once(query(scope, kinds=(EpisodeKind.FACT,), include_superseded=False), LARGE_SCOPE_ROWS)
    assert not planned_once(query(scope), LARGE_SCOPE_ROWS - 1)
    assert not planned_once(query(scope), None)  # not counted yet
    assert not planned_once(query(scope, session_id="s1"), LARGE_SCOPE_ROWS)
    assert not planned_once(query(scope, occurred_after=NOW), LARGE_SCOPE_ROWS)
    assert not planned_once(query(scope, occurred_before=NOW), LARGE_SCOPE_ROWS)


@pytest.mark.parametrize("user_id", ["alice", "o'brien", "100%s off", "back\\slash %(vector)s"])
def test_the_scope_kinds_and_limits_become_literals_and_the_rest_stay_parameters(user_id: str) -> None:
    q = query(Scope(user_id=user_id, agent_id="a'gent%"), kinds=(EpisodeKind.TURN, EpisodeKind.FACT))
    quoted = user_id.replace("'", "''")
    quoted = "E'" + quoted.replace("\\", "\\\\") + "'" if "\\" in user_id else f"'{quoted}'"
    legs = (
        (retriever_statements.leg(T, q, [0.1, 0.2]), {"vector"}),
        (retriever_statements.leg(T, q, None, pruned=PRUNED), {"q", "q_all", "q_some", "q_fallback"}),
    )
    for statement, kept in legs:
        text, params = scope_statement(statement)
        assert set(params) == kept
        sent, names = as_sent(text)
        assert names == set(params)  # no literal holds a placeholder of its own
        assert f"e.user_id = {quoted}" in sent
        assert "e.agent_id = 'a''gent%'" in sent
        assert "e.kind = ANY('{turn,fact}')" in sent
        assert "LIMIT 40" in sent
    assert "LIMIT 100" in as_sent(scope_statement(legs[1][0])[0])[0]  # the text scans' cap


def test_statements_of_two_scopes_differ_only_in_their_literals() -> None:
    """Each large scope has its own prepared statement, hence its own plan."""
    for vector, pruned in (([0.1], None), (None, PRUNED)):
        a, _ = scope_statement(retriever_statements.leg(T, query(Scope(user_id="a")), vector, pruned=pruned))
        b, _ = scope_statement(retriever_statements.leg(T, query(Scope(user_id="b")), vector, pruned=pruned))
        assert a != b and a.replace("'a'", "'b'") == b
