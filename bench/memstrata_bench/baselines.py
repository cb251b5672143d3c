"""What the bench compares memstrata against, behind one small protocol.

Every system under test is a :class:`ContextProvider`: it is fed a conversation session by
session and then asked for the memory context of a question within a token budget. The three
baselines work on whole turns rendered ``[date] speaker: text`` (:func:`render_turn`), rank them,
and fill the budget greedily by rank (:func:`fill_budget`), counting with the same
:class:`~memstrata.ports.TokenCounter` memstrata uses; the chosen turns are shown in
conversation order.

- :class:`RecencyBaseline`: the last turns that fit (plain truncation of the conversation).
- :class:`BM25Baseline`: Okapi BM25 (k1 1.2, b 0.75, Lucene's idf) over the rendered turns,
  lower-cased word tokens without common English stop words; turns sharing no term are left out.
- :class:`DenseBaseline`: cosine top-k of the rendered turns against the question, with the
  same embedder memstrata uses.
- :class:`RRFBaseline`: the BM25 and dense rankings fused by reciprocal rank (k 60), the usual
  hybrid retriever; with a ``window`` (``rrf-window``), each ranked turn brings the turns within
  ``window`` of it in its session right after it (the answer is often the reply to the hit).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import numpy as np
from memstrata.ports import Embedder, TokenCounter

from .locomo_data import LocomoTurn, render_turn

__all__ = [
    "BM25Baseline",
    "ContextProvider",
    "ContextResult",
    "DenseBaseline",
    "RRFBaseline",
    "RecencyBaseline",
    "bm25_terms",
    "fill_budget",
]

_WORD = re.compile(r"\w+")
_STOPWORD_LIST = (
    "a about an and are as at be been but by can could did do does for from had has have he her "
    "him his how i if in into is it its me my of on or our she so than that the their them then "
    "there they this to was we were what when where which who whom why will with would you your"
)
_STOPWORDS = frozenset(_STOPWORD_LIST.split())


@dataclass(frozen=True, slots=True)
class ContextResult:
    """A memory context: its text, its size in tokens (counted by the provider) and, when the
    provider has sections (memstrata: summary, recalled, recent), the tokens of each."""

    text: str
    memory_tokens: int
    sections: tuple[tuple[str, int], ...] = ()


class ContextProvider(Protocol):
    """A system under test: fed session by session, then asked for a question's context."""

    name: str

    def ingest(self, turns: Sequence[LocomoTurn]) -> None:
        """Add one session's turns, in order."""
        ...

    def compress(self) -> None:
        """Fold what is due (memstrata); nothing for the baselines."""
        ...

    def context(self, question: str, *, budget: int, now: datetime) -> ContextResult:
        """The memory context for ``question`` within ``budget`` memory tokens."""
        ...

    def close(self) -> None:
        """Release what the provider holds (e.g. forget the run's episodes)."""
        ...


def fill_budget(
    order: Sequence[int],
    lines: Sequence[str],
    costs: Sequence[int],
    counter: TokenCounter,
    budget: int,
    *,
    contiguous: bool = False,
) -> ContextResult:
    """Take lines greedily in ``order`` while they fit ``budget``; show them in index order.

    A line that does not fit is skipped and the next one tried, unless ``contiguous`` (then the
    fill stops at the first line that does not fit). The joined text is counted again at the end,
    and the lowest-ranked lines are dropped until it fits, so the result never exceeds the budget.

    Args:
        order: line indices, best first.
        lines: every line.
        costs: tokens of each line alone (the newlines joining them are counted here).
        counter: the token counter the budget is measured with.
        budget: the memory budget in tokens.
        contiguous: stop at the first line that does not fit.

    Returns:
        The context and its exact token count.
    """
    newline = counter.count("\n")
    chosen: list[int] = []
    used = -newline  # no newline before the first line
    for index in order:
        if used + newline + costs[index] <= budget:
            chosen.append(index)
            used += newline + costs[index]
        elif contiguous:
            break
    while chosen:
        text = "\n".join(lines[i] for i in sorted(chosen))
        tokens = counter.count(text)
        if tokens <= budget:
            return ContextResult(text, tokens)
        chosen.pop()
    return ContextResult("", 0)


class _TurnBaseline:
    """Keeps the rendered turns and their token costs; subclasses rank them."""

    name = "baseline"
    contiguous = False

    def __init__(self, counter: TokenCounter) -> None:
        self._counter = counter
        self.lines: list[str] = []
        self._costs: list[int] = []

    def ingest(self, turns: Sequence[LocomoTurn]) -> None:
        new = [render_turn(t) for t in turns]
        self.lines.extend(new)
        self._costs.extend(self._counter.count(line) for line in new)
        self._added(new)

    def _added(self, lines: Sequence[str]) -> None:
        pass

    def compress(self) -> None:
        pass

    def rank(self, question: str) -> list[int]:
        raise NotImplementedError

    def context(self, question: str, *, budget: int, now: datetime) -> ContextResult:
        order = self.rank(question)
        return fill_budget(order, self.lines, self._costs, self._counter, budget, contiguous=self.contiguous)

    def close(self) -> None:
        self.lines.clear()
        self._costs.clear()


