"""Exact token counts of prompts from cached line counts, for BPE tokenizers that never join a
line start to the line before it.

Why it is exact. llama.cpp cuts special-token text (``<|im_start|>``) out first, splits each
remaining fragment into pre-tokens with the model's regular expressions, and merges bytes only
inside a pre-token. For the pre-tokenizers in :data:`SPLITTABLE_PRETOKENIZERS` a newline only ever
ends a pre-token or stands alone, so a lone newline between two printable ASCII characters is the
same pre-token whether the text goes on or ends there (a longer whitespace run is not: GPT-2's
``\\s+(?!\\S)``), and a text cut right after one tokenizes to exactly its parts' tokens. No cut is
made in front of a special token with llama.cpp's LSTRIP attribute, which would eat the newline.

Why it is fast. A prompt's lines come back plan after plan: each line's count is cached, and the
new lines are tokenized together in one call, separated by a special token (llama.cpp tokenizes
the text between special tokens independently). Each call has a fixed cost, so batching matters
as much as caching (docs/benchmarks.md).

Safety net: some prompts are also tokenized whole in the background, the first one and then at
intervals that double after each check that agrees, from ``verify_every`` up to
``verify_max_every`` counts; a mismatch logs an error and turns cutting off for this counter for
good (a fixed rate slowed the next context's assembly: docs/benchmarks.md).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Sequence

from memstrata.caches import make_room
from memstrata.concurrency import background

__all__ = ["SPLITTABLE_PRETOKENIZERS", "SegmentCounts"]

_log = logging.getLogger(__name__)

# ``tokenizer.ggml.pre`` values whose llama.cpp pre-tokenizer regexes were read and checked (see the
# module docstring); others are tokenized whole.
SPLITTABLE_PRETOKENIZERS = frozenset(
    {
        "gpt-2", "mpt", "olmo", "jais",
        "starcoder", "refact", "command-r", "smollm", "codeshell", "exaone",
        "qwen2", "stablelm2", "deepseek-r1-qwen",
        "llama3", "llama-v3", "llama-bpe",
        "deepseek-llm", "deepseek-coder", "falcon",
    }
)  # fmt: skip

# Right after a newline that follows and precedes printable ASCII characters. The newline must be
# a whitespace run of its own: GPT-2's ``\s+(?!\S)`` gives back the last character of a longer run
# ("\n\n" before a word is two pre-tokens, at the end of a text it is one).
_CUT = re.compile(r"(?<=[!-~]\n)(?=[!-~])")

Tokenize = Callable[[bytes], list[int]]


class SegmentCounts:
    """Counts texts as the sum of their lines' cached counts (see the module docstring).

    Args:
        tokenize: the model's tokenizer (special tokens parsed, nothing added).
        separator: a special token's (text, id), with no LSTRIP or RSTRIP attribute.
        lstrip_specials: texts of special tokens that strip the whitespace before them.
        cut_lines: False when the pre-tokenizer is not known to be safe to cut at line starts: texts
            are then counted whole (still cached, still batched by :meth:`count_many`).
        max_entries: lines kept in the cache (the oldest half is dropped when it is full).
        verify_every: counts between the first two checks of a cut text against a whole
            tokenization (0: never check).
        verify_max_every: the longest interval the doubling reaches.
    """

    def __init__(
        self,
        tokenize: Tokenize,
        *,
        separator: tuple[str, int],
        lstrip_specials: Sequence[str] = (),
        cut_lines: bool = True,
        max_entries: int = 65_536,
        verify_every: int = 50,
        verify_max_every: int = 1000,
    ) -> None:
        self._tokenize = tokenize
        self._separator_text, self._separator_id = separator
        self._lstrip = tuple(lstrip_specials)
        self.cut_lines = cut_lines
        self._max_entries = max_entries
        self._verify_every = verify_every
        self._cache: dict[str, int] = {}
        self._lock = threading.Lock()
        self._counted = 0
        self._next_check = 1  # the first cut text is checked
        self._interval = verify_every
        self._max_interval = max(verify_every, verify_max_every)

    def segments(self, text: str) -> list[str]:
        """``text`` cut into the parts that are counted on their own (all of it when cutting is off)."""
        if not self.cut_lines:
            return [text]
        parts = _CUT.split(text)
        if self._lstrip:
            merged: list[str] = []
            for part in parts:
                if merged and part.startswith(self._lstrip):
                    merged[-1] += part
                else:
                    merged.append(part)
            parts = merged
        return parts

    def count(self, text: str) -> int:
        """Exact tokens of ``text``, from cached line counts."""
        if not text:
            return 0
        parts = self.segments(text)
        total = sum(self.count_many(parts))
        if len(parts) > 1 and self._verify_every and self._due():
            background(self._verify, text, total)
        return total

    def count_many(self, texts: Sequence[str]) -> list[int]:
        """Exact tokens of each text on its own; the ones not cached are tokenized in one call."""
        cache = self._cache
        counts = [cache.get(t) for t in texts]  # .get: another thread may evict meanwhile
        missing = list(dict.fromkeys(t for t, n in zip(texts, counts, strict=True) if n is None))
        if not missing:
            return [n for n in counts if n is not None]  # all are
        found = dict(zip(missing, self._tokenize_apart(missing), strict=True))
        with self._lock:
            make_room(cache, len(found), self._max_entries)
            cache.update(found)
        return [found[t] if n is None else n for t, n in zip(texts, counts, strict=True)]

    def _tokenize_apart(self, texts: list[str]) -> list[int]:
        if len(texts) == 1 or self._separator_id < 0:
            return [len(self._tokenize(t.encode("utf-8"))) for t in texts]
        joined = self._separator_text.join(texts).encode("utf-8")
        counts = [0]
        for token in self._tokenize(joined):
            if token == self._separator_id:
                counts.append(0)
            else:
                counts[-1] += 1
        if len(counts) == len(texts):
            return counts
        # A text holds the separator's own text (or it merged into a longer special token): apart.
        return [len(self._tokenize(t.encode("utf-8"))) for t in texts]

    def _due(self) -> bool:
        with self._lock:
            self._counted += 1
            if self._counted < self._next_check:
                return False
            self._next_check = self._counted + self._interval
            self._interval = min(2 * self._interval, self._max_interval)
            return True

    def _verify(self, text: str, total: int) -> None:
        whole = len(self._tokenize(text.encode("utf-8")))
        if whole != total:
            self.cut_lines = False  # cached counts stay right: each is a whole text's own
            _log.error(
                "line-by-line token count %d differs from the whole text's %d; counting whole texts "
                "from now on (please report this model's tokenizer.ggml.pre)",
                total,
                whole,
            )
