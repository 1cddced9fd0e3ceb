"""Typed JSON <-> literals, by a launch plan's LiteralTypes alone: no user code, no raw-store access.

A launch through the server gives its inputs as JSON; each is converted by the type its launch plan
declares. Files, folders and data frames are given as URIs of data already in a store and become
references (nothing is read or uploaded). Meta values go back out as JSON that says what the engine
holds: primitives and collections as values, references as URI, format, size and columns.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
from typing import Any

from flyteidl.core import literals_pb2, types_pb2

from ferry.errors import TypeMismatchError
from ferry.literals import (
    Literal,
    LiteralMap,
    LiteralType,
    SimpleType,
    blob_literal,
    describe,
    none_literal,
    none_variant,
    type_text,
)
from ferry.units import human_size


def to_literal(value: Any, lt: LiteralType, path: str) -> Literal:
    """JSON ``value`` as a literal of type ``lt``; a TypeMismatchError naming ``path`` when it doesn't fit."""
    kind = lt.WhichOneof("type")
    if kind == "union_type":
        return _union(value, lt, path)
    if kind == "collection_type":
        if not isinstance(value, list):
            raise _mismatch(path, lt, value, "a JSON array")
        lit = Literal()
        lit.collection.SetInParent()
        for i, item in enumerate(value):
            lit.collection.literals.append(to_literal(item, lt.collection_type, f"{path}[{i}]"))
        return lit
    if kind == "map_value_type":
        if not isinstance(value, dict):
            raise _mismatch(path, lt, value, "a JSON object")
        lit = Literal()
        lit.map.SetInParent()
        for key, item in value.items():
            lit.map.literals[key].CopyFrom(to_literal(item, lt.map_value_type, f"{path}[{key!r}]"))
        return lit
    if kind == "blob":
        return _blob(value, lt, path)
    if kind == "structured_dataset_type":
        uri, fmt = _reference(value, lt, path)
        lit = Literal()
        lit.scalar.structured_dataset.uri = uri
        sd_type = lit.scalar.structured_dataset.metadata.structured_dataset_type
        sd_type.CopyFrom(lt.structured_dataset_type)
        sd_type.format = fmt or lt.structured_dataset_type.format or "parquet"
        return lit
    if kind == "enum_type":
        if not isinstance(value, str) or value not in lt.enum_type.values:
            raise TypeMismatchError(f"{path}: {value!r} is not one of {list(lt.enum_type.values)}.")
        return Literal(scalar=literals_pb2.Scalar(primitive=literals_pb2.Primitive(string_value=value)))
    if kind == "simple":
        return _simple(value, lt, path)
    raise TypeMismatchError(f"{path}: a {type_text(lt)} can't be given as JSON; launch it with the Python client.")


def _mismatch(path: str, lt: LiteralType, value: Any, wanted: str) -> TypeMismatchError:
    shown = repr(value) if len(repr(value)) < 60 else repr(value)[:57] + "..."
    got = "null" if value is None else f"{_json_kind(value)} {shown}"
    return TypeMismatchError(f"{path}: expected {type_text(lt)} ({wanted}), got {got}.")


def _json_kind(value: Any) -> str:
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array", dict: "object",
            type(None): "null"}.get(type(value), type(value).__name__)


def _primitive(**field: Any) -> Literal:
    return Literal(scalar=literals_pb2.Scalar(primitive=literals_pb2.Primitive(**field)))


