"""Dataclasses and pydantic models as typed structs, in the encoding flytekit uses: MessagePack.

The LiteralType is ``STRUCT`` with ``structure.dataclass_type`` holding each field's own
LiteralType, so field types survive into the spec. A value is a ``Binary`` literal
tagged ``msgpack`` holding the fields as plain data, as flytekit 1.16 writes it, so a
dataclass passes between ferry and Flyte tasks both ways: ints keep 64-bit precision,
datetimes are ISO 8601 text, timedeltas seconds, enums their values, nested models
maps; a ``File`` or ``Directory`` is offloaded like any other and travels as
``{"path": URI}``, a data frame as ``{"uri": URI, "file_format": "parquet"}``.

Reading also takes ferry's earlier encoding (a LiteralMap of field literals) and
flytekit's older one (a ``google.protobuf.Struct``), so stored values stay readable.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import functools
import hashlib
import types
import typing
from typing import Any

from ferry.errors import TypeMismatchError
from ferry.literals import Literal, LiteralType, SimpleType
from ferry.types.engine import Transformer, a, literal_kind, strip_annotated, type_name, value_type_name

MSGPACK = "msgpack"  # the Binary tag flytekit gives MessagePack values


def _is_pydantic_model(python_type: Any) -> bool:
    # Checked without importing pydantic: a BaseModel subclass has pydantic in its MRO's modules.
    return isinstance(python_type, type) and any(
        base.__module__.startswith("pydantic") and base.__name__ == "BaseModel" for base in python_type.__mro__
    )


def is_struct(python_type: Any) -> bool:
    return (isinstance(python_type, type) and dataclasses.is_dataclass(python_type)) or _is_pydantic_model(python_type)


@functools.lru_cache(maxsize=512)
def fields_of(python_type: Any) -> dict[str, Any]:
    """Field name -> declared type (cached: resolving hints is slow)."""
    if _is_pydantic_model(python_type):
        return {name: f.annotation for name, f in python_type.model_fields.items()}
    hints = typing.get_type_hints(python_type, include_extras=True)
    return {f.name: hints[f.name] for f in dataclasses.fields(python_type)}


def _union_args(python_type: Any) -> tuple[Any, ...] | None:
    origin = typing.get_origin(python_type)
    return typing.get_args(python_type) if origin in (typing.Union, types.UnionType) else None


INT64 = (-(1 << 63), 1 << 63)
_NATIVE = (int, float, str, bool)  # stored as themselves in MessagePack, exactly as the type engine would


class _Shape(typing.NamedTuple):
    """What the codec needs to know of a declared type, worked out once per type (a list of 100,000
    structs would otherwise introspect each field's type 100,000 times)."""

    base: Any  # Annotated stripped
    kind: str  # union, struct, list, dict, enum, timedelta, datetime, date, native, other
    args: tuple[Any, ...] = ()  # union variants, list item, dict value


_shapes: dict[Any, _Shape] = {}


def _shape(python_type: Any) -> _Shape:
    try:
        return _shapes[python_type]
    except KeyError:
        pass
    except TypeError:  # an unhashable type annotation: worked out every time
        return _work_out_shape(python_type)
    shape = _shapes[python_type] = _work_out_shape(python_type)
    return shape


def _work_out_shape(python_type: Any) -> _Shape:
    base, _ = strip_annotated(python_type)
    variants = _union_args(base)
    if variants is not None:
        return _Shape(base, "union", variants)
    if is_struct(base):
        return _Shape(base, "struct")
    origin = typing.get_origin(base)
    if origin is list:
        return _Shape(base, "list", typing.get_args(base))
    if origin is dict:
        return _Shape(base, "dict", typing.get_args(base)[1:])
    if isinstance(base, type) and issubclass(base, enum.Enum):
        return _Shape(base, "enum")
    if base is dt.timedelta:
        return _Shape(base, "timedelta")
    if base is dt.datetime:
        return _Shape(base, "datetime")
    if base is dt.date:
        return _Shape(base, "date")
    if base in _NATIVE:
        return _Shape(base, "native")
    return _Shape(base, "other")


class _Codec:
    """Converts one value to plain MessagePack data and back, by its declared type; offloaded values go
    through the type engine (so they are uploaded, hashed and read like any other)."""

    def __init__(self, engine: Any, ctx: Any) -> None:
        self.engine = engine
        self.ctx = ctx
        self.hashes: list[str] = []  # content hashes of the values offloaded (for memoization keys)
        self.unhashed = False

    def _offloaded(self, python_type: Any) -> str | None:
        kind = self.engine.literal_type(python_type).WhichOneof("type")
        return kind if kind in ("blob", "structured_dataset_type") else None

    def encode(self, value: Any, python_type: Any, path: str) -> Any:
        shape = _shape(python_type)
        base, kind = shape.base, shape.kind
        if value is None:
            return None
        if kind == "native" and type(value) is base and (base is not int or INT64[0] <= value < INT64[1]):
            return value  # what the type engine's primitive would hold, without building it
        if kind == "union":
            errors = []
            for arg in sorted(shape.args, key=lambda a: 0 if a is type(value) else 1):
                if arg is type(None):
                    continue
                try:
                    return self.encode(value, arg, path)
                except (TypeMismatchError, TypeError, ValueError) as exc:
                    errors.append(str(exc))
            raise TypeMismatchError(f"{path}: {a(value_type_name(value))} matches no variant of {type_name(base)}.")
        if kind == "struct":
            if not isinstance(value, base):
                raise TypeMismatchError(f"{path}: expected {type_name(base)}, got {value_type_name(value)}. "
                                        f"Build a {base.__name__}(...) instance.")
            return {name: self.encode(getattr(value, name), t, f"{path}.{name}") for name, t in fields_of(base).items()}
        if kind == "list":
            (item,) = shape.args
            if not isinstance(value, (list, tuple)):
                raise TypeMismatchError(f"{path}: expected {type_name(base)}, got {value_type_name(value)}.")
            return [self.encode(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
        if kind == "dict":
            (item,) = shape.args
            if not isinstance(value, dict):
                raise TypeMismatchError(f"{path}: expected {type_name(base)}, got {value_type_name(value)}.")
            return {k: self.encode(v, item, f"{path}[{k!r}]") for k, v in value.items()}
        if kind == "enum":
            return (value if isinstance(value, base) else base(value)).value
        if kind == "timedelta":
            return value.total_seconds()
        if kind in ("datetime", "date"):
            return value.isoformat()
        offloaded = self._offloaded(base)
        if offloaded is not None:
            lit = self.engine.to_literal(value, python_type, self.ctx, path)
            if lit.hash:
                self.hashes.append(lit.hash)
            else:
                self.unhashed = True
            if offloaded == "blob":
                return {"path": _plain_path(lit.scalar.blob.uri)}
            sd = lit.scalar.structured_dataset
            return {"uri": _plain_path(sd.uri), "file_format": sd.metadata.structured_dataset_type.format or "parquet"}
        # primitives: checked by the type engine's own rules (no bool for int, ...), stored natively
        lit = self.engine.to_literal(value, python_type, self.ctx, path)
        prim = lit.scalar.primitive if lit.scalar.HasField("primitive") else None
        if prim is not None and prim.WhichOneof("value"):
            return getattr(prim, prim.WhichOneof("value"))
        if lit.scalar.HasField("binary"):
            return lit.scalar.binary.value
        return None

    def decode(self, data: Any, python_type: Any, path: str) -> Any:
        shape = _shape(python_type)
        base, kind = shape.base, shape.kind
        if kind == "native" and type(data) is base:
            return data
        if kind == "union":
            if data is None and type(None) in shape.args:
                return None
            for arg in shape.args:
                if arg is type(None):
                    continue
                try:
                    return self.decode(data, arg, path)
                except (TypeMismatchError, TypeError, ValueError, KeyError):
                    continue
            raise TypeMismatchError(f"{path}: {data!r} matches no variant of {type_name(base)}.")
        if data is None:
            if base is type(None):
                return None
            raise TypeMismatchError(f"{path}: a value of {type_name(base)} is missing (null).")
        if kind == "struct":
            if not isinstance(data, dict):
                raise TypeMismatchError(f"{path}: expected the fields of {type_name(base)}, got {type(data).__name__}.")
            declared = fields_of(base)
            values = {k: self.decode(data[k], t, f"{path}.{k}") for k, t in declared.items() if k in data}
            try:
                return base(**values)
            except (TypeError, ValueError) as exc:
                missing = sorted(set(declared) - set(data))
                raise TypeMismatchError(f"{path}: cannot build {type_name(base)} from the stored fields "
                                        f"(missing: {missing or 'none'}): {exc}") from exc
        if kind == "list":
            (item,) = shape.args
            return [self.decode(v, item, f"{path}[{i}]") for i, v in enumerate(_expect(data, list, base, path))]
        if kind == "dict":
            (item,) = shape.args
            return {k: self.decode(v, item, f"{path}[{k!r}]") for k, v in _expect(data, dict, base, path).items()}
        if kind == "enum":
            return base(data)
        if kind == "datetime":
            return dt.datetime.fromisoformat(_expect(data, str, base, path))
        if kind == "date":
            return dt.date.fromisoformat(_expect(data, str, base, path))
        if kind == "timedelta":
            return dt.timedelta(seconds=float(data))
        if base is float and type(data) in (int, float):
            return float(data)
        if base in (int, str, bool, bytes):
            if type(data) is not base:
                raise TypeMismatchError(f"{path}: expected {type_name(base)}, got {type(data).__name__} ({data!r}).")
            return data
        if self._offloaded(base) is None:
            raise TypeMismatchError(f"{path}: {type_name(base)} can't be read from {type(data).__name__}.")
        return self.engine.to_python(_reference(data, self.engine.literal_type(base), path), python_type, self.ctx, path)


def _expect(data: Any, kind: type, python_type: Any, path: str) -> Any:
    if not isinstance(data, kind):
        raise TypeMismatchError(f"{path}: expected {type_name(python_type)}, got {type(data).__name__} ({data!r}).")
    return data


def _plain_path(uri: str) -> str:
    """Local stores' URIs as plain paths inside MessagePack: flytekit reads only those as local files."""
    return uri[len("file://"):] if uri.startswith("file://") else uri


def _reference(data: Any, lt: LiteralType, path: str) -> Literal:
    """A blob or data-frame literal from its MessagePack form (``{"path": ...}``, ``{"uri": ...}``, or a string)."""
    if isinstance(data, str):
        uri = data
    elif isinstance(data, dict) and isinstance(data.get("path") or data.get("uri"), str):
        uri = data.get("path") or data["uri"]
    else:
        raise TypeMismatchError(f"{path}: expected a stored object (a path or URI), got {data!r}.")
    if "://" not in uri:
        uri = "file://" + uri
    lit = Literal()
    if lt.HasField("blob"):
        lit.scalar.blob.uri = uri
        lit.scalar.blob.metadata.type.CopyFrom(lt.blob)
    else:
        lit.scalar.structured_dataset.uri = uri
        lit.scalar.structured_dataset.metadata.structured_dataset_type.CopyFrom(lt.structured_dataset_type)
    return lit


class StructTransformer(Transformer):
    name = "struct"

    def matches(self, python_type: Any) -> bool:
        return is_struct(python_type)

    @staticmethod
    def fields(python_type: Any) -> dict[str, Any]:
        return fields_of(python_type)

    def literal_type(self, python_type: Any, engine: Any) -> LiteralType:
        lt = LiteralType(simple=SimpleType.STRUCT)
        lt.structure.tag = type_name(python_type)
        for name, field_type in fields_of(python_type).items():
            lt.structure.dataclass_type[name].CopyFrom(engine.literal_type(field_type))
        return lt

    def to_literal(self, value: Any, python_type: Any, engine: Any, ctx: Any, path: str) -> Literal:
        import msgpack

        codec = _Codec(engine, ctx)
        data = msgpack.packb(codec.encode(value, python_type, path), use_bin_type=True)
        lit = Literal()
        lit.scalar.binary.value = data
        lit.scalar.binary.tag = MSGPACK
        if codec.hashes and not codec.unhashed:  # the same content under other URIs is the same value
            digest = hashlib.sha256(data)
            for h in codec.hashes:
                digest.update(h.encode())
            lit.hash = "sha256:" + digest.hexdigest()
        return lit

    def to_python(self, literal: Literal, python_type: Any, engine: Any, ctx: Any, path: str) -> Any:
        codec = _Codec(engine, ctx)
        scalar = literal.scalar if literal.HasField("scalar") else None
        if scalar is not None and scalar.HasField("binary"):
            import msgpack

            if scalar.binary.tag and scalar.binary.tag != MSGPACK:
                raise TypeMismatchError(f"{path}: a struct stored as {scalar.binary.tag!r} can't be read; "
                                        "ferry reads MessagePack structs.")
            return codec.decode(msgpack.unpackb(scalar.binary.value, raw=False, strict_map_key=False),
                                python_type, path)
        if scalar is not None and scalar.HasField("generic"):  # flytekit's older JSON structs
            from google.protobuf.json_format import MessageToDict

            return codec.decode(MessageToDict(scalar.generic), python_type, path)
        if literal.HasField("map"):  # ferry's earlier encoding: a literal per field
            declared = fields_of(python_type)
            stored = literal.map.literals
            values = {k: engine.to_python(stored[k], t, ctx, f"{path}.{k}") for k, t in declared.items() if k in stored}
            try:
                return python_type(**values)
            except (TypeError, ValueError) as exc:
                raise TypeMismatchError(f"{path}: cannot build {type_name(python_type)} from the stored fields: {exc}") from exc
        raise TypeMismatchError(f"{path}: expected a struct (MessagePack) for {type_name(python_type)}, "
                                f"got {literal_kind(literal)}.")
