"""Shared fixtures. The PostgreSQL ones start nothing unless a test asks for them."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

TEST_DATABASE_URL_ENV = "MEMSTRATA_TEST_DATABASE_URL"
HYPOTHESIS_PROFILE_ENV = "MEMSTRATA_HYPOTHESIS_PROFILE"

# Property tests without their own max_examples run the profile's count: "ci" by default (fast),
# "thorough" for `make hostile` (MEMSTRATA_HYPOTHESIS_PROFILE=thorough).
_SLOW_IS_FINE = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile("ci", max_examples=50, deadline=None, suppress_health_check=_SLOW_IS_FINE)
settings.register_profile("thorough", max_examples=1000, deadline=None, suppress_health_check=_SLOW_IS_FINE)
settings.load_profile(os.environ.get(HYPOTHESIS_PROFILE_ENV, "ci"))


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
