"""Small helpers over flyteidl messages: build, read, (de)serialize, measure, display.

The flyteidl ``core`` protobuf messages are ferry's data model; this module
only saves callers from spelling out nested constructors.
"""

from __future__ import annotations

from typing import Any, Iterable

from flyteidl.core import literals_pb2, types_pb2
from flyteidl.core.interface_pb2 import TypedInterface as TypedInterface  # re-exported
from flyteidl.core.interface_pb2 import Variable as Variable
from flyteidl.core.interface_pb2 import VariableMap as VariableMap
from flyteidl.core.literals_pb2 import Literal as Literal
from flyteidl.core.literals_pb2 import LiteralMap as LiteralMap
from flyteidl.core.types_pb2 import LiteralType as LiteralType
from flyteidl.core.types_pb2 import SimpleType as SimpleType
from google.protobuf import text_format
from google.protobuf.message import DecodeError

from ferry.errors import CorruptMetadataError
from ferry.units import human_size


def none_literal() -> Literal:
    return Literal(scalar=literals_pb2.Scalar(none_type=literals_pb2.Void()))


def literal_map(literals: dict[str, Literal]) -> LiteralMap:
    return LiteralMap(literals=literals)


def serialize(message: Any) -> bytes:
    return bytes(message.SerializeToString(deterministic=True))


def parse_literal_map(data: bytes, source: str = "literal map", *, nonempty: bool = False) -> LiteralMap:
    """Parse a serialized LiteralMap, with an error that names where it came from.

    An empty map serializes to zero bytes, so a truncated file can parse as one: a caller that knows
    the map holds something (``nonempty``: outputs, the inputs of a task with required inputs) gets a
    CorruptMetadataError for empty data instead.
    """
    if nonempty and not data:
        raise CorruptMetadataError(
            f"{source} is empty (0 bytes), but it must hold values: it is corrupt or truncated. Re-create it "
            "(re-run the execution, or `ferry executions resume`), and check the store for failing writes."
        )
    result = LiteralMap()
    try:
        result.ParseFromString(data)
    except DecodeError as exc:
        raise CorruptMetadataError(
            f"{source} is not a valid flyteidl LiteralMap ({exc}); it is corrupt or truncated "
            f"({len(data)} bytes). Re-create it, or check that the writer wrote a LiteralMap."
        ) from exc
    return result


def parse_literal(data: bytes, source: str = "literal") -> Literal:
    result = Literal()
    try:
        result.ParseFromString(data)
    except DecodeError as exc:
        raise CorruptMetadataError(f"{source} is not a valid flyteidl Literal ({exc}); it is corrupt or truncated.") from exc
    return result


def to_text(message: Any) -> str:
    """Protobuf text format, as in the reference documents, with map keys sorted."""
    ordered = type(message)()
    ordered.ParseFromString(serialize(message))  # deterministic bytes put map keys in order
    return str(text_format.MessageToString(ordered))


def blob_literal(uri: str, fmt: str, multipart: bool = False, size: int | None = None) -> Literal:
    dim = types_pb2.BlobType.MULTIPART if multipart else types_pb2.BlobType.SINGLE
    lit = Literal(
        scalar=literals_pb2.Scalar(
            blob=literals_pb2.Blob(
                uri=uri,
                metadata=literals_pb2.BlobMetadata(type=types_pb2.BlobType(format=fmt, dimensionality=dim)),
            )
        )
    )
    if size is not None:
        lit.metadata["size"] = str(size)
    return lit


def none_variant(lt: LiteralType) -> LiteralType | None:
    """The ``None`` variant of a union type (an Optional's), or None when it has none."""
    if lt.WhichOneof("type") != "union_type":
        return None
    return next((v for v in lt.union_type.variants if v.WhichOneof("type") == "simple" and v.simple == SimpleType.NONE),
                None)


def references(literal: Literal) -> Iterable[str]:
    """Every URI a literal refers to (blobs, data frames, offloaded literals), depth first."""
    kind = literal.WhichOneof("value")
    if kind == "scalar":
        scalar = literal.scalar
        which = scalar.WhichOneof("value")
        if which == "blob":
            yield scalar.blob.uri
        elif which == "structured_dataset":
            yield scalar.structured_dataset.uri
        elif which == "union":
            yield from references(scalar.union.value)
    elif kind == "collection":
        for item in literal.collection.literals:
            yield from references(item)
    elif kind == "map":
        for item in literal.map.literals.values():
            yield from references(item)
    elif kind == "offloaded_metadata":
        yield literal.offloaded_metadata.uri


