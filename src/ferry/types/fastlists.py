"""Vectorized wire encoding of large ``list[int|float|bool]`` collections, when numpy is installed.

Building or walking a million ``Literal`` messages one by one costs about a
microsecond each in Python. The same LiteralCollection is encoded here with
numpy straight to protobuf wire bytes and parsed by protobuf's C core; reads
decode the serialized collection the same way. The result is the exact
message the slow path builds; anything unexpected falls back to it.
"""

from __future__ import annotations

from typing import Any

from flyteidl.core import literals_pb2

MIN_SIZE = 20_000  # below this, numpy's import and setup cost more than they save
CHUNK = 1 << 16  # elements encoded or decoded at a time, to bound temporary memory
_TAG = 0x0A  # field 1, length-delimited: LiteralCollection.literals, Literal.scalar, Scalar.primitive

# field -> (primitive tag byte, fixed payload size or 0 for a varint)
_FIELDS = {"integer": (0x08, 0), "float_value": (0x11, 8), "boolean": (0x20, 1)}


def available(field: str, count: int) -> bool:
    if field not in _FIELDS or count < MIN_SIZE:
        return False
    try:
        import numpy  # noqa: F401
    except ImportError:
        return False
    return True


def _varint_matrix(values: Any) -> tuple[Any, Any]:
    """uint64 values -> (N, 10) varint bytes and each value's varint length."""
    import numpy as np

    v = values.astype(np.uint64, copy=False)
    out = np.zeros((len(v), 10), dtype=np.uint8)
    lengths = np.ones(len(v), dtype=np.int64)
    for k in range(10):
        group = (v >> np.uint64(7 * k)) & np.uint64(0x7F)
        more = (v >> np.uint64(7 * (k + 1))) != 0 if k < 9 else np.zeros(len(v), dtype=bool)
        out[:, k] = group.astype(np.uint8) | (more.astype(np.uint8) << 7)
        lengths += more
    return out, lengths


def encode(field: str, values: list[Any]) -> bytes:
    """Wire bytes of a LiteralCollection holding one primitive per value."""
    import numpy as np

    if len(values) > CHUNK:
        return b"".join(encode(field, values[i:i + CHUNK]) for i in range(0, len(values), CHUNK))
    tag, fixed = _FIELDS[field]
    n = len(values)
    if fixed == 8:
        payload = np.asarray(values, dtype="<f8").view(np.uint8).reshape(n, 8)
        lengths = np.full(n, 8, dtype=np.int64)
    elif fixed == 1:
        payload = np.asarray(values, dtype=np.uint8).reshape(n, 1)
        lengths = np.ones(n, dtype=np.int64)
    else:
        payload, lengths = _varint_matrix(np.asarray(values, dtype=np.int64).view(np.uint64))
    width = payload.shape[1]
    rows = np.empty((n, 7 + width), dtype=np.uint8)
    prim = lengths + 1  # tag + payload
    rows[:, 0] = _TAG
    rows[:, 1] = prim + 4  # Literal:  0x0A len(Scalar), Scalar: 0x0A len(Primitive)
    rows[:, 2] = _TAG
    rows[:, 3] = prim + 2
    rows[:, 4] = _TAG
    rows[:, 5] = prim
    rows[:, 6] = tag
    rows[:, 7:] = payload
    keep = np.arange(7 + width)[None, :] < (7 + lengths)[:, None]
    return rows[keep].tobytes()


def decode(field: str, data: bytes, count: int) -> list[Any] | None:
    """Values of a serialized all-``field`` LiteralCollection, or None if it isn't exactly that."""
    import numpy as np

    tag, fixed = _FIELDS[field]
    buf = np.frombuffer(data, dtype=np.uint8)
    if not fixed:
        return _decode_varints(buf, tag, count)
    width = 7 + fixed
    if len(buf) != count * width:
        return None
    rows = buf.reshape(count, width)
    expected = np.array([_TAG, fixed + 5, _TAG, fixed + 3, _TAG, fixed + 1, tag], dtype=np.uint8)
    if not (rows[:, :7] == expected).all():
        return None
    if fixed == 8:
        return rows[:, 7:].copy().view("<f8").ravel().tolist()
    return (rows[:, 7] != 0).tolist()


def _decode_varints(buf: Any, tag: int, count: int) -> list[Any] | None:
    """Every byte is part of a varint: per element, 7 one-byte varints of structure, then the value."""
    import numpy as np

    ends = np.flatnonzero(buf < 0x80)
    if len(ends) != count * 8 or (len(buf) and ends[-1] != len(buf) - 1):
        return None
    element_ends = ends[7::8]
    out: list[Any] = []
    begin = 0
    for first in range(0, count, CHUNK):
        last = min(count, first + CHUNK) - 1
        stop = int(element_ends[last]) + 1
        part = _decode_chunk(buf[begin:stop], ends[first * 8:(last + 1) * 8] - begin, tag, last - first + 1)
        if part is None:
            return None
        out.extend(part)
        begin = stop
    return out


def _decode_chunk(buf: Any, ends: Any, tag: int, count: int) -> list[Any] | None:
    import numpy as np

    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    group = np.repeat(np.arange(len(ends)), ends - starts + 1)
    shift = (np.arange(len(buf)) - starts[group]).astype(np.uint64) * np.uint64(7)
    if (shift > 63).any():
        return None
    parts = (buf & 0x7F).astype(np.uint64) << shift
    values = np.add.reduceat(parts, starts).reshape(count, 8)
    sizes = (ends - starts + 1).reshape(count, 8)
    n = sizes[:, 7].astype(np.uint64)
    ok = (
        (values[:, 0] == _TAG) & (values[:, 2] == _TAG) & (values[:, 4] == _TAG) & (values[:, 6] == tag)
        & (values[:, 1] == n + 5) & (values[:, 3] == n + 3) & (values[:, 5] == n + 1)
        & (sizes[:, :7] == 1).all(axis=1)
    )
    if not ok.all():
        return None
    return values[:, 7].view(np.int64).tolist()


def fill(collection: literals_pb2.LiteralCollection, field: str, values: list[Any]) -> None:
    collection.MergeFromString(encode(field, values))