def _simple(value: Any, lt: LiteralType, path: str) -> Literal:
    simple = lt.simple
    if simple == SimpleType.INTEGER:
        if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
            value = int(value)  # beyond 2**53 a JavaScript number loses digits: a string keeps them
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise _mismatch(path, lt, value, "a whole number")
        if not -2**63 <= value < 2**63:
            raise TypeMismatchError(f"{path}: {value} doesn't fit a 64-bit integer.")
        return _primitive(integer=value)
    if simple == SimpleType.FLOAT:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise _mismatch(path, lt, value, "a number") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _mismatch(path, lt, value, "a number")
        return _primitive(float_value=float(value))
    if simple == SimpleType.STRING:
        if not isinstance(value, str):
            raise _mismatch(path, lt, value, "a string")
        return _primitive(string_value=value)
    if simple == SimpleType.BOOLEAN:
        if not isinstance(value, bool):
            raise _mismatch(path, lt, value, "true or false")
        return _primitive(boolean=value)
    if simple == SimpleType.DATETIME:
        if not isinstance(value, str):
            raise _mismatch(path, lt, value, "an ISO 8601 date and time")
        try:
            when = dt.datetime.fromisoformat(value)
        except ValueError:
            raise _mismatch(path, lt, value, "an ISO 8601 date and time, e.g. 2026-11-24T13:05:00") from None
        lit = _primitive()
        lit.scalar.primitive.datetime.FromDatetime(when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc))
        return lit
    if simple == SimpleType.DURATION:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise _mismatch(path, lt, value, "a number of seconds")
        lit = _primitive()
        lit.scalar.primitive.duration.FromTimedelta(dt.timedelta(seconds=value))
        return lit
    if simple == SimpleType.NONE:
        if value is not None:
            raise _mismatch(path, lt, value, "null")
        return none_literal()
    if simple == SimpleType.BINARY:
        if not isinstance(value, str):
            raise _mismatch(path, lt, value, "base64 text")
        try:
            data = base64.b64decode(value, validate=True)
        except ValueError:
            raise _mismatch(path, lt, value, "base64 text") from None
        return Literal(scalar=literals_pb2.Scalar(binary=literals_pb2.Binary(value=data)))
    if simple == SimpleType.STRUCT:
        return _struct(value, lt, path)
    raise TypeMismatchError(f"{path}: a {type_text(lt)} can't be given as JSON.")


def _struct(value: Any, lt: LiteralType, path: str) -> Literal:
    fields = lt.structure.dataclass_type
    if not isinstance(value, dict):
        raise _mismatch(path, lt, value, "a JSON object")
    if not fields:  # an opaque struct: a google.protobuf.Struct
        lit = Literal()
        lit.scalar.generic.update(value)
        return lit
    unknown = sorted(set(value) - set(fields))
    missing = sorted(set(fields) - set(value))
    if unknown or missing:
        raise TypeMismatchError(f"{path}: {type_text(lt)} has the fields {sorted(fields)}"
                                + (f"; unknown: {unknown}" if unknown else "") + (f"; missing: {missing}" if missing else "")
                                + ".")
    lit = Literal()
    lit.map.SetInParent()
    for name, field_type in fields.items():
        lit.map.literals[name].CopyFrom(to_literal(value[name], field_type, f"{path}.{name}"))
    return lit


def _union(value: Any, lt: LiteralType, path: str) -> Literal:
    errors = []
    for variant in lt.union_type.variants:
        try:
            inner = to_literal(value, variant, path)
        except TypeMismatchError as exc:
            errors.append(f"{variant.structure.tag or type_text(variant)}: {exc}")
            continue
        return Literal(scalar=literals_pb2.Scalar(union=literals_pb2.Union(value=inner, type=variant)))
    raise TypeMismatchError(f"{path}: {value!r} matches no variant of {type_text(lt)}:\n  " + "\n  ".join(errors))


