"""LoCoMo conversations: loading, validation, session dates, turn rendering, evidence ids.

The format (Maharana et al., 2024) is a JSON list of samples, each with ``sample_id``, a
``conversation`` (``speaker_a``, ``speaker_b``, ``session_N`` turn lists and their
``session_N_date_time`` strings such as ``"1:56 pm on 8 May, 2023"``) and ``qa`` (``question``,
``answer``, ``evidence`` dia_ids, ``category`` 1-5). Any file in that format loads; nothing here
knows particular conversations.

Dates carry no time zone in the data: they are read as UTC. A few evidence ids match no turn
exactly (``"D8:6; D9:17"``, ``"D30:05"``, ``"D:11:26"``); they are split and normalized, and the
ones that still match nothing are dropped and counted (:class:`EvidenceReport`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from memstrata.errors import InvalidInput

__all__ = [
    "TURN_SPACING",
    "Conversation",
    "EvidenceReport",
    "LocomoTurn",
    "Question",
    "Session",
    "load_locomo",
    "match_evidence",
    "parse_locomo",
    "parse_session_date",
    "render_turn",
]

_SESSION_KEY = re.compile(r"^session_(\d+)$")
_DATE_FORMATS = (
    "%I:%M %p on %d %B, %Y",
    "%I:%M %p on %d %B %Y",
    "%I:%M %p on %d %b, %Y",
    "%I:%M %p on %d %b %Y",
    "%H:%M on %d %B, %Y",
    "%d %B, %Y",
    "%d %B %Y",
)
_DIA_ID = re.compile(r"^D:?(\d+):0*(\d+)$")
_EVIDENCE_SPLIT = re.compile(r"[;,\s]+")
TURN_SPACING = timedelta(seconds=5)
"""Turns of a session are replayed this far apart, in order, from the session's date."""


@dataclass(frozen=True, slots=True)
class LocomoTurn:
    """One turn of a LoCoMo conversation.

    ``text`` is the utterance as written; ``caption`` the ``blip_caption`` of a shared image.
    ``rendered`` is the line every baseline puts in its context: ``[date] speaker: text``.
    """

    dia_id: str
    session: int
    index: int
    speaker: str
    text: str
    caption: str | None
    occurred_at: datetime
    date_text: str

    @property
    def content(self) -> str:
        """The utterance with the shared image described, as a user's agent would store it."""
        return self.text if self.caption is None else f"{self.text} {_photo(self.caption)}".strip()

    @property
    def rendered(self) -> str:
        return render_turn(self)


@dataclass(frozen=True, slots=True)
class Session:
    """One session: its number, its start time and its turns in order."""

    number: int
    started_at: datetime
    date_text: str
    turns: tuple[LocomoTurn, ...]


@dataclass(frozen=True, slots=True)
class Question:
    """One QA item. ``evidence`` holds the dia_ids that matched a turn (after normalization);
    ``answer`` is None for adversarial questions (category 5), which have no gold answer."""

    question: str
    answer: str | None
    category: int
    evidence: tuple[str, ...]
    raw_evidence: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EvidenceReport:
    """How the evidence ids of a file matched its turns."""

    exact: int = 0
    repaired: int = 0
    unmatched: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Conversation:
    """One LoCoMo sample: speakers, sessions in order, questions, and the evidence report."""

    sample_id: str
    speaker_a: str
    speaker_b: str
    sessions: tuple[Session, ...]
    questions: tuple[Question, ...]
    evidence_report: EvidenceReport = field(default_factory=EvidenceReport)

    @property
    def turns(self) -> tuple[LocomoTurn, ...]:
        return tuple(t for s in self.sessions for t in s.turns)


def _photo(caption: str) -> str:
    caption = caption.strip()
    if caption.startswith("a photography of"):
        caption = "a photo of" + caption[len("a photography of") :]
    return f"[shares {caption}]"


def render_turn(turn: LocomoTurn) -> str:
    """``[date] speaker: text``, with a shared image as ``[shares a photo of ...]``."""
    return f"[{turn.date_text}] {turn.speaker}: {turn.content}"


