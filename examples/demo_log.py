"""A four-week personal-assistant log, written for the demo: daily small talk and chores, with a
few facts mentioned once, weeks before they are asked about.

Deterministic: the same log every run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

START = datetime(2026, 3, 2, 8, 30, tzinfo=UTC)
DAYS = 28


@dataclass(frozen=True)
class Question:
    """A question asked at the end, and the words its answer must contain."""

    text: str
    expected: tuple[str, ...]
    said_on_day: int


# Facts said once, on the given day, by the user; the assistant acknowledges them.
FACTS: dict[int, tuple[str, str]] = {
    1: (
        "For the record, the wifi password at the lake cabin is maple-7731.",
        "Noted: the lake cabin wifi password is maple-7731.",
    ),
    3: (
        "My sister Priya's birthday is on June 14, and she loves orchids.",
        "Got it: Priya's birthday is June 14, and she loves orchids.",
    ),
    5: (
        "Dr. Okafor moved my dentist appointment to Thursday April 9 at 10am.",
        "Understood, your appointment with Dr. Okafor is now Thursday April 9 at 10am.",
    ),
    8: (
        "The new project at work is code-named Bluefin and launches in May.",
        "Noted: project Bluefin launches in May.",
    ),
    12: (
        "I lent my green tent to Marcus; he promised to return it by Easter.",
        "Noted: Marcus has your green tent and will return it by Easter.",
    ),
}

QUESTIONS = (
    Question("What is the wifi password at the lake cabin?", ("maple-7731",), 1),
    Question("When is my sister Priya's birthday?", ("June 14",), 3),
    Question("Who has my green tent?", ("Marcus",), 12),
    Question("What is the code name of the new project at work?", ("Bluefin",), 8),
)

_CHORES = [
    ("Remind me to buy {item} on the way home.", "Sure, I'll remind you to buy {item} this evening."),
    (
        "I went for a {distance} km run along the river this morning.",
        "Nice, {distance} km is a solid run. How did it feel?",
    ),
    ("The weather is {weather} again today.", "Sounds like a {weather} day; dress accordingly."),
    (
        "Can you draft a short email to {person} about the {topic} meeting?",
        "Here's a draft: 'Hi {person}, shall we move the {topic} meeting to tomorrow?'",
    ),
    ("I finished reading a chapter of {book}.", "Great progress on {book}. Anything you liked?"),
    ("I cooked {dish} for dinner last night.", "{dish} sounds delicious."),
    ("My train was {minutes} minutes late this morning.", "Sorry about that, {minutes} minutes is annoying."),
    ("I need to water the {plant} tomorrow.", "I'll remind you about the {plant} tomorrow morning."),
    (
        "The {topic} meeting ran over again.",
        "Long meetings are tiring. Want me to block focus time after the next {topic} meeting?",
    ),
    ("I spent the evening fixing the {thing}.", "Hope the {thing} is working now."),
]
_WORDS = {
    "item": ["oat milk", "batteries", "coffee beans", "a birthday card", "lemons", "rice", "dish soap"],
    "distance": ["5", "7", "8", "10", "12"],
    "weather": ["rainy", "windy", "sunny", "foggy", "cold", "mild"],
    "person": ["Hannah", "Tom", "Lucia", "Ben", "Amira"],
    "topic": ["budget", "hiring", "roadmap", "design review", "quarterly"],
    "book": ["The Overstory", "Dune", "Middlemarch", "Project Hail Mary"],
    "dish": ["lentil soup", "mushroom risotto", "tacos", "a vegetable curry", "pasta"],
    "minutes": ["10", "15", "20", "25"],
    "plant": ["fern", "basil", "monstera", "lemon tree"],
    "thing": ["bike brakes", "kitchen tap", "printer", "garden gate"],
}


@dataclass(frozen=True)
class LogTurn:
    role: str
    text: str
    at: datetime
    day: int


def build_log(turns_per_day: int = 10, seed: int = 7) -> list[LogTurn]:
    """The whole log, in order: ``turns_per_day`` exchanges (user + assistant) per day."""
    rng = random.Random(seed)
    log: list[LogTurn] = []
    for day in range(DAYS):
        at = START + timedelta(days=day)
        exchanges = []
        for _ in range(turns_per_day):
            user, reply = rng.choice(_CHORES)
            fill = {k: rng.choice(v) for k, v in _WORDS.items()}
            exchanges.append((user.format(**fill), reply.format(**fill)))
        if day in FACTS:
            exchanges.insert(rng.randrange(1, turns_per_day), FACTS[day])
        for user, reply in exchanges:
            log.append(LogTurn("user", user, at, day))
            log.append(LogTurn("assistant", reply, at + timedelta(seconds=20), day))
            at += timedelta(minutes=rng.randint(3, 40))
    return log
