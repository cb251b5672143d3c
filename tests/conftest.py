"""Shared fixtures. The PostgreSQL ones start nothing unless a test asks for them."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

TEST_DATABASE_URL_ENV = "MEMSTRATA_TEST_DATABASE_URL"


def _test_data_root() -> Path:
    # Never under /root (as root the bundled server makes every parent of its data dir readable).
    base = Path("/var/tmp") if Path("/var/tmp").is_dir() else Path(tempfile.gettempdir())
    return Path(tempfile.mkdtemp(prefix="memstrata-test-", dir=base))


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A database for tests: ``MEMSTRATA_TEST_DATABASE_URL`` if set, else an embedded server in a
    fresh per-run data dir, stopped and deleted at the end of the session."""
    url = os.environ.get(TEST_DATABASE_URL_ENV, "").strip()
    if url:
        yield url
        return
    from memstrata.adapters.postgres.embedded import EmbeddedPostgres

    root = _test_data_root()
    server = EmbeddedPostgres(root / "data")
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_test_root() -> Iterator[Path]:
    """A per-run scratch dir (not under /root) for tests that start their own embedded servers."""
    root = _test_data_root()
    yield root
    shutil.rmtree(root, ignore_errors=True)
