"""The Postgres store's pure parts: SQL builders, row mapping, DSN redaction. No database."""

from __future__ import annotations

import re
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from memstrata.adapters.postgres import retriever_statements, statements
from memstrata.adapters.postgres.dsn import database_url, redact_dsn, scrub
from memstrata.adapters.postgres.fulltext import PrunedQuery
from memstrata.adapters.postgres.migrations import MIGRATIONS, hnsw_index
from memstrata.adapters.postgres.rows import episode_from_row, episode_values
from memstrata.errors import ConfigError
from memstrata.schemas import Episode, EpisodeKind, Scope, SearchFilters, SearchQuery

T = statements.Tables("memstrata")
SCOPE = Scope(user_id="alice", agent_id="helper", session_id="s1")
NOW = datetime(2024, 5, 8, 12, 0, tzinfo=UTC)
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def assert_params_match(statement: tuple[str, dict[str, object]]) -> str:
    """Every named placeholder has a parameter and every parameter is used."""
    text, params = statement
    assert set(PLACEHOLDER.findall(text)) == set(params)
    return text


@pytest.mark.parametrize("name", ["memstrata", "m_1", "_x", "a" * 63])
def test_plain_identifiers_are_accepted(name: str) -> None:
    assert statements.Tables(name).episodes == f'"{name}".episodes'


@pytest.mark.parametrize("name", ["", "Memstrata", "1abc", "a-b", 'a"; DROP TABLE x; --', "a" * 64, "a b"])
def test_other_schema_names_are_a_config_error(name: str) -> None:
    with pytest.raises(ConfigError, match="plain identifier"):
        statements.Tables(name)


def test_write_statements_have_one_value_per_column() -> None:
    assert statements.insert_values(T).count("%s") == len(statements.WRITE_COLUMNS)
    assert len(statements.COPY_TYPES) == len(statements.WRITE_COLUMNS) + 1  # plus the ordinal
    staged, params = statements.insert_from_staging(T, Scope(user_id="u1", agent_id="a1"))
    assert "ORDER BY ord" in staged and "WHERE user_id = %(user_id)s AND agent_id = %(agent_id)s" in staged
    assert params == {"user_id": "u1", "agent_id": "a1"}
    for text in (statements.insert_values(T), staged):
        assert (
            "ON CONFLICT (user_id, agent_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
            in text
        )
        assert text.endswith("RETURNING id, seq")


def test_every_read_and_write_is_scoped_to_user_and_agent() -> None:
    ids = [uuid.uuid4()]
    scoped = [
        statements.get(T, SCOPE, ids),
        statements.scan(T, SCOPE),
        statements.supersede(T, SCOPE, ids, uuid.uuid4()),
        statements.forget(T, SCOPE, ids),
        statements.forget(T, SCOPE, None),
    ]
    for statement in scoped:
        text = assert_params_match(statement)
        assert "user_id = %(user_id)s" in text and "agent_id = %(agent_id)s" in text
        assert statement[1]["user_id"] == "alice" and statement[1]["agent_id"] == "helper"


def test_scan_options_become_filters_order_and_limit() -> None:
    text = assert_params_match(
        statements.scan(
            T, SCOPE, kinds=[EpisodeKind.SUMMARY], session_id="s2", only_current=True, order="newest", limit=5
        )
    )
    assert "kind = ANY(%(kinds)s)" in text and "session_id = %(session_id)s" in text
    assert "superseded_by IS NULL" in text
    assert text.endswith("ORDER BY seq DESC LIMIT %(limit)s")
    assert statements.scan(T, SCOPE)[0].endswith("ORDER BY seq")


def test_forget_cascades_through_covers_and_clears_dangling_supersession() -> None:
    text = statements.forget(T, SCOPE, [uuid.uuid4()])[0]
    assert "WITH RECURSIVE doomed" in text and "doomed.id = ANY(d.covers)" in text
    assert "SET superseded_by = NULL" in text and "s.id NOT IN (SELECT id FROM doomed)" in text


def query(**update: object) -> SearchQuery:
    base = SearchQuery(scope=SCOPE, vector=(1.0, 0.0), text="When does the pottery class start?", k=5)
    return base.model_copy(update=update)


PRUNED = PrunedQuery(q="'pottery' | 'class'", q_all="'pottery' & 'class'", words=2, q_fallback="'start'")


def test_the_vector_leg_is_one_scoped_index_scan() -> None:
    text = assert_params_match(retriever_statements.leg(T, query(text=""), [1.0, 0.0]))
    assert "ORDER BY (e.embedding <=> %(vector)s) LIMIT %(candidates)s" in text
    assert "tsv" not in text
    assert text.count("e.user_id = %(user_id)s AND e.agent_id = %(agent_id)s") == 1


