"""Vectors for binary COPY, built for a whole batch at once.

pgvector's dumper turns each vector into its binary input in Python (~7 us a row, most of a
row's dumping). For a batch given as one float matrix, :func:`vector_payloads` builds every
row's binary input in one numpy pass, and :func:`register_payload_dumper` sends them as they are.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import psycopg
from pgvector import Vector
from psycopg.adapt import Dumper
from psycopg.pq import Format

__all__ = ["VectorPayload", "register_payload_dumper", "vector_payloads"]


class VectorPayload(bytes):
    """A vector in pgvector's binary input format: dimension, a zero, big-endian float4s."""


def vector_payloads(vectors: object) -> list[VectorPayload] | None:
    """Each row of a 2-D float array as a :class:`VectorPayload`; None for anything else.

    Values beyond float4's range become infinity, which pgvector refuses (as for one vector).
    """
    if not (isinstance(vectors, np.ndarray) and vectors.ndim == 2 and vectors.dtype.kind == "f"):
        return None
    rows, dims = vectors.shape
    width = 4 + 4 * dims
    out = np.empty((rows, width), dtype=np.uint8)
    out[:, :4] = np.frombuffer(struct.pack(">HH", dims, 0), dtype=np.uint8)
    with np.errstate(over="ignore"):
        out[:, 4:] = np.ascontiguousarray(vectors, dtype=">f4").view(np.uint8).reshape(rows, 4 * dims)
    data = out.tobytes()
    return [VectorPayload(data[i : i + width]) for i in range(0, rows * width, width)]


class _PayloadDumper(Dumper):
    format = Format.BINARY

    def dump(self, obj: Any) -> bytes:
        return obj if isinstance(obj, VectorPayload) else bytes(Vector(obj).to_binary())


def register_payload_dumper(cursor: psycopg.Cursor[Any] | psycopg.AsyncCursor[Any]) -> None:
    """Make ``cursor``'s binary ``vector`` dumper send :class:`VectorPayload` as it is (anything
    else as pgvector does). Call before ``Copy.set_types``."""
    info = cursor.adapters.types.get("vector")
    if info is None:
        raise psycopg.ProgrammingError("the vector type is not registered on this connection")
    dumper = type("VectorPayloadDumper", (_PayloadDumper,), {"oid": info.oid})
    cursor.adapters.register_dumper(VectorPayload, dumper)