def _reference(value: Any, lt: LiteralType, path: str) -> tuple[str, str]:
    """A URI (and format) of data already in a store: "s3://b/k", or {"uri": "...", "format": "csv"}."""
    fmt = ""
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"uri", "format"})
        if unknown or "uri" not in value:
            raise TypeMismatchError(f"{path}: give a {type_text(lt)} as a URI string or {{\"uri\": ..., \"format\": ...}}"
                                    f"{f' (unknown keys {unknown})' if unknown else ''}.")
        value, fmt = value["uri"], value.get("format") or ""
    if not isinstance(value, str) or not value:
        raise _mismatch(path, lt, value, "a URI such as s3://bucket/key")
    if "://" not in value:
        if not value.startswith("/"):
            raise TypeMismatchError(f"{path}: {value!r} is not a URI. Give the URI of data already in a store "
                                    "(s3://bucket/key, file:///absolute/path); the server uploads nothing.")
        value = "file://" + value
    return value, str(fmt)


def _blob(value: Any, lt: LiteralType, path: str) -> Literal:
    if lt.blob.format == "PythonPickle":
        raise TypeMismatchError(f"{path}: a pickled value can't be given as JSON; launch it with the Python client.")
    uri, fmt = _reference(value, lt, path)
    if fmt and lt.blob.format and fmt != lt.blob.format:
        raise TypeMismatchError(f"{path}: the input is a {type_text(lt)}; format {fmt!r} doesn't match.")
    return blob_literal(uri, fmt or lt.blob.format, lt.blob.dimensionality == types_pb2.BlobType.MULTIPART)


def to_literal_map(values: dict[str, Any], types: dict[str, LiteralType], owner: str) -> LiteralMap:
    """Named JSON inputs -> a LiteralMap; an input that isn't declared is an error naming the declared ones."""
    out = LiteralMap()
    for name, value in values.items():
        if name not in types:
            raise TypeMismatchError(f"{owner} has no input {name!r}; its inputs are: {', '.join(types) or '(none)'}.")
        out.literals[name].CopyFrom(to_literal(value, types[name], name))
    return out


# ---- out: meta values as JSON ------------------------------------------------------------------------

def meta_value(lit: Literal) -> dict[str, Any]:
    """A meta value as the engine holds it: ``text`` (the CLI's line) and the structure behind it.

    Primitives carry ``value``; lists and maps their ``items``; references ``uri``, ``format``, ``size``
    and (data frames) ``columns``: the data behind a reference is never read.
    """
    out: dict[str, Any] = {"text": describe(lit, 200)}
    kind = lit.WhichOneof("value")
    if kind == "collection":
        out.update(kind="list", items=[meta_value(x) for x in lit.collection.literals])
    elif kind == "map":
        out.update(kind="map", items={k: meta_value(v) for k, v in sorted(lit.map.literals.items())})
    elif kind == "offloaded_metadata":
        off = lit.offloaded_metadata
        out.update(kind="offloaded", uri=off.uri, size=off.size_bytes, type=type_text(off.inferred_type))
    elif kind == "scalar":
        out.update(_scalar(lit))
    else:
        out["kind"] = "empty"
    return out


def _scalar(lit: Literal) -> dict[str, Any]:
    scalar = lit.scalar
    which = scalar.WhichOneof("value")
    size = int(lit.metadata["size"]) if lit.metadata.get("size", "").isdigit() else None
    if which == "primitive":
        prim = scalar.primitive
        field = prim.WhichOneof("value")
        if field == "datetime":
            return {"kind": "datetime", "value": prim.datetime.ToDatetime().isoformat()}
        if field == "duration":
            return {"kind": "duration", "value": prim.duration.ToTimedelta().total_seconds()}
        value: Any = getattr(prim, field) if field else None
        kind = {"integer": "int", "float_value": "float", "string_value": "str", "boolean": "bool"}.get(field or "", "?")
        if (kind == "int" and abs(value) >= 2**53) or (kind == "float" and not math.isfinite(value)):
            value = str(value)  # JSON has no NaN or infinity, and JavaScript numbers lose digits past 2**53
        return {"kind": kind, "value": value}
    if which == "blob":
        multi = scalar.blob.metadata.type.dimensionality == types_pb2.BlobType.MULTIPART
        return {"kind": "directory" if multi else "file", "uri": scalar.blob.uri,
                "format": scalar.blob.metadata.type.format, "size": size,
                "size_text": human_size(size) if size is not None else None}
    if which == "structured_dataset":
        sd = scalar.structured_dataset
        sd_type = sd.metadata.structured_dataset_type
        return {"kind": "dataframe", "uri": sd.uri, "format": sd_type.format or "parquet", "size": size,
                "size_text": human_size(size) if size is not None else None,
                "columns": [{"name": c.name, "type": type_text(c.literal_type)} for c in sd_type.columns]}
    if which == "none_type":
        return {"kind": "none", "value": None}
    if which == "union":
        inner = meta_value(scalar.union.value)
        return {**inner, "variant": scalar.union.type.structure.tag or type_text(scalar.union.type)}
    if which == "binary":
        return {"kind": "binary", "size": len(scalar.binary.value), "tag": scalar.binary.tag}
    if which == "generic":
        from google.protobuf.json_format import MessageToDict

        return {"kind": "struct", "value": MessageToDict(scalar.generic)}
    return {"kind": which or "empty"}


