"""Hostile input through the public API (``Memory`` and the store itself), on the in-memory store
and on the real PostgreSQL store: every input gets a typed memstrata error or is stored and read
back exactly as it went in; a rejected batch leaves no row behind.

Example counts follow the hypothesis profile (``MEMSTRATA_HYPOTHESIS_PROFILE``, see conftest).
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, event, example, given
from hypothesis import strategies as st
from memstrata import Memory, MemoryConfig
from memstrata.adapters.postgres import PostgresEpisodeStore
from memstrata.errors import InvalidEpisode, InvalidInput, MemstrataError, PromptTooLong
from memstrata.fusion import hybrid_search
from memstrata.ports import EpisodeStore
from memstrata.schemas import ChatMessage, Episode, Scope, SearchQuery, Turn
from memstrata.schemas.config import CompressionConfig
from memstrata.summary_guard import salient_terms
from memstrata.testing import HashingEmbedder, InMemoryEpisodeStore, ScriptedChatModel, WordTokenCounter
from memstrata.turns import to_turn
from memstrata.validation import DEFAULT_MAX_TEXT_BYTES
from pydantic import ValidationError

from .hostile import clean_text, hostile_text, scaled, sql_text, turn_specs

DIMENSIONS = 16
EMBED = HashingEmbedder(DIMENSIONS)
CONFIG = MemoryConfig(context_window=4096, compression=CompressionConfig(keep_recent_turns=1, threshold=0.01))


@pytest.fixture(scope="module")
def postgres_store(postgres_dsn: str) -> Iterator[PostgresEpisodeStore]:
    with PostgresEpisodeStore.from_conn_string(
        postgres_dsn, dimensions=DIMENSIONS, schema="hostile"
    ) as store:
        store.setup()
        yield store


@pytest.fixture(scope="module", params=["in-memory", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest) -> EpisodeStore:
    if request.param == "postgres":
        postgres: EpisodeStore = request.getfixturevalue("postgres_store")
        return postgres
    return InMemoryEpisodeStore(DIMENSIONS)


@pytest.fixture(scope="module")
def memory(store: EpisodeStore) -> Memory:
    return Memory(store, EMBED, token_counter=WordTokenCounter(), config=CONFIG)


def scope_of(user_id: str, *, agent_id: str = "default", session_id: str = "default") -> Scope | None:
    """The scope, or None when the schema refuses the ids (pydantic, before any memstrata call)."""
    try:
        return Scope(user_id=user_id, agent_id=agent_id, session_id=session_id)
    except ValidationError:
        return None


def exported(memory: Memory, scope: Scope) -> list[Episode]:
    """The scope's export, parsed back (every line must be JSON that validates as an Episode)."""
    return [Episode.model_validate(json.loads(line)) for line in memory.export(scope=scope)]


def check_round_trip(memory: Memory, scope: Scope, before: list[Episode]) -> list[Episode]:
    """Scan, get and export agree exactly; returns the scan."""
    rows = memory.store.scan(scope)
    assert rows[: len(before)] == before
    assert memory.store.get(scope, [e.id for e in rows]) == rows
    assert exported(memory, scope) == rows
    return rows


def add_and_check(memory: Memory, scope: Scope, items: list[Any]) -> None:
    """``memory.add(items)``: a typed error with no row written, or every turn stored and read
    back (scan, get, export) exactly as given."""
    before = memory.store.scan(scope)
    try:
        stored = memory.add(items, scope=scope)
    except MemstrataError as exc:
        assert isinstance(exc, InvalidEpisode), repr(exc)
        assert memory.store.scan(scope) == before, "a rejected batch left rows behind"
        event(f"refused: {exc.field}")
        raise
    event("stored")
    try:
        turns = [to_turn(item) for item in items]
        first_with_key: dict[str, int] = {}
        for index, (turn, episode) in enumerate(zip(turns, stored, strict=True)):
            key = turn.idempotency_key  # a repeated key gives back the first turn that had it
            origin = turns[first_with_key.setdefault(key, index)] if key is not None else turn
            assert episode.scope == scope
            assert (episode.text, episode.role, episode.speaker) == (
                origin.content,
                origin.role,
                origin.speaker,
            )
            given = items[first_with_key[key] if key is not None else index]
            if isinstance(given, Turn) or "occurred_at" in given:  # else: the time of add
                assert episode.occurred_at == origin.occurred_at
            assert episode.metadata == origin.metadata
            assert episode.idempotency_key == key
        rows = check_round_trip(memory, scope, before)
        assert len(rows) == len(before) + len({e.id for e in stored})
        by_id = {e.id: e for e in rows}
        assert [by_id[e.id] for e in stored] == stored  # what the database gives back is what went in
        plan = memory.context("what did I say?", scope=scope)  # renders the stored turns as messages
        assert plan.messages[-1].content.endswith("what did I say?")
    finally:
        memory.forget(scope=scope)


