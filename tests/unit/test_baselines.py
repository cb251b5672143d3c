"""The LoCoMo baselines: budgets are never exceeded, and each ranks as it claims."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from memstrata.schemas import ChatMessage
from memstrata.testing import HashingEmbedder, WordTokenCounter
from memstrata_bench.baselines import (
    BM25Baseline,
    DenseBaseline,
    RecencyBaseline,
    RRFBaseline,
    fill_budget,
)
from memstrata_bench.locomo_data import LocomoTurn, render_turn

NOW = datetime(2024, 1, 1, tzinfo=UTC)
START = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)
TEXTS = [
    "I went hiking on Mount Tam with my sister yesterday.",
    "That sounds lovely, how long was the trail?",
    "About ten miles, we saw a coyote near the summit!",
    "My pottery class starts next week, I am so excited.",
    "What will you make first in the pottery class?",
    "Probably a bowl for my mom, she loves ceramics.",
    "I adopted a puppy named Rex from the shelter.",
    "Rex is a golden retriever and very playful.",
    "We should take Rex to the beach sometime soon.",
    "Definitely, he would love the waves and the sand.",
]


def turns(texts: Sequence[str] = TEXTS) -> list[LocomoTurn]:
    return [
        LocomoTurn(
            dia_id=f"D1:{i + 1}",
            session=1,
            index=i,
            speaker="Ann" if i % 2 == 0 else "Bo",
            text=text,
            caption=None,
            occurred_at=START + timedelta(seconds=5 * i),
            date_text="1:56 pm on 8 May, 2023",
        )
        for i, text in enumerate(texts)
    ]


class SuperadditiveCounter(WordTokenCounter):
    """Joining n lines costs (n - 1) ** 2 extra tokens: more than the per-line estimates."""

    def count(self, text: str) -> int:
        return super().count(text) + text.count("\n") ** 2

    def count_prompt(self, messages: Sequence[ChatMessage]) -> int:
        return super().count_prompt(messages)


def baselines(
    counter: WordTokenCounter,
) -> list[RecencyBaseline | BM25Baseline | DenseBaseline | RRFBaseline]:
    return [
        RecencyBaseline(counter),
        BM25Baseline(counter),
        DenseBaseline(counter, HashingEmbedder(64)),
        RRFBaseline(counter, HashingEmbedder(64)),
        RRFBaseline(counter, HashingEmbedder(64), window=1),
    ]


@pytest.mark.parametrize(
    "counter", [WordTokenCounter(), SuperadditiveCounter()], ids=["words", "superadditive"]
)
@pytest.mark.parametrize("budget", [1, 15, 16, 40, 77, 120, 10_000])
def test_no_baseline_ever_exceeds_the_budget(counter: WordTokenCounter, budget: int) -> None:
    for baseline in baselines(counter):
        session = turns()
        baseline.ingest(session[:4])
        baseline.ingest(session[4:])
        for question in ("Who is Rex?", "pottery bowl", "hiking trail coyote", "nothing matches zzz"):
            result = baseline.context(question, budget=budget, now=NOW)
            assert result.memory_tokens == counter.count(result.text)
            assert result.memory_tokens <= budget, (baseline.name, budget, question)


def test_a_large_budget_holds_the_whole_conversation_in_order() -> None:
    counter = WordTokenCounter()
    recency = RecencyBaseline(counter)
    recency.ingest(turns())
    result = recency.context("anything", budget=10_000, now=NOW)
    assert result.text == "\n".join(render_turn(t) for t in turns())


def test_recency_takes_the_last_turns_that_fit() -> None:
    counter = WordTokenCounter()
    recency = RecencyBaseline(counter)
    recency.ingest(turns())
    lines = [render_turn(t) for t in turns()]
    budget = counter.count("\n".join(lines[-3:]))
    result = recency.context("Who is Rex?", budget=budget, now=NOW)
    assert result.text == "\n".join(lines[-3:])


def test_recency_stops_at_the_first_turn_that_does_not_fit() -> None:
    counter = WordTokenCounter()
    texts = ["short one", "x " * 200, "short two", "short three"]
    recency = RecencyBaseline(counter)
    recency.ingest(turns(texts))
    result = recency.context("q", budget=60, now=NOW)
    assert "short three" in result.text and "short two" in result.text
    assert "short one" not in result.text  # older than the turn that did not fit: not taken


def test_bm25_ranks_an_exact_keyword_match_first() -> None:
    bm25 = BM25Baseline(WordTokenCounter())
    bm25.ingest(turns())
    assert bm25.rank("Where did she go on Mount Tam?")[0] == 0
    assert bm25.rank("ceramics")[0] == 5
    assert bm25.rank("zzz unknown words") == []  # turns sharing no term are left out


def test_bm25_prefers_rarer_terms() -> None:
    bm25 = BM25Baseline(WordTokenCounter())
    bm25.ingest(turns())
    scores = bm25.scores("Rex coyote")
    assert max(scores, key=scores.__getitem__) == 2  # "coyote" occurs once, "Rex" three times


def test_dense_ranks_the_turn_sharing_the_question_words_first() -> None:
    dense = DenseBaseline(WordTokenCounter(), HashingEmbedder(256))
    dense.ingest(turns()[:5])
    dense.ingest(turns()[5:])
    assert dense.rank("golden retriever playful")[0] == 7
    assert sorted(dense.rank("anything")) == list(range(len(TEXTS)))


def test_fill_budget_skips_what_does_not_fit_and_shows_conversation_order() -> None:
    counter = WordTokenCounter()
    lines = ["alpha beta", "gamma " * 30, "delta epsilon"]
    costs = [counter.count(line) for line in lines]
    result = fill_budget([2, 1, 0], lines, costs, counter, budget=10)
    assert result.text == "alpha beta\ndelta epsilon"
    assert fill_budget([2, 1, 0], lines, costs, counter, budget=10, contiguous=True).text == "delta epsilon"
    assert fill_budget([1], lines, costs, counter, budget=5).memory_tokens == 0


def test_close_forgets_the_turns() -> None:
    for baseline in baselines(WordTokenCounter()):
        baseline.ingest(turns())
        baseline.close()
        assert baseline.context("Rex", budget=100, now=NOW).text == ""


def test_rrf_fuses_both_rankings_and_its_window_brings_same_session_neighbours() -> None:
    counter = WordTokenCounter()
    embedder = HashingEmbedder(256)
    rrf, bm25, dense = RRFBaseline(counter, embedder), BM25Baseline(counter), DenseBaseline(counter, embedder)
    windowed = RRFBaseline(counter, embedder, window=1)
    first, second = turns()[:5], [dataclasses.replace(t, session=2) for t in turns()[5:]]
    for baseline in (rrf, bm25, dense, windowed):
        baseline.ingest(first)
        baseline.ingest(second)
    question = "Who is the puppy Rex?"
    scores: dict[int, float] = {}
    for ranking in (bm25.rank(question), dense.rank(question)):
        for rank, doc in enumerate(ranking, start=1):
            scores[doc] = scores.get(doc, 0.0) + 1 / (60 + rank)
    assert rrf.rank(question) == sorted(scores, key=lambda d: (-scores[d], d))
    assert (rrf.name, windowed.name) == ("rrf", "rrf-window")
    best = rrf.rank(question)[0]
    order = windowed.rank(question)
    assert order[0] == best
    same_session = [d for d in (best + 1, best - 1) if 0 <= d < 10 and (d >= 5) == (best >= 5)]
    assert order[1 : 1 + len(same_session)] == same_session
    assert sorted(order) == sorted(set(order))