def parse_session_date(text: str) -> datetime:
    """Parse a LoCoMo session date such as ``"1:56 pm on 8 May, 2023"`` as UTC.

    Args:
        text: the ``session_N_date_time`` value.

    Returns:
        A timezone-aware datetime (UTC; the data carries no zone).

    Raises:
        InvalidInput: the text is not a date in a known LoCoMo form.
    """
    cleaned = " ".join(str(text).split())
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(cleaned, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise InvalidInput(f"session date {text!r} is not like '1:56 pm on 8 May, 2023'")


def load_locomo(path: str | Path) -> list[Conversation]:
    """Load and validate a LoCoMo-format JSON file.

    Args:
        path: the JSON file (a list of samples).

    Returns:
        The conversations in file order.

    Raises:
        InvalidInput: the file is missing, is not JSON, or is not in the LoCoMo format (the
            message names the sample, the key and the problem).
    """
    source = Path(path)
    try:
        raw = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(f"{source}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"{source}: cannot read as JSON: {exc}") from exc
    return parse_locomo(raw, origin=source.name)


def parse_locomo(raw: Any, *, origin: str = "<data>") -> list[Conversation]:
    """Validate already-decoded LoCoMo data (see :func:`load_locomo`).

    Raises:
        InvalidInput: the data is not in the LoCoMo format.
    """
    if not isinstance(raw, list) or not raw:
        raise InvalidInput(f"{origin}: expected a non-empty JSON list of samples, got {type(raw).__name__}")
    conversations = []
    seen: set[str] = set()
    for position, sample in enumerate(raw):
        where = f"{origin}: sample {position}"
        if not isinstance(sample, dict):
            raise InvalidInput(f"{where}: expected an object, got {type(sample).__name__}")
        sample_id = str(sample.get("sample_id", f"sample-{position}"))
        where = f"{origin}: sample {position} ({sample_id})"
        if sample_id in seen:
            raise InvalidInput(f"{where}: duplicate sample_id")
        seen.add(sample_id)
        conversations.append(_parse_sample(sample, sample_id, where))
    return conversations


def _require(mapping: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in mapping:
        raise InvalidInput(f"{where}: missing {key!r}")
    value = mapping[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InvalidInput(f"{where}: {key!r} has the wrong type ({type(value).__name__})")
    return value


def _parse_sample(sample: dict[str, Any], sample_id: str, where: str) -> Conversation:
    conv = _require(sample, "conversation", dict, where)
    speaker_a = _require(conv, "speaker_a", str, f"{where}: conversation")
    speaker_b = _require(conv, "speaker_b", str, f"{where}: conversation")
    numbers = sorted(int(m.group(1)) for key in conv if (m := _SESSION_KEY.match(key)))
    if not numbers:
        raise InvalidInput(f"{where}: conversation has no session_N turn lists")
    sessions = []
    for number in numbers:
        key = f"session_{number}"
        date_text = _require(conv, f"{key}_date_time", str, f"{where}: conversation")
        try:
            started = parse_session_date(date_text)
        except InvalidInput as exc:
            raise InvalidInput(f"{where}: {key}_date_time: {exc}") from None
        turns_raw = _require(conv, key, list, f"{where}: conversation")
        turns = tuple(
            _parse_turn(t, number, i, started, date_text, f"{where}: {key} turn {i}")
            for i, t in enumerate(turns_raw)
        )
        sessions.append(Session(number, started, " ".join(date_text.split()), turns))
    ids = [t.dia_id for s in sessions for t in s.turns]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        raise InvalidInput(f"{where}: duplicate dia_id(s) {dupes[:5]}")
    questions, report = _parse_questions(sample, set(ids), where)
    return Conversation(sample_id, speaker_a, speaker_b, tuple(sessions), questions, report)


def _parse_turn(
    raw: Any, session: int, index: int, started: datetime, date_text: str, where: str
) -> LocomoTurn:
    if not isinstance(raw, dict):
        raise InvalidInput(f"{where}: expected an object, got {type(raw).__name__}")
    caption = raw.get("blip_caption")
    if caption is not None and not isinstance(caption, str):
        raise InvalidInput(f"{where}: 'blip_caption' has the wrong type ({type(caption).__name__})")
    return LocomoTurn(
        dia_id=_require(raw, "dia_id", str, where).strip(),
        session=session,
        index=index,
        speaker=_require(raw, "speaker", str, where),
        text=_require(raw, "text", str, where),
        caption=caption or None,
        occurred_at=started + index * TURN_SPACING,
        date_text=" ".join(date_text.split()),
    )


def _normalize_dia_id(raw: str) -> str | None:
    match = _DIA_ID.match(raw.strip())
    return f"D{int(match.group(1))}:{int(match.group(2))}" if match else None


def match_evidence(raw: Sequence[str], turn_ids: set[str]) -> tuple[list[str], int, int, list[str]]:
    """Resolve evidence ids against the conversation's turn ids.

    Returns:
        (matched ids in order without repeats, exact matches, repaired matches, unmatched pieces).
    """
    matched: list[str] = []
    exact = repaired = 0
    unmatched: list[str] = []
    for item in raw:
        if item in turn_ids:
            exact += 1
            if item not in matched:
                matched.append(item)
            continue
        for piece in filter(None, _EVIDENCE_SPLIT.split(item)):
            fixed = _normalize_dia_id(piece)
            if fixed is not None and fixed in turn_ids:
                repaired += 1
                if fixed not in matched:
                    matched.append(fixed)
            else:
                unmatched.append(piece)
    return matched, exact, repaired, unmatched


def _parse_questions(
    sample: dict[str, Any], turn_ids: set[str], where: str
) -> tuple[tuple[Question, ...], EvidenceReport]:
    items = _require(sample, "qa", list, where)
    questions = []
    exact = repaired = 0
    unmatched: list[str] = []
    for i, item in enumerate(items):
        at = f"{where}: qa {i}"
        if not isinstance(item, dict):
            raise InvalidInput(f"{at}: expected an object, got {type(item).__name__}")
        question = _require(item, "question", str, at)
        category = _require(item, "category", int, at)
        if not 1 <= category <= 5:
            raise InvalidInput(f"{at}: category must be 1-5, got {category}")
        answer = item.get("answer")
        if answer is None and category != 5:
            raise InvalidInput(f"{at}: missing 'answer' (only category 5 may omit it)")
        if answer is not None and (isinstance(answer, bool) or not isinstance(answer, (str, int, float))):
            raise InvalidInput(f"{at}: 'answer' must be a string or a number, got {type(answer).__name__}")
        evidence_raw = item.get("evidence", [])
        if not isinstance(evidence_raw, list) or not all(isinstance(e, str) for e in evidence_raw):
            raise InvalidInput(f"{at}: 'evidence' must be a list of dia_id strings")
        matched, n_exact, n_repaired, missing = match_evidence(evidence_raw, turn_ids)
        exact += n_exact
        repaired += n_repaired
        unmatched.extend(missing)
        questions.append(
            Question(
                question=question,
                answer=None if answer is None else str(answer),
                category=category,
                evidence=tuple(matched),
                raw_evidence=tuple(evidence_raw),
            )
        )
    return tuple(questions), EvidenceReport(exact, repaired, tuple(unmatched))
