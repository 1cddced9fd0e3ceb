"""A Python type for a LiteralType, when only the spec is known (a registered launch plan, a stored output).

Used to read a registered workflow's outputs, or to parse a launch's inputs, without
the workflow's code: primitives and collections as themselves, blobs as ``File`` /
``Directory``, data frames as pandas (or pyarrow when pandas is missing), structs
as dataclasses built from their field types, enums as ``Enum``s of their values.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import typing
from typing import Any

from ferry.errors import UnsupportedTypeError
from ferry.literals import LiteralType, SimpleType, type_text

_SIMPLE: dict[int, Any] = {
    SimpleType.INTEGER: int, SimpleType.FLOAT: float, SimpleType.STRING: str, SimpleType.BOOLEAN: bool,
    SimpleType.DATETIME: dt.datetime, SimpleType.DURATION: dt.timedelta, SimpleType.BINARY: bytes,
    SimpleType.NONE: type(None),
}


def python_type(lt: LiteralType) -> Any:
    """The Python type ferry reads a literal of type ``lt`` as."""
    from flyteidl.core import types_pb2

    kind = lt.WhichOneof("type")
    if kind == "simple":
        if lt.simple == SimpleType.STRUCT:
            return _struct(lt)
        if lt.simple in _SIMPLE:
            return _SIMPLE[lt.simple]
    elif kind == "collection_type":
        return list[python_type(lt.collection_type)]  # type: ignore[misc]
    elif kind == "map_value_type":
        return dict[str, python_type(lt.map_value_type)]  # type: ignore[misc]
    elif kind == "blob":
        from ferry.types.files import Directory, File

        if lt.blob.format == "PythonPickle":
            raise UnsupportedTypeError("A pickled value can only be read by code that declares its Python type.")
        base: Any = Directory if lt.blob.dimensionality == types_pb2.BlobType.MULTIPART else File
        return base[lt.blob.format] if lt.blob.format else base
    elif kind == "structured_dataset_type":
        try:
            import pandas

            return pandas.DataFrame
        except ImportError:
            import pyarrow

            return pyarrow.Table
    elif kind == "union_type":
        variants = tuple(python_type(v) for v in lt.union_type.variants)
        return typing.Union[variants]  # type: ignore[valid-type]
    elif kind == "enum_type":
        return enum.Enum("Enum", {v: v for v in lt.enum_type.values})  # type: ignore[misc]
    raise UnsupportedTypeError(f"ferry can't read a value of type {type_text(lt)} without the code that declares it.")


def _struct(lt: LiteralType) -> Any:
    fields = lt.structure.dataclass_type
    if not fields:
        return dict[str, Any]  # an opaque struct (google.protobuf.Struct): read as a dict
    name = (lt.structure.tag or "Struct").rsplit(".", 1)[-1]
    cls = dataclasses.make_dataclass(name, [(k, python_type(v)) for k, v in fields.items()])
    module, _, qualname = (lt.structure.tag or "").rpartition(".")
    cls.__module__, cls.__qualname__ = module or "builtins", qualname or name  # so its union tag matches
    return cls