@given(
    user=clean_text,
    agent=clean_text,
    session=clean_text,
    specs=st.lists(turn_specs(hostile=False), min_size=1, max_size=4),
    as_objects=st.booleans(),
)
@example(
    user="' OR '1'='1",
    agent="$$",
    session="%s",
    specs=[{"role": "user", "content": "x", "metadata": {"f": 1e23, "t": (1, [2, (3,)]), "n": -1.5e300}}],
    as_objects=True,
)
@scaled(1.0)
def test_storable_turns_round_trip_exactly(
    memory: Memory, user: str, agent: str, session: str, specs: list[dict[str, Any]], as_objects: bool
) -> None:
    scope = scope_of(user, agent_id=agent, session_id=session)
    assume(scope is not None)  # only ids over 256 characters
    assert scope is not None
    add_and_check(memory, scope, [Turn(**spec) for spec in specs] if as_objects else specs)


@given(
    user=clean_text,
    specs=st.lists(turn_specs(), min_size=1, max_size=3),
    as_objects=st.booleans(),
)
@scaled(1.0)
def test_hostile_turns_are_refused_whole_or_stored_exactly(
    memory: Memory, user: str, specs: list[dict[str, Any]], as_objects: bool
) -> None:
    scope = scope_of(user)
    assume(scope is not None)
    assert scope is not None
    items: list[Any] = specs
    if as_objects:
        try:
            items = [Turn(**spec) for spec in specs]
        except ValidationError:  # the schema refuses it: so must memory.add, with a typed error
            items = specs
            with pytest.raises(InvalidEpisode):
                add_and_check(memory, scope, items)
            return
    with contextlib.suppress(InvalidEpisode):
        add_and_check(memory, scope, items)


@given(query=st.one_of(hostile_text, st.text(st.characters(), max_size=200)), k=st.integers(1, 5))
@scaled(1.0)
def test_recall_and_context_answer_or_refuse_hostile_queries(memory: Memory, query: str, k: int) -> None:
    scope = Scope(user_id="recall-'; --$$\\%", session_id="s")
    if not memory.store.scan(scope):
        memory.add(
            [{"role": "user", "content": f"note {i} ' OR 1=1 -- $$ % \\"} for i in range(3)], scope=scope
        )
    try:
        hits = memory.recall(query, scope=scope, k=k)
        assert len(hits) <= k and all(h.episode.scope.user_id == scope.user_id for h in hits)
    except InvalidInput as exc:
        assert not query.strip() or "query" in str(exc)
    try:
        plan = memory.context(query, scope=scope)
        assert plan.messages[-1].content.endswith(query.strip()) or query in plan.messages[-1].content
    except (InvalidInput, PromptTooLong):
        pass


def episode(scope: Scope, text: str = "fine") -> Episode:
    return Episode(scope=scope, text=text)


bad_vectors = st.one_of(
    st.lists(st.floats(-1, 1), max_size=DIMENSIONS * 2).filter(lambda v: len(v) != DIMENSIONS),
    st.lists(st.sampled_from([math.nan, math.inf, -math.inf, 10**400]), min_size=1, max_size=3).map(
        lambda bad: [0.1] * (DIMENSIONS - len(bad)) + bad
    ),
    st.sampled_from(
        [None, "x", b"y", [0.1] * (DIMENSIONS - 1) + ["0.5"], [[0.1]] * DIMENSIONS, "a" * DIMENSIONS]
    ),
    st.just([None] * DIMENSIONS),
)


