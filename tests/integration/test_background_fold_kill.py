"""Folds after the reply, in the background: a process SIGKILLed in the middle of one loses no
acknowledged turn, duplicates none, and leaves a lineage the next compression completes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from memstrata import CompressionConfig, Memory, MemoryConfig, PlannerConfig, Scope
from memstrata.adapters.postgres import PostgresEpisodeStore
from memstrata.testing import HashingEmbedder, ScriptedChatModel, WordTokenCounter
from memstrata_bench.reliability.audit import audit_scope

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SCHEMA = "background_fold"  # its own tables: the suite's shared schema holds 384-d vectors

CONFIG = MemoryConfig(
    context_window=400,
    planner=PlannerConfig(reserve_tokens=40),
    compression=CompressionConfig(
        threshold=0.3, chunk_fraction=0.2, keep_recent_turns=2, summary_max_tokens=30
    ),
)

WORKER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from memstrata import CompressionConfig, Memory, MemoryConfig, PlannerConfig, Scope
    from memstrata.adapters.postgres import PostgresEpisodeStore
    from memstrata.testing import HashingEmbedder, ScriptedChatModel, WordTokenCounter

    dsn, user, marker = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    config = MemoryConfig(
        context_window=400,
        planner=PlannerConfig(reserve_tokens=40),
        compression=CompressionConfig(threshold=0.3, chunk_fraction=0.2, keep_recent_turns=2, summary_max_tokens=30),
    )

    def summarize(messages):  # a slow model: the kill lands while a fold is being written
        marker.write_text("folding")
        time.sleep(0.5)
        return "They talked about rain and tea."

    chat = ScriptedChatModel(lambda messages: "Noted, thanks.", context_window=400)
    slow = ScriptedChatModel(summarize, context_window=400)
    scope = Scope(user_id=user, session_id="s")
    with PostgresEpisodeStore.from_conn_string(dsn, dimensions=32, schema="background_fold") as store:
        memory = Memory(store, HashingEmbedder(32), model=chat, token_counter=WordTokenCounter(), config=config, summarizer=slow)
        for i in range(200):
            memory.chat(f"message {i} about rain, tea and the garden", scope=scope, idempotency_key=f"k{i}")
            print(f"ACK {i}", flush=True)
    """
)


def test_a_process_killed_mid_fold_loses_and_duplicates_nothing(postgres_dsn: str, tmp_path: Path) -> None:
    with PostgresEpisodeStore.from_conn_string(postgres_dsn, dimensions=32, schema=SCHEMA) as store:
        store.setup()
    user = f"kill-fold-{uuid.uuid4().hex[:8]}"
    marker = tmp_path / "marker"
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    worker = subprocess.Popen(
        [sys.executable, str(script), postgres_dsn, user, str(marker)], stdout=subprocess.PIPE, text=True
    )
    acked: list[int] = []
    assert worker.stdout is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = worker.stdout.readline()
        if not line:
            break
        acked.append(int(line.split()[1]))
        if marker.exists() and len(acked) >= 12:
            os.kill(worker.pid, signal.SIGKILL)  # a fold is running in the background
            break
    worker.wait(timeout=30)
    worker.stdout.close()
    assert worker.returncode == -signal.SIGKILL and marker.exists(), "the worker was not killed mid-fold"

    expected = {}
    for i in acked:
        expected[f"k{i}:user"] = f"message {i} about rain, tea and the garden"
        expected[f"k{i}:assistant"] = "Noted, thanks."
    with PostgresEpisodeStore.from_conn_string(postgres_dsn, dimensions=32, schema=SCHEMA) as store:
        model = ScriptedChatModel(lambda messages: "They talked about rain and tea.", context_window=400)
        memory = Memory(
            store, HashingEmbedder(32), model=model, token_counter=WordTokenCounter(), config=CONFIG
        )
        scope = Scope(user_id=user)
        memory.compress(scope=scope)  # the next compression finishes what is due
        episodes = store.scan(scope)
        # A chat killed before its ACK may have stored its turns: "unexpected", not lost.
        audit = audit_scope(episodes, expected, require_prefix=False)
        memory.forget(scope=scope)
    assert audit.lost == audit.duplicated == audit.bad_summaries == audit.orphans == 0, audit.problems
    assert audit.summaries > 0