def describe(literal: Literal, limit: int = 80) -> str:
    """A short human line for a meta value: primitives as values, references as URI + format + size."""
    kind = literal.WhichOneof("value")
    if kind == "scalar":
        return _describe_scalar(literal, limit)
    if kind == "collection":
        items = literal.collection.literals
        shown = ", ".join(describe(x, limit) for x in items[:5])
        more = f", ... ({len(items)} items)" if len(items) > 5 else ""
        return _clip(f"[{shown}{more}]", limit)
    if kind == "map":
        items = sorted(literal.map.literals.items())
        shown = ", ".join(f"{k}: {describe(v, limit)}" for k, v in items[:5])
        more = f", ... ({len(items)} keys)" if len(items) > 5 else ""
        return _clip("{" + shown + more + "}", limit)
    if kind == "offloaded_metadata":
        off = literal.offloaded_metadata
        return f"offloaded literal {off.uri} ({human_size(off.size_bytes)})"
    return "(empty)"


def _describe_scalar(literal: Literal, limit: int) -> str:
    scalar = literal.scalar
    which = scalar.WhichOneof("value")
    size = literal.metadata.get("size")
    size_text = f", {human_size(int(size))}" if size else ""
    if which == "primitive":
        prim = scalar.primitive
        field_name = prim.WhichOneof("value")
        value = getattr(prim, field_name)
        if field_name == "datetime":
            return str(value.ToDatetime().isoformat())
        if field_name == "duration":
            return str(value.ToTimedelta())
        text = repr(value)
        return text if len(text) <= limit else f"{_clip(text, limit)} ({len(str(value)):,} characters)"
    if which == "blob":
        multi = scalar.blob.metadata.type.dimensionality == types_pb2.BlobType.MULTIPART
        fmt = scalar.blob.metadata.type.format or ("folder" if multi else "file")
        return f"{'directory' if multi else 'file'} {scalar.blob.uri} ({fmt}{size_text})"
    if which == "structured_dataset":
        sd = scalar.structured_dataset
        fmt = sd.metadata.structured_dataset_type.format or "parquet"
        return f"dataframe {sd.uri} ({fmt}{size_text})"
    if which == "none_type":
        return "None"
    if which == "binary":
        if scalar.binary.tag == "msgpack":  # a struct, as ferry and flytekit write them: show its fields
            try:
                import msgpack

                return repr(msgpack.unpackb(scalar.binary.value, raw=False, strict_map_key=False))
            except Exception:  # noqa: BLE001 - not MessagePack after all: show its size
                pass
        return f"<{len(scalar.binary.value)} bytes{', ' + scalar.binary.tag if scalar.binary.tag else ''}>"
    if which == "union":
        return describe(scalar.union.value, limit)
    if which == "generic":
        return to_text(scalar.generic).replace("\n", " ")
    return which or "(empty)"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


_SIMPLE_NAMES = {
    SimpleType.INTEGER: "int", SimpleType.FLOAT: "float", SimpleType.STRING: "str", SimpleType.BOOLEAN: "bool",
    SimpleType.DATETIME: "datetime", SimpleType.DURATION: "timedelta", SimpleType.BINARY: "bytes",
    SimpleType.NONE: "None", SimpleType.STRUCT: "struct", SimpleType.ERROR: "error",
}


def type_text(lt: LiteralType) -> str:
    """A LiteralType as a reader would write it: ``int``, ``list[File]``, ``DataFrame[a: int]``, ``int | None``."""
    kind = lt.WhichOneof("type")
    if kind == "simple":
        if lt.simple == SimpleType.STRUCT and lt.structure.tag:
            return lt.structure.tag
        return _SIMPLE_NAMES.get(lt.simple, "?")
    if kind == "collection_type":
        return f"list[{type_text(lt.collection_type)}]"
    if kind == "map_value_type":
        return f"dict[str, {type_text(lt.map_value_type)}]"
    if kind == "blob":
        base = "Directory" if lt.blob.dimensionality == types_pb2.BlobType.MULTIPART else "File"
        return f"{base}[{lt.blob.format!r}]" if lt.blob.format else base
    if kind == "structured_dataset_type":
        columns = ", ".join(f"{c.name}: {type_text(c.literal_type)}" for c in lt.structured_dataset_type.columns)
        return f"DataFrame[{columns}]" if columns else "DataFrame"
    if kind == "union_type":
        return " | ".join(v.structure.tag or type_text(v) for v in lt.union_type.variants)
    if kind == "enum_type":
        return "Enum(" + ", ".join(repr(v) for v in lt.enum_type.values) + ")"
    return kind or "?"


