"""What the reliability harnesses run on: the real store and ``Memory`` facade, a scripted model,
a throw-away schema, and the turns they write.

The model is :class:`~memstrata.testing.ScriptedChatModel` (the model is not what is under
test, and hundreds of trials must finish in minutes). Its answers depend only on the prompt, so
a retried ``chat`` gets the answer the first attempt got, and a harness knows in advance every
text that should end up stored.

Embedder: ``hashing`` (:class:`~memstrata.testing.HashingEmbedder`, 384-d) by default in both
harnesses, ``minilm`` (the real default embedder, all-MiniLM-L6-v2 int8 on onnxruntime) on
request. Measured on the shared 2-core machine, 20 kill trials with the same seed, twice each:
with MiniLM a worker was ready 0.9-4 s later (its ONNX session loads in every new process),
14-19 of 20 kills landed in ``add`` while onnxruntime was embedding, before any SQL was sent,
0-1 fell between a commit and its acknowledgement, and a trial took 2.4-5.9 s. With hashing the
kills spread over add (4-11), chat (5-11) and compress (4-5), 4-8 of 20 fell between a commit
and its acknowledgement (the case idempotency keys exist for), at 1.3-1.9 s a trial. The
embedder runs before every write, so the store behaves the same under either; hashing puts
more kills where the store is working, and keeps 200 trials within minutes. The concurrency
harness defaults to hashing too: MiniLM's 9,000 embeddings would saturate both cores, and the
throughput ratio would measure onnxruntime rather than concurrent writers.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

from memstrata.compression import SUMMARY_SYSTEM
from memstrata.memory import Memory
from memstrata.ports import ChatModel, Embedder
from memstrata.rendering import MEMORY_CLOSE, QUERY_LABEL
from memstrata.schemas import ChatMessage
from memstrata.schemas.config import CompressionConfig, MemoryConfig
from memstrata.testing import ScriptedChatModel, WordTokenCounter

__all__ = [
    "WINDOW",
    "EmbedderName",
    "Progress",
    "chat_reply",
    "drop_schema",
    "fresh_schema",
    "harness_config",
    "load_embedder",
    "open_memory",
    "resolve_database",
    "scripted_model",
]

EmbedderName = Literal["minilm", "hashing"]
WINDOW = 2048
"""The scripted model's window (WordTokenCounter tokens)."""

_NUMBER = re.compile(r"\b\d+\b")
_NAME = re.compile(r"\b[A-Z][a-z]+\b")


def harness_config(*, threshold: float = 0.1, keep_recent_turns: int = 4) -> MemoryConfig:
    """Compression tuned to fold often: small chunks, short summaries, a small summary stack
    (so level-2 summaries appear within a few dozen turns)."""
    return MemoryConfig(
        compression=CompressionConfig(
            threshold=threshold,
            chunk_fraction=0.06,
            keep_recent_turns=keep_recent_turns,
            summary_max_tokens=40,
            stack_fraction=0.04,
            fan_in=3,
            # Folds inside chat, as the harness's plans expect (kills land in them); the background
            # mode has its own kill test (tests/integration/test_background_fold_kill.py).
            background=False,
        )
    )


def chat_reply(user_text: str) -> str:
    """The scripted answer to a chat turn (a function of the question alone)."""
    return f"Noted: {user_text}"


def _reply(messages: Sequence[ChatMessage]) -> str:
    if messages and messages[0].role == "system" and messages[0].content == SUMMARY_SYSTEM:
        source = messages[-1].content
        names = list(dict.fromkeys(_NAME.findall(source)))[:6]
        numbers = list(dict.fromkeys(_NUMBER.findall(source)))[:6]
        return f"They talked about {', '.join(names) or 'plans'}; figures {', '.join(numbers) or 'none'}."
    asked = messages[-1].content if messages else ""
    after_notes = asked.rpartition(MEMORY_CLOSE)[2].lstrip("\n")
    return chat_reply(after_notes.removeprefix(QUERY_LABEL) if MEMORY_CLOSE in asked else after_notes)


def scripted_model(*, delay_s: float = 0.0) -> ChatModel:
    """The harnesses' chat model: summaries naming the source's names and numbers, and
    :func:`chat_reply` answers. ``delay_s`` makes every call that slow (a real model is)."""
    if delay_s <= 0:
        return ScriptedChatModel(_reply, context_window=WINDOW, token_counter=WordTokenCounter())
    import time

    def slow(messages: Sequence[ChatMessage]) -> str:
        time.sleep(delay_s)
        return _reply(messages)

    return ScriptedChatModel(slow, context_window=WINDOW, token_counter=WordTokenCounter())


def load_embedder(name: EmbedderName) -> Embedder:
    """``minilm`` (the default embedder) or ``hashing`` (384-d feature hashing).

    Raises:
        ConfigError: an unknown name, or MiniLM's files are missing.
    """
    from memstrata_bench.runtime import load_embedder as load

    if name not in ("minilm", "hashing"):
        from memstrata.errors import ConfigError

        raise ConfigError(f"embedder must be 'minilm' or 'hashing', got {name!r}")
    return load(name)


def fresh_schema(prefix: str) -> str:
    """A new schema name, unique to this run."""
    return f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"


@contextmanager
def open_memory(
    dsn: str,
    schema: str,
    embedder: Embedder,
    *,
    model: ChatModel | None = None,
    config: MemoryConfig | None = None,
    pool_size: int = 2,
    setup: bool = False,
) -> Iterator[Memory]:
    """A ``Memory`` over a ``PostgresEpisodeStore`` in ``schema``, its pool closed at exit.

    Raises:
        StoreUnavailable: the database cannot be reached.
    """
    from memstrata.adapters.postgres import PostgresEpisodeStore

    with PostgresEpisodeStore.from_conn_string(
        dsn, dimensions=embedder.dimensions, schema=schema, min_size=1, max_size=pool_size, timeout=30
    ) as store:
        if setup:
            store.setup()
        yield Memory(store, embedder, model=model or scripted_model(), config=config or harness_config())


def resolve_database(database_url: str | None) -> tuple[str, dict[str, Any]]:
    """The DSN to test against: ``database_url``, else ``MEMSTRATA_DATABASE_URL``, else the
    embedded server (started or joined). Returns it with a description safe to print.

    Raises:
        ConfigError, StoreUnavailable: the embedded server cannot be used.
    """
    from memstrata.adapters.postgres import database_url as default_url
    from memstrata.adapters.postgres import redact_dsn
    from memstrata.adapters.postgres.dsn import DATABASE_URL_ENV

    if database_url:
        return database_url, {"kind": "given", "url": redact_dsn(database_url)}
    if os.environ.get(DATABASE_URL_ENV, "").strip():
        url = default_url()
        return url, {"kind": "environment", "url": redact_dsn(url)}
    return default_url(), {"kind": "embedded"}


def drop_schema(dsn: str, schema: str) -> None:
    """Drop a harness's schema and everything in it."""
    import psycopg
    from memstrata.adapters.postgres.statements import check_identifier

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{check_identifier(schema)}" CASCADE')


class Progress:
    """A rich progress bar on stderr, or nothing (``enabled=False``)."""

    def __init__(self, enabled: bool, total: int, label: str) -> None:
        self._bar: Any = None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("{task.description:<28}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._task = self._bar.add_task(label, total=total)

    def __enter__(self) -> Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def step(self, description: str, amount: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(self._task, advance=amount, description=description)
