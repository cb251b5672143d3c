"""LoCoMo scores on hand-computed cases."""

from __future__ import annotations

import math

import pytest
from memstrata_bench.metrics import (
    all_present,
    answer_in_context,
    bleu1,
    evidence_found,
    normalize_answer,
    percentile,
    token_f1,
)


def test_normalization_lowercases_and_drops_punctuation_and_articles() -> None:
    assert normalize_answer("The 7th of May, 2023!") == ["7th", "of", "may", "2023"]
    assert normalize_answer("An apple a day") == ["apple", "day"]
    assert normalize_answer("theater") == ["theater"]  # articles only as whole words
    assert normalize_answer("self-care") == ["selfcare"]  # SQuAD deletes punctuation, no split
    assert normalize_answer("  ...  ") == []


@pytest.mark.parametrize(
    ("prediction", "gold", "expected"),
    [
        ("Paris", "paris.", 1.0),
        ("Paris France", "Paris", 2 * 0.5 * 1.0 / 1.5),  # P = 1/2, R = 1
        ("went to the beach", "the beach in May", 1 / 3),  # [went, to, beach] vs [beach, in, may]
        ("cat", "dog", 0.0),
        ("", "", 1.0),
        ("", "dog", 0.0),
        ("the", "a", 1.0),  # both normalize to nothing
    ],
)
def test_token_f1(prediction: str, gold: str, expected: float) -> None:
    assert token_f1(prediction, gold) == pytest.approx(expected)


def test_token_f1_counts_repeated_tokens_once_per_occurrence() -> None:
    # pred [yes, yes], gold [yes]: overlap 1, P = 1/2, R = 1.
    assert token_f1("yes yes", "yes") == pytest.approx(2 / 3)


def test_bleu1_applies_the_brevity_penalty_to_short_predictions() -> None:
    # pred [cat, sat] vs gold [cat, sat, on, mat]: precision 1, BP = exp(1 - 4/2).
    assert bleu1("the cat sat", "the cat sat on the mat") == pytest.approx(math.exp(-1))


def test_bleu1_clips_repeated_unigrams() -> None:
    # pred [cat, cat, cat] vs gold [cat, sat]: clipped 1 of 3, no penalty (c >= r).
    assert bleu1("cat cat cat", "cat sat") == pytest.approx(1 / 3)
    assert bleu1("cat sat", "cat sat") == 1.0
    assert bleu1("", "cat") == 0.0


def test_answer_in_context_needs_every_answer_token() -> None:
    context = "[1:56 pm on 8 May, 2023] Caroline: I went to the support group on 7 May, 2023."
    assert answer_in_context("7 May 2023", context)
    assert answer_in_context("The support group", context)
    assert not answer_in_context("6 May 2023", context)
    assert not answer_in_context("the", context)  # nothing left to look for: no credit
    assert answer_in_context(str(2022), "painted in 2022")


def test_evidence_is_credited_only_when_the_turn_text_is_there_verbatim() -> None:
    turn = "I went to a LGBTQ support group yesterday and it was so powerful."
    verbatim = '- [8 May 2023, session 1] Caroline: "I went to a LGBTQ support group\n  yesterday and it was so powerful."'
    summary = "Caroline attended an LGBTQ support group the day before and found it powerful."
    assert evidence_found([turn], verbatim) == [True]  # line breaks and indentation do not matter
    assert evidence_found([turn], summary) == [False]  # a paraphrase (or lineage) earns nothing
    assert evidence_found([turn, "Bye!"], verbatim) == [True, False]
    assert evidence_found(["   "], "anything") == [False]


def test_all_present() -> None:
    assert all_present([True, True])
    assert not all_present([True, False])
    assert not all_present([])


def test_percentile_interpolates_between_ranks() -> None:
    values = [10.0, 20.0, 30.0, 40.0, 50.0]
    assert percentile(values, 50) == 30.0
    assert percentile(values, 95) == pytest.approx(48.0)
    assert percentile([7.0], 95) == 7.0
    assert math.isnan(percentile([], 50))