_PLAIN = {SimpleType.INTEGER, SimpleType.FLOAT, SimpleType.STRING, SimpleType.BOOLEAN, SimpleType.DATETIME,
          SimpleType.DURATION, SimpleType.NONE}


def plain(lt: LiteralType) -> bool:
    """Whether values of ``lt`` are plain data (primitives, enums and lists, dicts and unions of them): they
    never refer to files or frames that move through a store."""
    kind = lt.WhichOneof("type")
    if kind == "simple":
        return bool(lt.simple in _PLAIN)
    if kind == "collection_type":
        return plain(lt.collection_type)
    if kind == "map_value_type":
        return plain(lt.map_value_type)
    if kind == "union_type":
        return all(plain(v) for v in lt.union_type.variants)
    return bool(kind == "enum_type")


def literal_mismatch(lit: Literal, lt: LiteralType) -> str | None:
    """Why ``lit`` can't be a value of type ``lt`` (None when it can), judged from the literal's shape alone."""
    if lit.HasField("offloaded_metadata"):
        return None  # its type is only known once it is read back
    kind = lt.WhichOneof("type")
    if kind == "union_type":
        if lit.HasField("scalar") and lit.scalar.HasField("union"):
            lit = lit.scalar.union.value
        if any(literal_mismatch(lit, v) is None for v in lt.union_type.variants):
            return None
        return f"matches no variant of {type_text(lt)}"
    if kind == "collection_type":
        if not lit.HasField("collection"):
            return f"expected {type_text(lt)}, got {describe(lit, 40)}"
        for i, item in enumerate(lit.collection.literals):
            why = literal_mismatch(item, lt.collection_type)
            if why:
                return f"[{i}]: {why}"
        return None
    if kind == "map_value_type":
        if not lit.HasField("map"):
            return f"expected {type_text(lt)}, got {describe(lit, 40)}"
        for key, item in lit.map.literals.items():
            why = literal_mismatch(item, lt.map_value_type)
            if why:
                return f"[{key!r}]: {why}"
        return None
    scalar = lit.scalar if lit.HasField("scalar") else None
    which = scalar.WhichOneof("value") if scalar is not None else lit.WhichOneof("value")
    expected = {"blob": "blob", "structured_dataset_type": "structured_dataset", "enum_type": "primitive"}.get(kind or "")
    if kind == "simple":
        if lt.simple == SimpleType.NONE:
            expected = "none_type"
        elif lt.simple == SimpleType.STRUCT:
            ok = which in ("generic", "binary") or lit.HasField("map")
            return None if ok else f"expected {type_text(lt)}, got {describe(lit, 40)}"
        elif lt.simple == SimpleType.BINARY:
            expected = "binary"
        else:
            expected = "primitive"
            field = scalar.primitive.WhichOneof("value") if scalar is not None and which == "primitive" else None
            wanted = {SimpleType.INTEGER: ("integer",), SimpleType.FLOAT: ("float_value", "integer"),
                      SimpleType.STRING: ("string_value",), SimpleType.BOOLEAN: ("boolean",),
                      SimpleType.DATETIME: ("datetime",), SimpleType.DURATION: ("duration",)}.get(lt.simple, ())
            if field not in wanted:
                return f"expected {type_text(lt)}, got {describe(lit, 40)}"
    if expected is not None and which != expected:
        return f"expected {type_text(lt)}, got {describe(lit, 40)}"
    if kind == "blob" and scalar is not None:
        if scalar.blob.metadata.type.dimensionality != lt.blob.dimensionality:
            return f"expected {type_text(lt)}, got {describe(lit, 40)}"
    return None


def local_blob_paths(literal_map: LiteralMap) -> LiteralMap:
    """A copy whose ``file://`` blob and data-frame URIs are plain paths: how flytekit names local files
    (it reads a ``file://`` URI as a path that doesn't exist)."""
    out = LiteralMap()
    out.CopyFrom(literal_map)

    def strip(lit: Literal) -> None:
        kind = lit.WhichOneof("value")
        if kind == "collection":
            for item in lit.collection.literals:
                strip(item)
        elif kind == "map":
            for item in lit.map.literals.values():
                strip(item)
        elif kind == "scalar":
            which = lit.scalar.WhichOneof("value")
            if which == "blob" and lit.scalar.blob.uri.startswith("file://"):
                lit.scalar.blob.uri = lit.scalar.blob.uri[len("file://"):]
            elif which == "structured_dataset" and lit.scalar.structured_dataset.uri.startswith("file://"):
                lit.scalar.structured_dataset.uri = lit.scalar.structured_dataset.uri[len("file://"):]
            elif which == "union":
                strip(lit.scalar.union.value)

    for lit in out.literals.values():
        strip(lit)
    return out
