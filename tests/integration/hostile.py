"""Hypothesis strategies for hostile input, shared by ``test_hostile_input`` and ``test_hostile_http``.

Two families: *storable* values (SQL metacharacters, any valid Unicode, extreme numbers and
dates, deep JSON: everything memstrata must store and give back unchanged) and *hostile* ones,
which add what it must refuse with a typed error (NUL bytes, lone surrogates, NaN, naive or
out-of-range timestamps, non-JSON metadata, metadata nested too deep, unknown roles).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st

SQL_FRAGMENTS = (
    "'", "''", '"', ";", "--", "/*", "*/", "$$", "$tag$", "\\", "\\\\", "%", "%s", "%%", "%(user_id)s",
    "{}", "\\x00", "\\u0000", "' OR '1'='1", "'; DROP TABLE memstrata.episodes; --", "$1", "E'\\\\'",
    "\n", "\r\n", "\t", "\u2028", "\ufeff", "\U0001f600", "e\u0301", "\u0130", " ", "NULL", "null",
)  # fmt: skip
BAD_CHARS = ("\x00", "\ud800", "\udfff", "\udc80")
ROLES = ("system", "user", "assistant", "tool")
RESERVED_KEYS = ("memstrata.tool_calls", "memstrata.tool_call_id")  # where Memory keeps tool calls

_storable_chars = st.characters(codec="utf-8", exclude_characters="\x00")  # any code point but those
sql_text = st.lists(
    st.one_of(st.sampled_from(SQL_FRAGMENTS), st.text(_storable_chars, max_size=4)), min_size=1, max_size=8
).map("".join)
"""Text made of SQL metacharacters and small random runs: valid UTF-8, no NUL (may be blank)."""

storable_text = st.one_of(sql_text, st.text(_storable_chars, max_size=20))
"""Every string memstrata must store unchanged."""

clean_text = storable_text.map(lambda t: t if t.strip() else f"{t}x")
"""Storable and not blank (episode texts and ids must not be blank)."""


@st.composite
def _tainted(draw: st.DrawFn, base: st.SearchStrategy[str]) -> str:
    text = draw(base)
    at = draw(st.integers(0, len(text)))
    return text[:at] + draw(st.sampled_from(BAD_CHARS)) + text[at:]


hostile_text = st.one_of(
    storable_text,
    st.text(st.characters(), max_size=12),  # any code point, lone surrogates included
    _tainted(st.one_of(sql_text, st.text(max_size=6))),
)
"""Any string a hostile caller might send: storable or not."""

_storable_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(min_value=1e16, max_value=1e300),  # written as 1e+23: PostgreSQL's numeric lost them
    st.sampled_from([1e16, 1e23, -1.5e300, 5e-324, -0.0, 2**53 + 1]),
    st.integers(3990, 3999).map(lambda digits: 10**digits),  # the most digits metadata takes: 4000
    storable_text,
)
_hostile_leaf = st.one_of(
    _storable_leaf,
    st.floats(),  # NaN and infinities: JSON cannot hold them
    st.integers(4001, 4400).map(lambda digits: -(10**digits)),  # JSON encoders stop at 4300 digits
    hostile_text,
)


def _json(leaf: st.SearchStrategy[Any], key: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.tuples(inner, inner), st.dictionaries(key, inner, max_size=3)
        ),
        max_leaves=8,
    )


NOT_JSON: tuple[Any, ...] = (
    {1, 2},
    b"bytes",
    datetime(2024, 1, 1, tzinfo=UTC),
    1 + 2j,
    Decimal("1.5"),
    uuid.UUID(int=7),
    object(),
    {1: "non-string key"},
    {None: "none key"},
)


def _nest(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": "'; --"}
    for level in range(depth):
        value = {f"k{level}'": value} if level % 2 else {"l": [value]}
    return value


def _metadata(
    leaf: st.SearchStrategy[Any], key: st.SearchStrategy[str], depth: int
) -> st.SearchStrategy[Any]:
    value = _json(leaf, key)
    return st.one_of(
        st.dictionaries(key, value, max_size=4),
        st.dictionaries(st.sampled_from(RESERVED_KEYS), st.one_of(st.lists(value, max_size=2), value)),
        st.integers(0, depth).map(_nest),
    )


storable_metadata = _metadata(_storable_leaf, storable_text, 20)  # _nest(20): 31 levels, the most allowed
hostile_metadata = st.one_of(
    _metadata(_hostile_leaf, hostile_text, 40),  # the limit is 32 levels
    st.builds(lambda key, bad: {key: bad}, hostile_text, st.sampled_from(NOT_JSON)),
    st.sampled_from(NOT_JSON),  # not even a dict
)


def _in_utc_range(moment: datetime) -> bool:
    try:
        moment.astimezone(UTC)
    except OverflowError:
        return False
    return True


_offsets = st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
storable_datetimes = st.datetimes(timezones=_offsets).filter(_in_utc_range)
"""Aware datetimes from year 1 to 9999 at any offset (but still inside that range in UTC)."""
hostile_datetimes = st.one_of(st.datetimes(timezones=_offsets), st.datetimes())  # naive: refused
timestamp_strings = st.one_of(
    hostile_datetimes.map(datetime.isoformat),
    st.sampled_from(
        [
            "0000-01-01T00:00:00Z", "10000-01-01T00:00:00Z", "2024-02-30T00:00:00Z", "2024-01-01T25:00:00Z",
            "2024-01-01T00:00:00+24:00", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00",
            "2024-01-01", "", "now", "NaN", "-infinity", "2024-01-01T00:00:00.1234567Z", "'; --",
        ]
    ),
    st.text(max_size=25),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(),
)  # fmt: skip
hostile_roles = st.one_of(st.sampled_from(ROLES), hostile_text, st.none(), st.integers())


FIELDS = ("role", "content", "speaker", "occurred_at", "metadata", "idempotency_key")


@st.composite
def turn_specs(draw: st.DrawFn, *, hostile: bool = True) -> dict[str, Any]:
    """A turn as the fields of :class:`memstrata.schemas.Turn`: always storable unless ``hostile``
    (then one field, or none, is drawn from its hostile strategy, which may still be storable)."""
    bad = draw(st.sampled_from((None, *FIELDS))) if hostile else None

    def pick(field: str, storable: st.SearchStrategy[Any], hostile_values: st.SearchStrategy[Any]) -> Any:
        return draw(hostile_values if field == bad else storable)

    spec: dict[str, Any] = {
        "role": pick("role", st.sampled_from(ROLES), hostile_roles),
        "content": pick("content", clean_text, hostile_text),
    }
    if bad == "speaker" or draw(st.booleans()):
        spec["speaker"] = pick("speaker", st.none() | storable_text, hostile_text)
    if bad == "occurred_at" or draw(st.booleans()):
        spec["occurred_at"] = pick(
            "occurred_at", storable_datetimes, st.one_of(hostile_datetimes, timestamp_strings)
        )
    if bad == "metadata" or draw(st.booleans()):
        spec["metadata"] = pick("metadata", storable_metadata, hostile_metadata)
    if bad == "idempotency_key" or draw(st.booleans()):
        spec["idempotency_key"] = pick("idempotency_key", st.none() | storable_text, hostile_text)
    return spec


def scaled(share: float) -> settings:
    """The active profile's example count (``MEMSTRATA_HYPOTHESIS_PROFILE``) times ``share``."""
    return settings(max_examples=max(5, round(settings().max_examples * share)))
