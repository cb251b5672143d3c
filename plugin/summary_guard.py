"""The quality guard every model-written summary passes before it is stored, and the extractive
summary used when one fails.

A summary is rejected when it is empty, echoes its prompt, is not shorter than its input, or
drops most of the input's salient names and numbers (the most frequent ones, up to ten).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from memstrata.ports import TokenCounter
from memstrata.schemas import check_text

_WORD = re.compile(r"[A-Za-z][\w'’-]*|\d+(?:[.,:/]\d+)*")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
# fmt: off
_NOT_NAMES = frozenset([
    "I", "I'm", "I've", "I'd", "I'll", "The", "A", "An", "And", "But", "So", "Or", "If", "When", "What",
    "Where", "Who", "Why", "How", "Yes", "No", "Oh", "Hey", "Hi", "Hello", "Thanks", "Thank", "It",
    "It's", "That", "This", "There", "They", "We", "You", "He", "She", "My", "Our", "Your", "Their",
    "Wow", "Well", "Also", "Just", "Sure", "Okay", "OK", "Great", "Nice", "Good", "Really", "Let", "Do",
    "Did", "Is", "Are", "Was", "Were", "Have", "Has", "Had", "Can", "Could", "Would", "Will", "Should",
    "Me", "Him", "Her", "Them", "Not", "Yeah", "Absolutely", "Totally", "Definitely", "Sounds", "Glad",
    "Happy",
])
# fmt: on
SALIENT_MAX = 10


def salient_terms(text: str, limit: int = SALIENT_MAX) -> list[str]:
    """The most frequent names and numbers of a text, most frequent first.

    A name is a capitalized word seen at least once away from the start of a sentence (so
    "Small talk" is not a name but "met Caroline" makes "Caroline" one); every number counts.
    """
    names: set[str] = set()
    sentences = [
        _WORD.findall(sentence) for line in text.splitlines() for sentence in _SENTENCE.split(_body(line))
    ]
    for tokens in sentences:
        for token in tokens[1:]:
            if token[0].isupper() and token not in _NOT_NAMES:
                names.add(token)
    counts: Counter[str] = Counter()
    for tokens in sentences:
        for token in tokens:
            if token[0].isdigit() or token in names:
                counts[token.lower()] += 1
    return [term for term, _ in counts.most_common(limit)]


def _body(line: str) -> str:
    """A line without its ``speaker:`` prefix, if it has one."""
    head, sep, rest = line.partition(": ")
    return rest if sep and len(head) <= 60 else line


def _ngrams(words: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def reject_reason(summary: str, *, source: str, prompt: str, counter: TokenCounter) -> str | None:
    """Why ``summary`` must not be stored, or None if it passes.

    Args:
        summary: the model's output.
        source: the text being summarized (the transcript or the lower-level summaries).
        prompt: the whole prompt the model saw (instructions included).
        counter: counts tokens for the length check.
    """
    text = summary.strip()
    if not text:
        return "empty summary"
    try:
        check_text(text)
    except ValueError as exc:  # a NUL byte or a lone surrogate: no store can keep it
        return f"the summary cannot be stored: {exc}"
    words = [w.lower() for w in _WORD.findall(text)]
    prompt_words = [w.lower() for w in _WORD.findall(prompt)]
    grams = _ngrams(words, 6)
    if grams and len(grams & _ngrams(prompt_words, 6)) / len(grams) >= 0.8:
        return "the summary echoes its prompt"
    summary_tokens, source_tokens = counter.count(text), counter.count(source)
    if summary_tokens >= source_tokens:
        return f"the summary ({summary_tokens} tokens) is not shorter than its input ({source_tokens} tokens)"
    salient = salient_terms(source)
    if len(salient) >= 4:
        kept = {w for w in words}
        missing = [t for t in salient if t not in kept]
        if len(missing) > len(salient) / 2:
            return f"the summary drops {len(missing)} of the {len(salient)} main names and numbers ({', '.join(missing[:5])})"
    return None


def extractive_summary(lines: Sequence[str], *, max_tokens: int, counter: TokenCounter) -> str:
    """A summary made of the input's own sentences, chosen to cover its salient names and numbers.

    Args:
        lines: the input, one turn (or lower-level summary) per line, in time order; a line may
            start with a ``[date] speaker:`` prefix, which is kept with its sentences.
        max_tokens: the summary's token budget.

    Returns:
        Selected sentences in their original order, each prefixed with its line's prefix.
    """
    salient = set(salient_terms("\n".join(lines), limit=40))
    candidates: list[tuple[int, str, set[str]]] = []
    for index, line in enumerate(lines):
        prefix, _, body = line.partition(": ") if ": " in line[:80] else ("", "", line)
        for sentence in _SENTENCE.split(body):
            sentence = sentence.strip()
            if len(sentence) < 3:
                continue
            terms = {w.lower() for w in _WORD.findall(sentence)} & salient
            candidates.append((index, f"{prefix}: {sentence}" if prefix else sentence, terms))
    chosen: list[tuple[int, int, str]] = []
    covered: set[str] = set()
    used = 0
    remaining = list(enumerate(candidates))
    while remaining:
        best = max(remaining, key=lambda p: (len(p[1][2] - covered), -p[0]))
        position, (index, sentence, terms) = best
        remaining.remove(best)
        if not terms - covered and covered:
            break
        cost = counter.count(sentence) + 1
        if used + cost > max_tokens:
            continue
        chosen.append((index, position, sentence))
        covered |= terms
        used += cost
    if not chosen and candidates:
        index, sentence, _ = candidates[-1]
        words = sentence.split()
        while words and counter.count(" ".join(words)) > max_tokens:
            words = words[: max(1, len(words) * 3 // 4)] if len(words) > 1 else []
        return " ".join(words)
    return "\n".join(sentence for _, _, sentence in sorted(chosen))
