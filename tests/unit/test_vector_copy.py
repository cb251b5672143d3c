"""Batch-built vector payloads are byte for byte what pgvector's own dumper sends."""

from __future__ import annotations

import math

import numpy as np
from memstrata.adapters.postgres.vector_copy import VectorPayload, vector_payloads
from pgvector import Vector


def test_each_row_is_pgvectors_binary_input() -> None:
    rng = np.random.default_rng(1)
    for matrix in (rng.normal(size=(5, 7)), rng.normal(size=(3, 384)).astype(np.float32)):
        payloads = vector_payloads(matrix)
        assert payloads is not None and all(isinstance(p, VectorPayload) for p in payloads)
        assert payloads == [Vector(row).to_binary() for row in matrix]


def test_only_float_matrices_are_built_and_overflow_becomes_infinity() -> None:
    assert vector_payloads([[0.1, 0.2]]) is None
    assert vector_payloads(np.zeros(3)) is None
    assert vector_payloads(np.zeros((2, 3), dtype=np.int64)) is None
    [big] = vector_payloads(np.array([[1e39, 0.5]])) or []
    assert math.isinf(Vector.from_binary(big).to_list()[0])  # refused by pgvector, as for one vector
