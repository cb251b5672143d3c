"""Scores for LoCoMo: answer F1 and BLEU-1, answer-in-context, evidence recall, percentiles.

Normalization (the SQuAD v1.1 evaluation script's, which LoCoMo's token F1 follows): lower-case;
drop every punctuation character (``string.punctuation``: ``!"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~``);
drop the articles ``a``, ``an``, ``the`` as whole words; split on whitespace. No stemming, no
stop-word removal beyond the articles. So ``"The 7th of May, 2023!"`` becomes
``["7th", "of", "may", "2023"]``.

- Token F1: harmonic mean of precision and recall of the multiset overlap of normalized tokens.
- BLEU-1: clipped unigram precision of the normalized prediction against the single gold
  answer, times the brevity penalty ``exp(1 - r / c)`` when the prediction (c tokens) is shorter
  than the answer (r tokens). No smoothing.
- Answer in context: every normalized token of the gold answer occurs among the normalized
  tokens of the context (a set test: order and counts ignored).
- Evidence recall: the share of a question's evidence turns whose text appears verbatim in the
  context (whitespace runs collapsed on both sides). Lineage (a summary that ``covers`` a turn)
  earns nothing: only the words that reached the context count.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence

__all__ = [
    "all_present",
    "answer_in_context",
    "bleu1",
    "evidence_found",
    "normalize_answer",
    "percentile",
    "squash_spaces",
    "token_f1",
]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> list[str]:
    """SQuAD normalization: lower-case, punctuation and articles removed, split on whitespace."""
    lowered = str(text).lower().translate(_PUNCTUATION)
    return _ARTICLES.sub(" ", lowered).split()


def token_f1(prediction: str, gold: str) -> float:
    """Token F1 between a prediction and a gold answer (both normalized).

    Two empty answers score 1; one empty answer scores 0.
    """
    pred, ref = normalize_answer(prediction), normalize_answer(gold)
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def bleu1(prediction: str, gold: str) -> float:
    """BLEU-1 (clipped unigram precision times the brevity penalty) against one reference."""
    pred, ref = normalize_answer(prediction), normalize_answer(gold)
    if not pred or not ref:
        return float(pred == ref)
    clipped = sum((Counter(pred) & Counter(ref)).values())
    precision = clipped / len(pred)
    penalty = 1.0 if len(pred) >= len(ref) else math.exp(1.0 - len(ref) / len(pred))
    return precision * penalty


def answer_in_context(gold: str, context: str) -> bool:
    """Whether every normalized token of the gold answer occurs in the normalized context.

    An answer that normalizes to nothing (only articles or punctuation) is never credited.
    """
    needed = set(normalize_answer(gold))
    return bool(needed) and needed <= set(normalize_answer(context))


def squash_spaces(text: str) -> str:
    """Collapse every run of whitespace to one space and strip the ends."""
    return " ".join(text.split())


def evidence_found(evidence_texts: Sequence[str], context: str) -> list[bool]:
    """For each evidence turn's text, whether it appears verbatim in the context.

    Args:
        evidence_texts: the utterances of the evidence turns (as written in the data).
        context: the memory context given to the model.

    Returns:
        One flag per evidence text, in order.
    """
    haystack = squash_spaces(context)
    return [bool(t.strip()) and squash_spaces(t) in haystack for t in evidence_texts]


def all_present(found: Sequence[bool]) -> bool:
    """Every evidence turn reached the context (False when there is no evidence)."""
    return bool(found) and all(found)


def percentile(values: Iterable[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation between closest ranks; NaN if empty."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
