"""Time phrases of a query resolved to spans of days, for recall to favour turns from them.

A question names a time in many ways besides a full date (:func:`memstrata.cues.named_days`):
a month ("in May 2023", "in June"), a year ("in 2022"), an offset from a date ("the week before
3 August 2023", "two weeks after 1 May 2023"), or a time relative to when it is asked ("last
week", "three days ago", "yesterday"). Each is resolved here to a span of days; a month or a
relative phrase without a year is read as the latest such period up to the question's time.

A turn that tells of an event is usually said on the day of the event or some days after it
("I went camping last week"), so a span also covers :data:`REPORT_LAG_DAYS` after its end. English
only; a phrase that is not understood names nothing.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta

__all__ = ["REPORT_LAG_DAYS", "DaySpan", "named_spans"]

REPORT_LAG_DAYS = 7
"""Days after a span that still count: a turn reports an event on its day or within a week."""

_MONTH_NAMES = {
    name: number
    for number, names in enumerate(
        (
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ),
        start=1,
    )
    for name in names
}
_NUMBERS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "couple of": 2, "few": 3, "several": 3,
}  # fmt: skip
_UNIT_DAYS = {"day": 1, "night": 1, "week": 7, "weekend": 7, "month": 31, "year": 366}

_MONTH_WORDS = "|".join(sorted(_MONTH_NAMES, key=len, reverse=True))
_MONTH = rf"(?P<month>{_MONTH_WORDS})\.?"
_YEAR = r"(?P<year>(?:19|20)\d\d)"
_COUNT = r"(?P<count>\d{1,3}|" + "|".join(sorted(_NUMBERS, key=len, reverse=True)) + ")"
_UNIT = r"(?P<unit>day|night|week|weekend|month|year)s?"
_DATE = (
    rf"(?:(?P<d1>\d{{1,2}})(?:st|nd|rd|th)?(?:\s+of)?\s+(?P<m1>{_MONTH_WORDS})\.?,?\s+(?P<y1>\d{{4}})"
    rf"|(?P<m2>{_MONTH_WORDS})\.?\s+(?P<d2>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<y2>\d{{4}}))"
)

_MONTH_YEAR = re.compile(rf"(?<![\d\w])(?<!\d\s){_MONTH},?\s+{_YEAR}\b", re.IGNORECASE)
_MONTH_ALONE = re.compile(
    rf"\b(?:in|during|of|since|early|late|mid)\s+(?:-\s*)?{_MONTH}(?!\s*\d)\b", re.IGNORECASE
)
_YEAR_ALONE = re.compile(rf"\b(?:in|during|of)\s+{_YEAR}\b", re.IGNORECASE)
_OFFSET = re.compile(
    rf"\b(?:(?:the|last)\s+)?(?:{_COUNT}\s+)?{_UNIT}\s+(?P<side>before|after|prior\s+to|following)\s+(?:the\s+)?{_DATE}",
    re.IGNORECASE,
)
_AGO = re.compile(rf"\b{_COUNT}\s+{_UNIT}\s+ago\b", re.IGNORECASE)
_LAST = re.compile(r"\b(?P<which>last|this|past)\s+(?P<unit>week|weekend|month|year)\b", re.IGNORECASE)
_YESTERDAY = re.compile(r"\byesterday\b", re.IGNORECASE)
_FULL_DATE = re.compile(_DATE, re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class DaySpan:
    """Days ``first`` to ``last``, both included."""

    first: date
    last: date

    def holds(self, day: date, *, lag_days: int = REPORT_LAG_DAYS) -> bool:
        """Whether a turn said on ``day`` may tell of this span (up to ``lag_days`` after it)."""
        return self.first <= day <= self.last + timedelta(days=lag_days)


def _month_span(year: int, month: int) -> DaySpan:
    return DaySpan(date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1]))


def _count(text: str | None) -> int:
    if not text:
        return 1
    return int(text) if text.isdigit() else _NUMBERS[" ".join(text.lower().split())]


def _blank(match: re.Match[str]) -> str:
    """Spaces in place of a phrase already read, so no other pattern reads it again."""
    return " " * len(match.group(0))


def _date_of(match: re.Match[str]) -> date | None:
    """The full date a :data:`_DATE` pattern matched, or None (e.g. 30 February)."""
    side = "1" if match.group("m1") else "2"
    month = _MONTH_NAMES[match.group("m" + side).lower()]
    try:
        return date(int(match.group("y" + side)), month, int(match.group("d" + side)))
    except ValueError:
        return None


def named_spans(query: str, today: date) -> tuple[DaySpan, ...]:
    """The spans of days the time phrases of ``query`` name, read as asked on ``today``.

    Full dates alone are left to :func:`memstrata.cues.named_days` (they name a day, not a span).

    Args:
        query: the question.
        today: the day it is asked (relative phrases and months without a year count from it).

    Returns:
        The spans, in order of appearance, once each.
    """
    found: list[tuple[int, DaySpan]] = []
    for m in _OFFSET.finditer(query):
        anchor = _date_of(m)
        if anchor is None:
            continue
        length = timedelta(days=_count(m.group("count")) * _UNIT_DAYS[m.group("unit").lower()])
        before = m.group("side").lower() == "before" or m.group("side").lower().startswith("prior")
        found.append(
            (m.start(), DaySpan(anchor - length, anchor) if before else DaySpan(anchor, anchor + length))
        )
    dated = _FULL_DATE.sub(_blank, _OFFSET.sub(_blank, query))  # a full date's month is no month span
    for m in _MONTH_YEAR.finditer(dated):
        found.append((m.start(), _month_span(int(m.group("year")), _MONTH_NAMES[m.group("month").lower()])))
    for m in _MONTH_ALONE.finditer(dated):
        month = _MONTH_NAMES[m.group("month").lower()]
        if m.group("month").lower() == "may" and m.group(0)[:2].lower() != "in":
            continue  # after any word but "in", "may" is too often the verb
        year = today.year if month <= today.month else today.year - 1
        found.append((m.start(), _month_span(year, month)))
    for m in _YEAR_ALONE.finditer(dated):
        year = int(m.group("year"))
        found.append((m.start(), DaySpan(date(year, 1, 1), date(year, 12, 31))))
    found.extend(_relative(dated, today))
    found.sort(key=lambda pair: pair[0])
    return tuple(dict.fromkeys(span for _, span in found))


def _relative(query: str, today: date) -> list[tuple[int, DaySpan]]:
    """Spans counted back from ``today``: "yesterday", "last week", "three days ago"."""
    found = [(m.start(), DaySpan(today - timedelta(days=1), today)) for m in _YESTERDAY.finditer(query)]
    for m in _AGO.finditer(query):
        back = timedelta(days=_count(m.group("count")) * _UNIT_DAYS[m.group("unit").lower()])
        slack = timedelta(days=_UNIT_DAYS[m.group("unit").lower()])
        found.append((m.start(), DaySpan(today - back - slack, today - back + slack)))
    for m in _LAST.finditer(query):
        unit = m.group("unit").lower()
        if unit == "year":
            year = today.year - (0 if m.group("which").lower() == "this" else 1)
            found.append((m.start(), DaySpan(date(year, 1, 1), date(year, 12, 31))))
        elif unit == "month" and m.group("which").lower() == "last":
            first = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
            found.append((m.start(), _month_span(first.year, first.month)))
        else:
            length = timedelta(
                days=31 if unit == "month" else 7 if m.group("which").lower() == "this" else 14
            )
            found.append((m.start(), DaySpan(today - length, today)))
    return found
