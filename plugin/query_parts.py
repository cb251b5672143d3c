"""A question cut into the parts worth searching for on their own (no model needed).

A multi-hop question ("What did Melanie paint after the charity race?") asks about several
things at once; one search for the whole question favours turns that match most of its words and
can miss a turn that holds only one part. So recall also searches each part alone (by vector) and merges what
the parts find (:func:`memstrata.fusion.fuse_more`). The parts are, in order: quoted terms, runs
of capitalized words inside the sentence (names, titles), and the runs of content words between
function words ("charity race", "paint"). Speaker names are dropped (the speaker cue weighs them,
:mod:`memstrata.cues`), as are parts that repeat the whole question. English only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["MAX_PARTS", "query_parts"]

MAX_PARTS = 4
"""Most parts searched per question (each costs an embedding and a vector search)."""

_FUNCTION_WORD_LIST = (
    "a about above after again against all also am an and any are as at be because been before being "
    "below between both but by can could did do does doing down during each else ever every few for "
    "from further had has have having he her here hers herself him himself his how i if in into is it "
    "its itself just kind let like likely many may me might more most much must my myself no nor not "
    "now of off on once only or other ought our ours ourselves out over own same she should so some "
    "such than that the their theirs them themselves then there these they this those through to too "
    "type under until up upon us very was we were what whatever when where whether which while who "
    "whom whose why will with would you your yours yourself yourselves s t don doesn didn isn wasn "
    "aren weren won wouldn shouldn couldn think thinks thought say said says mention mentioned tell "
    "told share shared describe name names get got go went going make made take took thing things way "
    "ways something someone one ones two times time recently ever still done gone considered decided "
    "want wanted hadn hasn haven dr mr mrs ms "
)
_FUNCTION_WORDS = frozenset(_FUNCTION_WORD_LIST.split())
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9\-]*|\d+")
_QUOTED = re.compile(r"(?<!\w)[\"\u201c\u2018']([^\"\u201c\u201d\u2018\u2019']{2,80})[\"\u201d\u2019'](?!\w)")
_CAPITALIZED = re.compile(r"(?<![.?!]\s)(?<!^)\b([A-Z][a-z0-9\-]+(?:\s+(?:of\s+|the\s+)?[A-Z][a-z0-9\-]+)*)")


def query_parts(query: str, speakers: Iterable[str] = ()) -> list[str]:
    """The parts of ``query`` to search for alone, at most :data:`MAX_PARTS`, best first.

    Args:
        query: the question.
        speakers: names of the conversation's speakers (left out of the parts).

    Returns:
        The parts; empty when the question has fewer than two (nothing to gain from splitting).
    """
    names = {w.lower() for s in speakers for w in s.split()}
    parts: list[str] = []
    parts.extend(m.group(1).strip() for m in _QUOTED.finditer(query))
    for m in _CAPITALIZED.finditer(query):
        words = [w for w in m.group(1).split() if w.lower() not in names and w.lower() not in _FUNCTION_WORDS]
        if words:
            parts.append(" ".join(words))
    parts.extend(_content_runs(query.replace("'s ", " "), names))
    unique = list(dict.fromkeys(p for p in parts if len(p) > 2))
    content = " ".join(_content_runs(query.replace("'s ", " "), names))
    kept = [p for p in unique if p.lower() != content.lower()]
    if len(kept) < 2:
        return []
    return kept[:MAX_PARTS]


def _content_runs(query: str, names: set[str]) -> list[str]:
    """Runs of words that are neither function words nor speaker names, in order."""
    runs: list[str] = []
    current: list[str] = []
    for word in _WORD.findall(query):
        low = word.lower()
        if low in _FUNCTION_WORDS or low in names:
            if current:
                runs.append(" ".join(current))
            current = []
        else:
            current.append(word)
    if current:
        runs.append(" ".join(current))
    return runs
