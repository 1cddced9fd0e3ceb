"""Vectorized wire encoding of large ``list[int|float|bool]`` collections, when numpy is installed.

Building or walking a million ``Literal`` messages one by one costs about a
microsecond each in Python. The same LiteralCollection is encoded here with
numpy straight to protobuf wire bytes and parsed by protobuf's C core; reads
decode the serialized collection the same way. The result is the exact
message the slow path builds; anything unexpected falls back to it. An
offloaded list never becomes a message at all: its file is these bytes
(``collections.serialized_list``), decoded straight back on the way in.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, cast

MIN_SIZE = 20_000  # below this, numpy's import and setup cost more than they save
CHUNK = 1 << 15  # elements encoded at a time, likewise (measured: 32K-64K fastest)
WINDOW = 256 << 10  # bytes decoded at a time (small: the temporaries stay in the CPU's cache)
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


def encode(field: str, values: Sequence[Any]) -> bytes:
    """Wire bytes of a LiteralCollection holding one primitive per value."""
    import numpy as np

    tag, fixed = _FIELDS[field]
    if not fixed:
        v = np.fromiter(values, dtype=np.int64, count=len(values)).view(np.uint64)  # OverflowError beyond int64
        return b"".join(_encode_varints(v[i:i + CHUNK], tag) for i in range(0, len(v), CHUNK))
    if len(values) > CHUNK:
        return b"".join(encode(field, values[i:i + CHUNK]) for i in range(0, len(values), CHUNK))
    n = len(values)
    rows = np.empty((n, 7 + fixed), dtype=np.uint8)
    rows[:, :7] = (_TAG, fixed + 5, _TAG, fixed + 3, _TAG, fixed + 1, tag)
    if fixed == 8:
        rows[:, 7:] = np.fromiter(values, dtype="<f8", count=n).view(np.uint8).reshape(n, 8)
    else:
        rows[:, 7] = np.fromiter(values, dtype=np.uint8, count=n)
    return rows.tobytes()


def _encode_varints(v: Any, tag: int) -> bytes:
    """Wire bytes of the elements holding the uint64s ``v`` (int64s' bits) as varints."""
    import numpy as np

    n = len(v)
    lengths = np.ones(n, dtype=np.uint8)  # of each value's varint
    for k in range(1, 10):
        longer = v >= np.uint64(1 << (7 * k))
        if not longer.any():
            break
        lengths += longer
    most = int(lengths.max())
    # One row per element, as long as the longest: 7 one-byte varints of structure, then the value's bytes.
    rows = np.empty((n, 7 + most), dtype=np.uint8)
    rows[:, :7] = (_TAG, 0, _TAG, 0, _TAG, 0, tag)
    rows[:, 1] = lengths + 5  # the Literal's length, then the Scalar's, then the Primitive's
    rows[:, 3] = lengths + 3
    rows[:, 5] = lengths + 1
    for k in range(most):
        group = ((v >> np.uint64(7 * k)) & np.uint64(0x7F)).astype(np.uint8)
        if k + 1 < most:
            group |= (lengths > k + 1).astype(np.uint8) << 7
        rows[:, 7 + k] = group
    if (lengths == most).all():
        return rows.tobytes()
    return rows[np.arange(7 + most, dtype=np.uint8) < (lengths + 7)[:, None]].tobytes()  # without the padding


def decode(field: str, data: bytes, count: int | None) -> list[Any] | None:
    """Values of a serialized all-``field`` LiteralCollection of ``count`` (None: however many there are)
    elements, or None if it isn't exactly that."""
    import numpy as np

    tag, fixed = _FIELDS[field]
    buf = np.frombuffer(data, dtype=np.uint8)
    if count is None:  # every element is 8 varints (see _decode_varints), or 7 + fixed bytes
        count = int(np.count_nonzero(buf < 0x80)) // 8 if not fixed else len(buf) // (7 + fixed)
    if not fixed:
        values = _decode_varints(buf, tag, count)
        return None if values is None else cast(list[Any], values.tolist())
    width = 7 + fixed
    if len(buf) != count * width:
        return None
    rows = buf.reshape(count, width)
    expected = np.array([_TAG, fixed + 5, _TAG, fixed + 3, _TAG, fixed + 1, tag], dtype=np.uint8)
    if not (rows[:, :7] == expected).all():
        return None
    if fixed == 8:
        return rows[:, 7:].copy().view("<f8").ravel().tolist()
    return cast(list[Any], (rows[:, 7] != 0).tolist())


def _decode_varints(buf: Any, tag: int, count: int) -> Any:
    """int64 values, a window of the buffer at a time. Every byte of the encoding belongs to a varint, and a
    varint ends at its one byte below 0x80: per element, 7 one-byte varints of structure, then the value."""
    import numpy as np

    out = np.empty(count, dtype=np.int64)
    done = pos = 0
    while pos < len(buf):
        window = buf[pos:pos + WINDOW]
        ends = np.flatnonzero(window < 0x80)
        whole = len(ends) // 8 * 8  # the window starts at an element: its first whole/8 elements are complete
        if not whole or done + whole // 8 > count:
            return None
        rows = ends[:whole].reshape(-1, 8)
        values = _decode_elements(window, rows, tag)
        if values is None:
            return None
        out[done:done + len(values)] = values
        done += len(values)
        pos += int(rows[-1, 7]) + 1
    return out if done == count else None


@functools.cache
def _byte_masks() -> Any:
    """Per count of bytes 0..8: the uint64 keeping that many low bytes."""
    import numpy as np

    return np.array([(1 << (8 * k)) - 1 for k in range(8)] + [(1 << 64) - 1], dtype=np.uint64)


def _decode_elements(window: Any, ends: Any, tag: int) -> Any:
    """The values of the elements whose varints end at ``ends`` (one row of 8 per element), or None."""
    import numpy as np

    starts = np.empty(len(ends), dtype=np.int64)
    starts[0] = 0
    starts[1:] = ends[:-1, 7] + 1
    lengths = ends[:, 7] - starts - 6  # of the value's varint
    if (ends[:, 6] - starts != 6).any() or lengths.max() > 10:  # 7 one-byte varints of structure, then the value
        return None
    padded = np.zeros(len(window) + 16, dtype=np.uint8)
    padded[:len(window)] = window
    words = np.ndarray((len(window) + 8,), dtype="<u8", buffer=padded, strides=(1,))  # 8 bytes from each offset
    header = words[starts] & np.uint64((1 << 56) - 1)
    width = lengths.astype(np.uint64)
    expected = np.uint64(_TAG | 5 << 8 | _TAG << 16 | 3 << 24 | _TAG << 32 | 1 << 40 | tag << 48) \
        + (width << np.uint64(8)) + (width << np.uint64(24)) + (width << np.uint64(40))
    if not (header == expected).all():
        return None
    most = int(lengths.max())
    word = words[starts + 7] & _byte_masks()[np.minimum(lengths, 8)]  # the value's first 8 bytes, nothing after
    values = word & np.uint64(0x7F)
    for k in range(1, most):
        if k == 8:
            word = words[starts + 15] & _byte_masks()[np.maximum(lengths - 8, 0)]
        values |= ((word >> np.uint64(8 * (k % 8))) & np.uint64(0x7F)) << np.uint64(7 * k)
    return values.view(np.int64)