def plain(value: dict[str, Any]) -> Any:
    """A meta value (``meta_value``) back as the typed JSON a launch takes: to prefill a form with a default."""
    kind = value.get("kind")
    if kind == "list":
        return [plain(x) for x in value["items"]]
    if kind == "map":
        return {k: plain(v) for k, v in value["items"].items()}
    if kind in ("file", "directory", "dataframe"):
        return value["uri"]
    return value.get("value")


def full_text(value: dict[str, Any]) -> str:
    """A meta value in full (``text`` shortens long collections), for an expandable view."""
    kind = value.get("kind")
    if kind == "list":
        return "[" + ", ".join(full_text(x) for x in value["items"]) + "]"
    if kind == "map":
        return "{" + ", ".join(f"{k!r}: {full_text(v)}" for k, v in value["items"].items()) + "}"
    if kind == "str":  # ``text`` shortens a long one
        return repr(value["value"])
    return str(value["text"])


def meta_values(lm: LiteralMap | None) -> dict[str, Any] | None:
    return None if lm is None else {name: meta_value(lm.literals[name]) for name in sorted(lm.literals)}


# ---- types, for forms and listings --------------------------------------------------------------------

def type_json(lt: LiteralType) -> dict[str, Any]:
    """A LiteralType as JSON a form can be built from: ``text`` (as a reader writes it) and a ``form`` widget."""
    kind = lt.WhichOneof("type")
    out: dict[str, Any] = {"text": type_text(lt), "form": "json"}
    if kind == "simple":
        out["form"] = {SimpleType.INTEGER: "int", SimpleType.FLOAT: "float", SimpleType.STRING: "str",
                       SimpleType.BOOLEAN: "bool", SimpleType.DATETIME: "datetime", SimpleType.DURATION: "duration",
                       SimpleType.NONE: "none", SimpleType.BINARY: "binary"}.get(lt.simple, "json")
    elif kind == "blob":
        multi = lt.blob.dimensionality == types_pb2.BlobType.MULTIPART
        out.update(form="uri", reference="directory" if multi else "file", format=lt.blob.format)
    elif kind == "structured_dataset_type":
        out.update(form="uri", reference="dataframe", format=lt.structured_dataset_type.format,
                   columns=[{"name": c.name, "type": type_text(c.literal_type)}
                            for c in lt.structured_dataset_type.columns])
    elif kind == "enum_type":
        out.update(form="enum", values=list(lt.enum_type.values))
    elif kind == "union_type":
        none = none_variant(lt)
        others = [v for v in lt.union_type.variants if v != none]
        if none is not None and len(others) == 1:  # Optional[T]: T's widget, empty for None
            inner = type_json(others[0])
            out.update(form=inner["form"], optional=True, inner=inner)
            for key in ("values", "reference", "format", "columns"):
                if key in inner:
                    out[key] = inner[key]
    return out
