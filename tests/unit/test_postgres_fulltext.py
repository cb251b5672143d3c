"""Word pruning from cached counts, and when the cache forgets them. No database."""

from __future__ import annotations

from memstrata.adapters.postgres.fulltext import (
    SCOPE_COUNT_CAP,
    WORD_SAMPLE_ROWS,
    PrunedQuery,
    WordCounts,
    prune_words,
)
from memstrata.adapters.postgres.word_count_cache import WordCountCache


def counts(rows: int, **words: int) -> WordCounts:
    return WordCounts(rows=rows, counts=words, counted_at=0.0)


def test_words_are_kept_rarest_first_while_their_summed_share_fits() -> None:
    pruned = prune_words(["caroline", "pottery", "zebra"], counts(100, caroline=30, pottery=6, zebra=3), 0.1)
    assert pruned == PrunedQuery(
        q="'zebra' | 'pottery'", q_all="'zebra' & 'pottery'", words=2, q_fallback="'caroline'", seen=True
    )


def test_a_search_reruns_with_the_fallback_only_when_counted_words_matched_nothing() -> None:
    seen = prune_words(["caroline", "zebra"], counts(100, caroline=30, zebra=3), 0.1)
    unseen = prune_words(["caroline", "zebra"], counts(100, caroline=30), 0.1)
    assert seen.seen and not unseen.seen  # unseen: the statement holds the fallback's scan already
    assert seen.fallback_missed(matched=False) and not seen.fallback_missed(matched=True)
    assert not unseen.fallback_missed(matched=False)
    assert seen.with_fallback() == unseen and not seen.with_fallback().fallback_missed(matched=False)
    alone = prune_words(["zebra"], counts(100, zebra=3), 0.1)
    assert alone.seen and not alone.fallback_missed(matched=False)  # no dropped word to fall back to


def test_partial_matches_come_from_the_rarest_words_only_in_a_large_scope() -> None:
    words = ["garden", "pottery", "zebra"]
    sample = {"garden": 40, "pottery": 30, "zebra": 10}  # shares 0.04, 0.03, 0.01 of 1,000 rows
    small = prune_words(words, WordCounts(1000, sample, 0.0, scope_rows=2_000), 0.1)
    assert small.q_some == "" and small.params()["q_some"] == small.q  # 160 expected rows: all words
    large = prune_words(words, WordCounts(1000, sample, 0.0, scope_rows=SCOPE_COUNT_CAP), 0.1)
    assert large.q == small.q and large.q_all == small.q_all  # the same words, all kept
    assert large.q_some == "'zebra'"  # ~100 rows; with pottery ~400, over PARTIAL_MATCH_ROWS
    rare = prune_words(
        words,
        WordCounts(1000, {"zebra": 50, "pottery": 45, "garden": 40}, 0.0, scope_rows=SCOPE_COUNT_CAP),
        0.1,
    )
    assert rare.q_some == "'garden'"  # the rarest word is always searched, however common
    unseen = prune_words(["kiwi", *words], WordCounts(1000, sample, 0.0, scope_rows=SCOPE_COUNT_CAP), 0.1)
    assert unseen.q_some == "'kiwi' | 'zebra'"  # up to the first word the sample holds


def test_ties_keep_the_given_collation_order_and_quotes_are_escaped() -> None:
    pruned = prune_words(["b", "a", "o'brien\\"], counts(10, a=1, b=1), 1.0)
    assert pruned.q == "'o''brien\\\\' | 'b' | 'a'"  # unseen word first, then b before a as given
    nothing = prune_words([], counts(0), 0.1)
    assert nothing == PrunedQuery(q="", q_all="", words=0, q_fallback="")


def test_counts_are_forgotten_after_any_write_to_a_small_scope() -> None:
    cache = WordCountCache()
    owner, other = ("u", "a"), ("v", "a")
    cache.keep(owner, (), cache.tally(owner), 40, {"x": 1})
    cache.keep(other, (), cache.tally(other), 40, {"x": 1})
    assert cache.get(owner, ()) is not None
    cache.wrote(owner, 1)
    assert cache.get(owner, ()) is None
    assert cache.get(other, ()) is not None


def test_a_full_sample_tolerates_a_few_writes_but_not_updates_or_age() -> None:
    now = [0.0]
    cache = WordCountCache(stale_writes=10, max_age_s=60.0, clock=lambda: now[0])
    owner = ("u", "a")
    cache.keep(owner, "f", cache.tally(owner), WORD_SAMPLE_ROWS, {"x": 1})
    cache.wrote(owner, 10)
    assert cache.get(owner, "f") is not None
    cache.wrote(owner, 1)
    assert cache.get(owner, "f") is None
    cache.keep(owner, "f", cache.tally(owner), WORD_SAMPLE_ROWS, {"x": 1})
    cache.wrote(owner)  # a fold or forget
    assert cache.get(owner, "f") is None
    cache.keep(owner, "f", cache.tally(owner), WORD_SAMPLE_ROWS, {"x": 1})
    now[0] = 61.0
    assert cache.get(owner, "f") is None


def test_a_write_during_counting_makes_the_counts_stale() -> None:
    cache = WordCountCache()
    owner = ("u", "a")
    tally = cache.tally(owner)  # taken before the counting statement
    cache.wrote(owner, 1)  # committed meanwhile: the count may or may not include it
    cache.keep(owner, (), tally, 40, {"x": 1})
    assert cache.get(owner, ()) is None
