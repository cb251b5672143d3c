"""The generated conversation corpus of ``memstrata bench store``.

Texts are realistic chat turns (one to three sentences from ~30 templates and a few hundred
names, places, activities and things), so full-text search has real words to match. Vectors are
real MiniLM embeddings: a few thousand distinct sentences are embedded, and each episode's
vector is the normalized mean of its sentences' vectors (what mean pooling nearly gives for the
concatenated turn; the bench reports the measured cosine between the two on a sample). Queries
are generated questions, embedded for real.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from memstrata.ports import Embedder

Matrix = npt.NDArray[np.float32]

_NAMES = [
    "Caroline",
    "Melanie",
    "Jon",
    "Gina",
    "Audrey",
    "Andrew",
    "Maria",
    "John",
    "Tim",
    "Deborah",
    "Jolene",
    "Evan",
    "Sam",
    "Nate",
    "Joanna",
    "Calvin",
    "Dave",
    "Priya",
    "Omar",
    "Lucia",
    "Kenji",
    "Fatima",
    "Oskar",
    "Ingrid",
    "Mateo",
    "Aisha",
    "Liam",
    "Chloe",
    "Ravi",
    "Hana",
    "Diego",
    "Elena",
    "Marcus",
    "Yuki",
    "Noah",
    "Zara",
    "Felix",
    "Amara",
    "Theo",
    "Nadia",
]
_RELATIVES = ["my sister", "my mom", "my dad", "my best friend", "our neighbor", "my coworker", "my grandma",
              "my brother", "my cousin", "the kids", "my husband", "my wife", "my roommate", "my boss"]  # fmt: skip
_ACTIVITIES = [
    "painting", "pottery", "hiking", "running", "swimming", "baking bread", "playing guitar", "learning Spanish",
    "volunteering at the animal shelter", "gardening", "camping", "reading mystery novels", "photography", "yoga",
    "rock climbing", "knitting", "cooking Thai food", "birdwatching", "surfing", "playing chess", "journaling",
    "salsa dancing", "woodworking", "skateboarding", "writing poetry", "fishing", "ice skating", "kayaking",
    "playing the violin", "meditating", "cycling", "bouldering", "sketching portraits", "making candles",
    "brewing kombucha", "training for a marathon", "coaching little league", "restoring old furniture",
]  # fmt: skip
_PLACES = [
    "the lake", "the park downtown", "the beach", "the public library", "the farmers market", "the art museum",
    "the mountains", "the community center", "the coffee shop on Main Street", "the gym", "the botanical garden",
    "the old harbor", "the climbing gym", "the bookstore", "the zoo", "the youth center", "the LGBTQ support group",
    "the pottery studio", "the dog park", "the night market", "the concert hall", "the campus", "the hospital",
    "the bakery around the corner", "the ski resort", "the aquarium", "the animal shelter", "the city pool",
]  # fmt: skip
_CITIES = ["Paris", "Seattle", "Lisbon", "Tokyo", "Chicago", "Sweden", "Boston", "Mexico City", "Denver", "Rome",
           "Vancouver", "Nairobi", "Berlin", "Austin", "Dublin", "Seoul"]  # fmt: skip
_TIMES = ["yesterday", "last weekend", "last Tuesday", "this morning", "two weeks ago", "in June", "last summer",
          "on my birthday", "last night", "over the holidays", "a few days ago", "last month", "in the spring",
          "on Friday", "after work", "this afternoon"]  # fmt: skip
_FEELINGS = ["so relaxing", "really inspiring", "exhausting but fun", "a bit scary", "amazing", "so peaceful",
             "surprisingly hard", "really emotional", "super rewarding", "hilarious", "kind of stressful",
             "totally worth it", "a great way to unwind", "eye-opening"]  # fmt: skip
_THINGS = ["a necklace", "a new bike", "a puppy", "a painting of a sunset", "a cookbook", "concert tickets",
           "a vintage camera", "a handmade bowl", "a telescope", "a pair of hiking boots", "a journal",
           "a guitar", "a kitten", "a sourdough starter", "a bracelet", "a quilt", "a board game",
           "a plant", "a watercolor set", "a scarf"]  # fmt: skip
_TOPICS = ["adoption agencies", "a new job", "college applications", "counseling programs", "a road trip",
           "moving to a bigger apartment", "starting a small business", "mental health resources",
           "volunteer opportunities", "graduate school", "buying a house", "electric cars", "a career change",
           "summer camps for the kids", "a charity run", "learning to code"]  # fmt: skip
_PETS = ["dog", "cat", "rabbit", "parrot", "turtle", "hamster"]
_PET_NAMES = ["Luna", "Max", "Oliver", "Bailey", "Pepper", "Mochi", "Biscuit", "Ziggy", "Nala", "Oscar"]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_HOURS = ["6 pm", "7:30 am", "noon", "9 am", "5 pm", "8 pm", "10 am"]
_EVENTS = ["pottery class", "book club", "yoga session", "support group", "choir practice", "cooking class",
           "chess club", "art workshop", "running club", "language exchange"]  # fmt: skip

_STATEMENTS = [
    "I went {activity} at {place} {time} and it was {feeling}.",
    "{name} and I tried {activity} {time}.",
    "{name} gave me {thing} {time}.",
    "I've been researching {topic} lately.",
    "{relative} is visiting {city} {time}.",
    "We adopted a {pet} and named her {pet_name}.",
    "I'm thinking of signing up for a {activity} class at {place}.",
    "Honestly, {activity} has been {feeling} for me.",
    "Did you hear that {name} is moving to {city}?",
    "{name} took me to {place} {time}, it was {feeling}.",
    "We're planning a trip to {city} with {relative}.",
    "The {event} at {place} starts at {hour} on {day}s.",
    "I lost {thing} at {place} {time}.",
    "{relative} got me into {activity} years ago.",
    "That sounds {feeling}! How long have you been {activity}?",
    "I finally finished {thing} for {name}.",
    "My {pet} {pet_name} loves going to {place}.",
    "I talked to {name} about {topic} {time}.",
    "Thanks! {relative} and I went to {city} {time}.",
    "I want to get better at {activity} this year.",
    "We had a picnic at {place} with {relative} {time}.",
    "{name} recommended {place} for {activity}.",
    "I can't believe {name} remembered my birthday, she bought me {thing}.",
    "Going to the {event} on {day} really helps me.",
    "After {activity} {time} I felt {feeling}.",
    "I'm nervous about {topic}, but {name} has been supportive.",
]
_QUESTIONS = [
    "When did I go {activity} at {place}?",
    "What did {name} give me?",
    "Who is moving to {city}?",
    "What have I been researching about {topic}?",
    "Where does my {pet} like to go?",
    "When does the {event} start?",
    "Where did {name} take me?",
    "What did I lose at {place}?",
    "Who got me into {activity}?",
    "Where are we planning a trip with {relative}?",
    "What did {name} recommend for {activity}?",
    "How did I feel after {activity}?",
]


def _fill(template: str, rng: random.Random) -> str:
    slots = {
        "name": rng.choice(_NAMES), "relative": rng.choice(_RELATIVES), "activity": rng.choice(_ACTIVITIES),
        "place": rng.choice(_PLACES), "city": rng.choice(_CITIES), "time": rng.choice(_TIMES),
        "feeling": rng.choice(_FEELINGS), "thing": rng.choice(_THINGS), "topic": rng.choice(_TOPICS),
        "pet": rng.choice(_PETS), "pet_name": rng.choice(_PET_NAMES), "day": rng.choice(_DAYS),
        "hour": rng.choice(_HOURS), "event": rng.choice(_EVENTS),
    }  # fmt: skip
    text = template.format(**slots)
    return text[0].upper() + text[1:]


@dataclass(frozen=True)
class Corpus:
    """Episode texts and vectors, and query texts and vectors (rows unit length, float32)."""

    texts: list[str]
    vectors: Matrix
    query_texts: list[str]
    query_vectors: Matrix
    sentences: int
    join_cosine: float


def _normalize(matrix: Matrix) -> Matrix:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    normalized: Matrix = (matrix / np.maximum(norms, 1e-12)).astype(np.float32)
    return normalized


def distinct_questions(rng: random.Random, count: int) -> list[str]:
    """``count`` generated questions, no two alike (a repeated query would find warm caches)."""
    found: dict[str, None] = {}
    for _ in range(count * 1000):
        if len(found) == count:
            return list(found)
        found[_fill(rng.choice(_QUESTIONS), rng)] = None
    raise ValueError(f"cannot generate {count} distinct questions from the templates")


def build_corpus(embedder: Embedder, *, episodes: int, queries: int, sentences: int, seed: int = 0) -> Corpus:
    """Generate ``episodes`` turns made of 1-3 of ``sentences`` distinct embedded sentences, and
    ``queries`` distinct questions.

    Args:
        embedder: embeds the distinct sentences and the queries (and a sample of whole turns,
            to measure how close the mean-of-sentences vectors are to real turn embeddings).
        sentences: how many distinct sentences to generate and embed.
    """
    rng = random.Random(seed)
    pool = list(dict.fromkeys(_fill(rng.choice(_STATEMENTS), rng) for _ in range(sentences * 2)))[:sentences]
    pool_vectors = np.asarray(embedder.embed(pool), dtype=np.float32)
    counts = rng.choices((1, 2, 3), weights=(0.45, 0.4, 0.15), k=episodes)
    picks = [rng.sample(range(len(pool)), c) for c in counts]
    texts = [" ".join(pool[i] for i in pick) for pick in picks]
    summed = np.zeros((episodes, pool_vectors.shape[1]), dtype=np.float32)
    for row, pick in enumerate(picks):
        summed[row] = pool_vectors[pick].sum(axis=0)
    vectors = _normalize(summed)
    sample = [row for row, pick in enumerate(picks) if len(pick) > 1][:200]
    join_cosine = 1.0
    if sample:
        real = np.asarray(embedder.embed([texts[row] for row in sample]), dtype=np.float32)
        join_cosine = float(np.mean(np.sum(_normalize(real) * vectors[sample], axis=1)))
    query_texts = distinct_questions(rng, queries)
    query_vectors = _normalize(np.asarray(embedder.embed(query_texts), dtype=np.float32))
    return Corpus(texts, vectors, query_texts, query_vectors, len(pool), join_cosine)


def default_embedder() -> tuple[Embedder, str]:
    """MiniLM (the default embedder) if it loads, else a hashing embedder (reported as such)."""
    try:
        from memstrata.adapters.embeddings.onnx_minilm import MiniLMEmbedder

        return MiniLMEmbedder(), "all-MiniLM-L6-v2 (onnx int8)"
    except Exception as exc:  # any failure to load: fall back, and say so in the report
        from memstrata.testing import HashingEmbedder

        reason: Any = exc
        return HashingEmbedder(384), f"hashing-384 (fallback: MiniLM unavailable: {reason})"
