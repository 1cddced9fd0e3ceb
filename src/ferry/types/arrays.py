"""numpy.ndarray as a Blob in .npy format (no pickling of object arrays)."""

from __future__ import annotations

from typing import Any

from flyteidl.core import types_pb2

from ferry.errors import MissingDependencyError, TypeMismatchError
from ferry.literals import Literal, LiteralType
from ferry.types.engine import Transformer, expect_scalar, value_type_name

NPY = "npy"


def _is_ndarray(python_type: Any) -> bool:
    return isinstance(python_type, type) and python_type.__module__ == "numpy" and python_type.__name__ == "ndarray"


def numpy() -> Any:
    """numpy, or a user error naming the extra to install (arrays are read and written with it)."""
    try:
        import numpy as np
    except ImportError as exc:
        raise MissingDependencyError("numpy", "numpy", "A numpy array", str(exc)) from exc
    return np


class NumpyTransformer(Transformer):
    name = "ndarray"

    def matches(self, python_type: Any) -> bool:
        import typing

        return _is_ndarray(typing.get_origin(python_type) or python_type)

    def literal_type(self, python_type: Any, engine: Any) -> LiteralType:
        return LiteralType(blob=types_pb2.BlobType(format=NPY, dimensionality=types_pb2.BlobType.SINGLE))

    def to_literal(self, value: Any, python_type: Any, engine: Any, ctx: Any, path: str) -> Literal:
        from ferry.types.files import write_blob

        np = numpy()
        if not isinstance(value, np.ndarray):
            raise TypeMismatchError(f"{path}: expected numpy.ndarray, got {value_type_name(value)}.")
        if value.dtype.hasobject:
            raise TypeMismatchError(
                f"{path}: arrays of Python objects (dtype=object) can't be stored as .npy without pickling; "
                "convert to a numeric or string dtype."
            )
        return write_blob(ctx, "array.npy", NPY, lambda fh: np.save(fh, value, allow_pickle=False))

    def to_python(self, literal: Literal, python_type: Any, engine: Any, ctx: Any, path: str) -> Any:
        from ferry.storage import open_read
        from ferry.types.files import store_roots

        np = numpy()
        blob = expect_scalar(literal, "blob", python_type, path)
        with open_read(blob.uri, ctx.options(blob.uri), "raw", roots=store_roots(ctx)) as fh:
            return np.load(fh, allow_pickle=False)