class RecencyBaseline(_TurnBaseline):
    """The most recent turns that fit: what an agent without memory keeps."""

    name = "recency"
    contiguous = True

    def rank(self, question: str) -> list[int]:
        return list(range(len(self.lines) - 1, -1, -1))


def bm25_terms(text: str) -> list[str]:
    """Lower-cased word tokens without common English stop words."""
    return [w for w in (m.lower() for m in _WORD.findall(text)) if w not in _STOPWORDS]


class BM25Baseline(_TurnBaseline):
    """Okapi BM25 over the rendered turns."""

    name = "bm25"

    def __init__(self, counter: TokenCounter, *, k1: float = 1.2, b: float = 0.75) -> None:
        super().__init__(counter)
        self.k1, self.b = k1, b
        self._tf: list[Counter[str]] = []
        self._lengths: list[int] = []
        self._postings: dict[str, list[int]] = {}

    def _added(self, lines: Sequence[str]) -> None:
        for line in lines:
            terms = bm25_terms(line)
            doc = len(self._tf)
            self._tf.append(Counter(terms))
            self._lengths.append(len(terms))
            for term in set(terms):
                self._postings.setdefault(term, []).append(doc)

    def scores(self, question: str) -> dict[int, float]:
        """BM25 score of every turn sharing a term with the question."""
        n = len(self._tf)
        if n == 0:
            return {}
        average = sum(self._lengths) / n or 1.0
        scores: dict[int, float] = {}
        for term in set(bm25_terms(question)):
            docs = self._postings.get(term, [])
            if not docs:
                continue
            idf = math.log(1.0 + (n - len(docs) + 0.5) / (len(docs) + 0.5))
            for doc in docs:
                tf = self._tf[doc][term]
                norm = self.k1 * (1.0 - self.b + self.b * self._lengths[doc] / average)
                scores[doc] = scores.get(doc, 0.0) + idf * tf * (self.k1 + 1.0) / (tf + norm)
        return scores

    def rank(self, question: str) -> list[int]:
        scores = self.scores(question)
        return sorted(scores, key=lambda doc: (-scores[doc], doc))

    def close(self) -> None:
        super().close()
        self._tf.clear()
        self._lengths.clear()
        self._postings.clear()


class DenseBaseline(_TurnBaseline):
    """Cosine top-k of the rendered turns, embedded in one batch per session."""

    name = "dense"

    def __init__(self, counter: TokenCounter, embedder: Embedder) -> None:
        super().__init__(counter)
        self._embedder = embedder
        self._blocks: list[np.ndarray] = []
        self._matrix: np.ndarray | None = None

    def _added(self, lines: Sequence[str]) -> None:
        if lines:
            self._blocks.append(np.asarray(self._embedder.embed(list(lines)), dtype=np.float32))
            self._matrix = None

    def rank(self, question: str) -> list[int]:
        if not self._blocks:
            return []
        if self._matrix is None:
            self._matrix = np.vstack(self._blocks)
        query = np.asarray(self._embedder.embed([question])[0], dtype=np.float32)
        similarity = self._matrix @ query
        # Stable sort on the negated scores: ties keep conversation order.
        return [int(i) for i in np.argsort(-similarity, kind="stable")]

    def close(self) -> None:
        super().close()
        self._blocks.clear()
        self._matrix = None


class RRFBaseline(_TurnBaseline):
    """BM25 and dense ranks fused by reciprocal rank, optionally with each hit's neighbours.

    Args:
        counter: the token counter budgets are measured with.
        embedder: the embedder of the dense side.
        rrf_k: the reciprocal-rank constant (60, as in the original RRF paper and most stores).
        window: turns of the same session before and after each ranked turn that follow it in
            the ranking (next turns first); 0 ranks the fused turns alone.
    """

    def __init__(
        self, counter: TokenCounter, embedder: Embedder, *, rrf_k: int = 60, window: int = 0
    ) -> None:
        super().__init__(counter)
        self.name = "rrf-window" if window else "rrf"
        self.rrf_k, self.window = rrf_k, window
        self._bm25 = BM25Baseline(counter)
        self._dense = DenseBaseline(counter, embedder)
        self._sessions: list[int] = []

    def ingest(self, turns: Sequence[LocomoTurn]) -> None:
        self._sessions.extend(t.session for t in turns)
        super().ingest(turns)

    def _added(self, lines: Sequence[str]) -> None:
        self._bm25._added(lines)
        self._dense._added(lines)

    def fused(self, question: str) -> list[int]:
        """Turn indices by fused score, best first (ties: conversation order)."""
        scores: dict[int, float] = {}
        for ranking in (self._bm25.rank(question), self._dense.rank(question)):
            for rank, doc in enumerate(ranking, start=1):
                scores[doc] = scores.get(doc, 0.0) + 1.0 / (self.rrf_k + rank)
        return sorted(scores, key=lambda doc: (-scores[doc], doc))

    def rank(self, question: str) -> list[int]:
        fused = self.fused(question)
        if not self.window:
            return fused
        order: dict[int, None] = {}
        for doc in fused:
            order[doc] = None
            for step in range(1, self.window + 1):
                for near in (doc + step, doc - step):
                    if 0 <= near < len(self.lines) and self._sessions[near] == self._sessions[doc]:
                        order[near] = None
        return list(order)

    def close(self) -> None:
        super().close()
        self._bm25.close()
        self._dense.close()
        self._sessions.clear()
