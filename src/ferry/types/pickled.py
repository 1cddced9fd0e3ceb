"""The last resort: any other Python object pickled into a Blob (the engine warns when it's used)."""

from __future__ import annotations

import pickle
from typing import Any

from flyteidl.core import types_pb2

from ferry.literals import Literal, LiteralType
from ferry.types.engine import Transformer, expect_scalar, type_name

PICKLE = "PythonPickle"


class PickleTransformer(Transformer):
    name = "pickle"

    def literal_type(self, python_type: Any, engine: Any) -> LiteralType:
        lt = LiteralType(blob=types_pb2.BlobType(format=PICKLE, dimensionality=types_pb2.BlobType.SINGLE))
        lt.metadata.update({"python_class": type_name(python_type)})
        return lt

    def to_literal(self, value: Any, python_type: Any, engine: Any, ctx: Any, path: str) -> Literal:
        from ferry.types.files import write_blob

        return write_blob(ctx, "value.pkl", PICKLE, lambda fh: pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL))

    def to_python(self, literal: Literal, python_type: Any, engine: Any, ctx: Any, path: str) -> Any:
        from ferry.storage import open_read

        blob = expect_scalar(literal, "blob", python_type, path)
        with open_read(blob.uri, ctx.options(blob.uri), "raw") as fh:
            return pickle.load(fh)
