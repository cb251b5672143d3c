"""How the doubles split text: words and punctuation for counting, lower-cased content words for
matching (the hashing embedder and the in-memory store's BM25 share them)."""

from __future__ import annotations

import re

WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)
TERM = re.compile(r"\w+", re.UNICODE)
_STOPWORD_LIST = """
a an and are as at be by did do does for from had has have he her his how i in is it its me my of on
or our she so that the their them they this to was we were what when where which who why will with
you your
"""
STOPWORDS = frozenset(_STOPWORD_LIST.split())


def terms(text: str) -> list[str]:
    """Lower-cased words of ``text`` without stopwords."""
    return [t for t in (m.lower() for m in TERM.findall(text)) if t not in STOPWORDS]
