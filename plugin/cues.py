"""Query cues: the speakers and the days a query names, and the weight they give a recalled turn.

A question often says whose words it is after ("What did Melanie paint?") or when they were said
("... on 3 June, 2023"). The two retrievers use neither well: a speaker's name is common in their
own conversation, so the full-text side drops it as uninformative, and a date matches no word of
the turn it points at (a turn's date is its timestamp, not its text). So recall re-weighs its
fused candidates: a turn by a speaker the query names, or from a day the query names, counts its
fused score that many times (:attr:`~memstrata.schemas.config.RecallConfig.speaker_boost`,
:attr:`~memstrata.schemas.config.RecallConfig.date_boost`). With the default 2 a cued turn found
by one retriever ranks like an uncued turn found by both, near the same ranks.

Names are matched case-sensitively as whole words (``Melanie's`` names Melanie; ``will`` does not
name Will); a name of several words is also named by its first word. Dates are English: ``3 June
2023``, ``3rd of June, 2023``, ``June 3, 2023``, ``Jun 3 2023`` or ``2023-06-03``; a date without
a year names no day. A named day also covers the day before and the day after it (a query's dates
are the user's; a turn's timestamp may be in another time zone). Other time phrases (a month, a
year, "the week before 3 August 2023", "last week") name spans of days
(:mod:`memstrata.time_phrases`); a turn from a named span counts its score
:attr:`~memstrata.schemas.config.RecallConfig.span_boost` times.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from memstrata.time_phrases import DaySpan, named_spans

__all__ = ["QueryCues", "named_days", "named_speakers", "query_cues"]

_MONTHS = {
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
_MONTH = "(" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_DAY = r"(\d{1,2})(?:st|nd|rd|th)?"
_DAY_MONTH_YEAR = re.compile(rf"\b{_DAY}(?:\s+of)?\s+{_MONTH},?\s+(\d{{4}})\b", re.IGNORECASE)
_MONTH_DAY_YEAR = re.compile(rf"\b{_MONTH}\s+{_DAY},?\s+(\d{{4}})\b", re.IGNORECASE)
_ISO_DAY = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_SLACK_DAYS = 1


def named_days(query: str) -> tuple[date, ...]:
    """The calendar days written in ``query`` (with a year), in order of appearance, once each."""
    found: list[tuple[int, date]] = []
    for pattern, order in ((_DAY_MONTH_YEAR, "dmy"), (_MONTH_DAY_YEAR, "mdy"), (_ISO_DAY, "ymd")):
        for m in pattern.finditer(query):
            parts = dict(zip(order, m.groups(), strict=True))
            month = parts["m"] if order == "ymd" else _MONTHS[parts["m"].lower()]
            try:
                found.append((m.start(), date(int(parts["y"]), int(month), int(parts["d"]))))
            except ValueError:  # 30 February
                continue
    return tuple(dict.fromkeys(day for _, day in sorted(found)))


def named_speakers(query: str, speakers: Iterable[str]) -> frozenset[str]:
    """The ``speakers`` that ``query`` names: the whole name, or its first word, as a whole word."""
    named = set()
    for speaker in speakers:
        words = speaker.split()
        for name in {speaker.strip(), words[0] if words else ""}:
            if len(name) > 1 and re.search(rf"(?<!\w){re.escape(name)}(?!\w)", query):
                named.add(speaker)
                break
    return frozenset(named)


@dataclass(frozen=True, slots=True)
class QueryCues:
    """What a query names: speakers, days (each covering a day of slack either side) and spans of
    days."""

    speakers: frozenset[str] = frozenset()
    days: tuple[date, ...] = ()
    spans: tuple[DaySpan, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.speakers or self.days or self.spans)

    def weight(
        self,
        speaker: str | None,
        occurred_at: datetime | None,
        *,
        speaker_boost: float,
        date_boost: float,
        span_boost: float = 1.0,
    ) -> float:
        """The factor on a candidate's fused score, from its speaker and time (what a rank-only
        search row carries): ``speaker_boost`` if it is by a named speaker, times ``date_boost`` if it
        happened on a named day, else ``span_boost`` if in a named span; 1 otherwise."""
        factor = speaker_boost if speaker is not None and speaker in self.speakers else 1.0
        if occurred_at is not None and (self.days or self.spans):
            when = occurred_at.date()
            if any(abs((when - day).days) <= _SLACK_DAYS for day in self.days):
                factor *= date_boost
            elif any(span.holds(when) for span in self.spans):
                factor *= span_boost
        return factor


def query_cues(query: str, speakers: Iterable[str], *, today: date | None = None) -> QueryCues:
    """The cues of ``query`` given the speakers of the candidate episodes.

    Args:
        query: the user's query.
        speakers: speaker names of the candidates (None-free; duplicates are fine).
        today: the day the query is asked; without it, no spans are read.

    Returns:
        The named speakers, days and spans (empty when the query names none).
    """
    spans = named_spans(query, today) if today is not None else ()
    return QueryCues(named_speakers(query, set(speakers)), named_days(query), spans)