def test_the_text_leg_scans_every_kept_word_then_some_then_the_fallback() -> None:
    text = assert_params_match(retriever_statements.leg(T, query(vector=None), None, pruned=PRUNED))
    assert "<=>" not in text
    assert f"{retriever_statements.RANK}(e.tsv, CAST(%(q)s AS tsquery))" in text
    assert "e.tsv @@ CAST(%(q_all)s AS tsquery)" in text and "e.tsv @@ CAST(%(q_some)s AS tsquery)" in text
    assert "NOT EXISTS (SELECT 1 FROM t0) AND e.tsv @@ CAST(%(q_fallback)s AS tsquery)" in text
    # the three text scans (every word, some words, fallback) filter by scope first
    assert text.count("e.user_id = %(user_id)s AND e.agent_id = %(agent_id)s") == 3
    seen = retriever_statements.leg(T, query(vector=None), None, pruned=replace(PRUNED, seen=True))[0]
    assert "q_fallback" not in seen  # kept words seen in the scope: no fallback scan
    with pytest.raises(ValueError, match="pruned words"):
        retriever_statements.leg(T, query(vector=None), None)


def test_exact_leg_orders_by_an_expression_the_index_cannot_serve() -> None:
    text = retriever_statements.leg(T, query(text=""), [1.0, 0.0], exact=True)[0]
    assert "ORDER BY (e.embedding <=> %(vector)s) + 0 LIMIT" in text


def test_search_filters_become_parameters() -> None:
    filters = SearchFilters(
        kinds=(EpisodeKind.FACT,),
        session_id="s9",
        occurred_after=NOW - timedelta(days=3),
        occurred_before=NOW,
        include_superseded=False,
    )
    for vector, pruned in (([1.0, 0.0], None), (None, PRUNED)):
        text, params = retriever_statements.leg(T, query(filters=filters), vector, pruned=pruned)
        assert_params_match((text, params))
        assert params["kinds"] == ["fact"] and params["session_id"] == "s9"
        assert "e.occurred_at >= %(occurred_after)s" in text and "e.occurred_at < %(occurred_before)s" in text
        assert "e.superseded_by IS NULL" in text


def test_dimension_lookup_names_the_table() -> None:
    assert statements.vector_dimension(T)[1] == {"table": '"memstrata".episodes'}


def test_migrations_are_numbered_from_one_without_gaps() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    ddl = "\n".join(MIGRATIONS[0].statements(T, 384))
    assert "embedding vector(384) NOT NULL" in ddl and "PRIMARY KEY (user_id, id)" in ddl
    assert f"to_tsvector('{statements.TS_CONFIG}'::regconfig, text)" in ddl
    assert "USING hnsw (embedding vector_cosine_ops) WITH (m = 16" in hnsw_index(T)


def test_rows_round_trip_every_field() -> None:
    episode = Episode(
        scope=SCOPE,
        kind=EpisodeKind.SUMMARY,
        text="summary",
        role="assistant",
        speaker="bot",
        occurred_at=NOW,
        importance=0.25,
        level=2,
        covers=(uuid.uuid4(), uuid.uuid4()),
        superseded_by=uuid.uuid4(),
        metadata={"a": [1, 2.5, None]},
        idempotency_key="k",
    )
    values = episode_values(episode, [0.5, 0.25])
    assert len(values) == len(statements.WRITE_COLUMNS)
    row = [v.obj if hasattr(v, "obj") else v for v in values[:-1]] + [7]  # jsonb unwrapped; seq appended
    back = episode_from_row(row)
    assert back == episode.model_copy(update={"seq": 7})


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        ("postgresql://bob:s3cret@db.example:5432/app", "postgresql://bob:***@db.example:5432/app"),
        ("postgres://bob:p%40ss@db/app?sslmode=require", "postgres://bob:***@db/app?sslmode=require"),
        (
            "postgresql://bob@db/app?password=s3cret&sslmode=require",
            "postgresql://bob@db/app?password=***&sslmode=require",
        ),
        (
            "postgresql://postgres:@/memstrata?host=/var/lib/x",
            "postgresql://postgres:@/memstrata?host=/var/lib/x",
        ),
        ("host=db user=bob password=s3cret dbname=app", "host=db user=bob password=*** dbname=app"),
        ("host=db password = 'a b\\' c' dbname=app", "host=db password = *** dbname=app"),
    ],
)
def test_redact_dsn_masks_only_the_password(dsn: str, expected: str) -> None:
    assert redact_dsn(dsn) == expected


def test_scrub_masks_the_dsn_and_its_password_anywhere_in_a_message() -> None:
    dsn = "postgresql://bob:hunter2@db/app"
    message = f"failed for {dsn}: password 'hunter2' rejected"
    assert "hunter2" not in scrub(message, dsn)
    assert "bob:***@db/app" in scrub(message, dsn)


def test_database_url_prefers_the_environment() -> None:
    assert database_url({"MEMSTRATA_DATABASE_URL": " postgresql://x/y "}) == "postgresql://x/y"