@given(user=sql_text, good=st.integers(0, 40), bad=bad_vectors, data=st.data())
@scaled(1.0)
def test_bad_vectors_are_refused_and_nothing_is_written(
    store: EpisodeStore, user: str, good: int, bad: Any, data: st.DataObject
) -> None:
    scope = scope_of(user)
    assume(scope is not None)
    assert scope is not None
    batch = [episode(scope, f"ok {i}") for i in range(good + 1)]
    vectors: list[Any] = [[0.25] * DIMENSIONS for _ in range(good)]
    vectors.insert(data.draw(st.integers(0, good)), bad)
    before = store.scan(scope)
    with pytest.raises(InvalidEpisode, match="vector"):
        store.put(batch, vectors)
    assert store.scan(scope) == before
    if bad is not None:
        query = SearchQuery(scope=scope, text="ok").model_copy(update={"vector": bad})
        with pytest.raises(InvalidEpisode, match="vector"):
            hybrid_search(store, query)


@pytest.mark.parametrize("huge", [1e39, -1e300])
def test_values_beyond_float32_are_refused_by_postgres_alone(store: EpisodeStore, huge: float) -> None:
    """Finite, so every store takes them but PostgreSQL, which keeps float32 (and refuses the
    infinity they become): a typed error there, with nothing written."""
    scope = Scope(user_id=f"float32-{uuid.uuid4().hex}")
    vectors = [[0.1] * DIMENSIONS, [0.1] * (DIMENSIONS - 1) + [huge]]
    if isinstance(store, PostgresEpisodeStore):
        with pytest.raises(InvalidEpisode, match="infinite"):
            store.put([episode(scope, "a"), episode(scope, "b")], vectors)
        many = np.full((40, DIMENSIONS), 0.1)  # a matrix big enough for binary COPY, built whole
        many[39, 0] = huge
        with pytest.raises(InvalidEpisode, match="infinite"):
            store.put([episode(scope, f"m{i}") for i in range(40)], many)  # type: ignore[arg-type]  # put takes numpy matrices beyond its Sequence type
        assert store.scan(scope) == []
    else:
        assert len(store.put([episode(scope, "a"), episode(scope, "b")], vectors)) == 2
        assert store.forget(scope) == 2


def test_episodes_without_scope_or_text_are_refused(store: EpisodeStore) -> None:
    scope = Scope(user_id="constructed")
    broken = [
        Episode.model_construct(id=uuid.uuid4(), text="no scope"),  # type: ignore[call-arg]  # incomplete on purpose
        Episode.model_construct(id=uuid.uuid4(), scope=scope),  # type: ignore[call-arg]  # incomplete on purpose
        Episode.model_construct(id=uuid.uuid4(), scope=scope, text="nul \x00 byte"),
        Episode.model_construct(id=uuid.uuid4(), scope={"user_id": "dict"}, text="scope is a dict"),  # type: ignore[arg-type]  # wrong on purpose
    ]
    for item in broken:
        with pytest.raises(InvalidEpisode):
            store.put([episode(scope), item], [[0.1] * DIMENSIONS] * 2)
    assert store.scan(scope) == []
    with pytest.raises(ValidationError):  # the schema itself requires a scope
        SearchQuery(text="x")  # type: ignore[call-arg]  # no scope: the omission under test


