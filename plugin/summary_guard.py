"""The quality guard every model-written summary passes before it is stored, and the extractive
summary used when one fails.

A summary is rejected when it is empty, echoes its prompt, is not shorter than its input, loops
(repeats its own word n-grams), echoes the transcript line by line (``user: ... assistant: ...``),
invents (too few of its content words occur in the source: :func:`faithfulness`), or drops most of
the input's salient names and numbers (the most frequent ones, up to ten). Small models do all of
these; a rejected summary is replaced by an extractive one.
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
# fmt: off
_FUNCTION_WORD_LIST = """
a about above after again against all also am an and any are as at be because been before being
below between both but by can could did do does doing down during each even ever every few for from
further had has have having he her here hers herself him himself his how i if in into is it its
itself just me more most much my myself no nor not now of off on once only or other our ours
ourselves out over own same she should so some such than that the their theirs them themselves then
there these they this those through to too under until up very was we were what when where which
while who whom why will with would you your yours yourself yourselves get got really very lot lots
one ones thing things something way well yes yeah oh
"""
_SUMMARY_WORD_LIST = """
summary summarize summarized conversation conversations talk talks talked talking discuss discussed
discussing discussion mention mentioned mentions share shared shares sharing say said says tell told
ask asked asks answer answered reply replied speaker speakers user assistant both each other
person people together express expressed expresses feel feels felt describe described describes
explain explained explains agree agreed agrees topic topics include included includes including
"""
# fmt: on
_FUNCTION_WORDS = frozenset(_FUNCTION_WORD_LIST.split())
_SUMMARY_WORDS = frozenset(_SUMMARY_WORD_LIST.split())
SALIENT_MAX = 10
FAITHFULNESS_MIN = 0.6
"""A model summary with a smaller share of content words found in its source is rejected."""
_CONTENT = re.compile(r"[a-z][a-z'’-]*[a-z]|\d+(?:[.,:/]\d+)*")
_ROLE_PREFIX = r"(?:^|\s)(?:user|assistant|system|tool{names})\s*:\s"


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


def _stem(word: str) -> str:
    """A crude stem, enough to match "hiked" with "hiking" and "photos" with "photo"."""
    word = word.replace("’", "'").removesuffix("'s")
    for suffix in ("ing", "ed", "es", "s", "ly"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    return word.rstrip("e")[:6]


def content_words(text: str) -> list[str]:
    """A text's lower-cased words that carry content: no function words, no words every summary
    uses to talk about a conversation ("discussed", "mentioned"); numbers kept."""
    words = _CONTENT.findall(text.lower())
    return [w for w in words if w not in _FUNCTION_WORDS and w not in _SUMMARY_WORDS and len(w) > 1]


def faithfulness(summary: str, source: str) -> float:
    """The share of a summary's content words found (by crude stem) in its source; 1.0 when it
    has none. Invented names, numbers and events lower it."""
    words = content_words(summary)
    if not words:
        return 1.0
    known = {_stem(w) for w in _CONTENT.findall(source.lower())}
    return sum(_stem(w) in known for w in words) / len(words)


def repetition(words: Sequence[str], n: int = 4) -> float:
    """The share of a word sequence's ``n``-grams that repeat an earlier one (0 when short)."""
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return 1 - len(set(grams)) / len(grams) if len(grams) >= 6 else 0.0


def echoed_lines(summary: str, source: str) -> int:
    """How many role or speaker prefixes (``user:``, ``Caroline:``) the summary writes: a
    summary that has them echoes the transcript instead of summarizing it."""
    names = {_body_prefix(line) for line in source.splitlines()} - {None}
    alternatives = "".join(f"|{re.escape(name)}" for name in sorted(n for n in names if n))
    pattern = re.compile(_ROLE_PREFIX.format(names=alternatives), re.IGNORECASE)
    return len(pattern.findall(summary))


def _body_prefix(line: str) -> str | None:
    head, sep, _ = line.partition(": ")
    return head.strip() if sep and 0 < len(head.strip()) <= 40 else None


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
    repeated = max(repetition(words, 4), repetition(words, 3) - 0.1)
    if repeated >= 0.2:
        return f"the summary repeats itself ({repeated:.0%} of its word n-grams are repeats)"
    echoed = echoed_lines(text, source)
    if echoed >= 2:
        return f"the summary echoes the transcript ({echoed} role or speaker prefixes)"
    faithful = faithfulness(text, source)
    if faithful < FAITHFULNESS_MIN:
        return f"the summary invents ({faithful:.0%} of its content words are in the source)"
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
