"""Reliability harnesses: crash safety (kill, restart, audit) and concurrent writers, on the real
store through the ``Memory`` facade. ``memstrata bench faults`` and ``memstrata bench
concurrency`` run them; ``docs/reliability.md`` describes both.

- :func:`~memstrata_bench.reliability.faults.run_faults`: SIGKILL workers at random points
  of ``add``, ``compress`` and ``chat``, restart as a client would, audit the store.
- :func:`~memstrata_bench.reliability.concurrency.run_concurrency`: writers in several
  processes and threads, compression racing, exact counts.
- :mod:`~memstrata_bench.reliability.audit`: the pure checks both use.

Importing this package starts nothing and connects to nothing.
"""

from memstrata_bench.reliability.audit import ScopeAudit, audit_scope
from memstrata_bench.reliability.concurrency import run_concurrency
from memstrata_bench.reliability.faults import run_faults

__all__ = ["ScopeAudit", "audit_scope", "run_concurrency", "run_faults"]