@given(
    delta=st.integers(-4, 4),
    filler=st.sampled_from(["ab ", "\u00e9t\u00e9 ", "\u20ac ", "\U0001f600 ", "'; -- $$ % \\ "]),
)
@scaled(0.3)
def test_texts_at_the_size_limit(store: EpisodeStore, delta: int, filler: str) -> None:
    size = DEFAULT_MAX_TEXT_BYTES + delta
    unit = len(filler.encode())
    text = filler * (size // unit) + "x" * (size % unit)
    assert len(text.encode()) == size
    scope = Scope(user_id=f"huge-{uuid.uuid4().hex}")
    [vector] = EMBED.embed(["huge"])
    if size > DEFAULT_MAX_TEXT_BYTES:
        with pytest.raises(InvalidEpisode, match="over the limit"):
            store.put([episode(scope), episode(scope, text)], [vector, vector])
        assert store.scan(scope) == []
        return
    [stored] = store.put([episode(scope, text)], [vector])
    assert store.get(scope, [stored.id]) == [stored] and stored.text == text
    assert store.forget(scope) == 1


@pytest.mark.postgres
@given(size=st.integers(1, 40), position=st.data(), key_bytes=st.integers(9_000, 60_000))
@scaled(0.3)
def test_a_batch_the_database_rejects_midway_leaves_no_row(
    postgres_store: PostgresEpisodeStore, size: int, position: st.DataObject, key_bytes: int
) -> None:
    """Past validation, the database refuses one item (an idempotency key too big for its index):
    whether written by INSERTs or by COPY (32+ items), the whole batch is rolled back."""
    scope = Scope(user_id=f"midway-'; --{uuid.uuid4().hex}")
    batch = [episode(scope, f"item {i}") for i in range(size)]
    bad_at = position.draw(st.integers(0, size - 1))
    key = random.Random(key_bytes).randbytes(key_bytes // 2).hex()  # random: too big even compressed
    batch[bad_at] = Episode(scope=scope, text="too big a key", idempotency_key=key)
    with pytest.raises(InvalidEpisode, match="index row"):
        postgres_store.put(batch, EMBED.embed([e.text for e in batch]))
    assert postgres_store.scan(scope) == []


@given(user=sql_text, other=sql_text, texts=st.lists(clean_text, min_size=1, max_size=3))
@scaled(0.5)
def test_hostile_scopes_never_see_or_forget_each_other(
    store: EpisodeStore, user: str, other: str, texts: list[str]
) -> None:
    owner, stranger = scope_of(f"{user}{uuid.uuid4().hex[:6]}"), scope_of(other)
    assume(owner is not None and stranger is not None and owner.user_id != stranger.user_id)
    assert owner is not None and stranger is not None
    stored = store.put([episode(owner, t) for t in texts], EMBED.embed(texts))
    ids = [e.id for e in stored]
    try:
        assert all(e.scope.user_id == stranger.user_id for e in store.scan(stranger))
        assert store.get(stranger, ids) == []
        assert store.forget(stranger, ids) == 0
        hits = hybrid_search(store,
            SearchQuery(scope=stranger, text=" ".join(texts), vector=tuple(EMBED.embed(texts)[0]))
        )
        assert not {h.episode.id for h in hits} & set(ids)
        assert store.get(owner, ids) == stored
    finally:
        assert store.forget(owner) == len(stored)


@given(specs=st.lists(turn_specs(hostile=False), min_size=2, max_size=8))
@scaled(0.3)
def test_compress_folds_hostile_turns_without_altering_them(
    memory: Memory, specs: list[dict[str, Any]]
) -> None:
    scope = Scope(user_id=f"compress-$$'{uuid.uuid4().hex[:8]}")
    try:
        turns = memory.add([{**s, "idempotency_key": None} for s in specs], scope=scope)  # all distinct
        report = memory.compress(scope=scope, force=True)
        rows = check_round_trip(memory, scope, [])
        assert report.folds and all(set(s.covers) <= {e.id for e in rows} for s in report.folds)
        by_id = {e.id: e for e in rows}
        assert [by_id[t.id].text for t in turns] == [t.text for t in turns]  # folding never alters a turn
    finally:
        memory.forget(scope=scope)


@given(noise=hostile_text)
@scaled(0.3)
def test_a_summary_the_store_cannot_keep_falls_back_to_an_extractive_one(
    store: EpisodeStore, noise: str
) -> None:
    """The model's summary is hostile input too: every salient term plus noise; noise that cannot
    be stored means an extractive summary, and nothing unstorable is ever written."""

    def summarize(messages: Sequence[ChatMessage]) -> str:
        return " ".join(salient_terms(messages[-1].content)) + f" {noise}"

    model = ScriptedChatModel(summarize, context_window=4096)
    memory = Memory(store, EMBED, model=model, config=CONFIG)
    scope = Scope(user_id=f"summary-{uuid.uuid4().hex[:8]}")
    try:
        memory.add([{"role": "user", "content": f"Ana met Rui in Lisbon on day {i} with 42 friends"} for i in range(12)],
                   scope=scope)  # fmt: skip
        report = memory.compress(scope=scope, force=True)
        assert report.folds
        storable = noise.find("\x00") < 0 and all(not 0xD800 <= ord(c) <= 0xDFFF for c in noise)
        methods = {fold.metadata["method"] for fold in report.folds}
        if storable:  # the guard judges it as any summary (noise may read as invented words)
            assert methods <= {"model", "extractive"}
            assert all("cannot be stored" not in reason for reason in report.fallbacks), report.fallbacks
        else:
            assert methods == {"extractive"}, report.fallbacks
            assert all("cannot be stored" in reason for reason in report.fallbacks), report.fallbacks
        check_round_trip(memory, scope, [])
    finally:
        memory.forget(scope=scope)
