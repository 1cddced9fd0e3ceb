"""list[T], dict[str, T], Optional / Union (tagged union literals) and Enum."""

from __future__ import annotations

import enum
import operator
import types
import typing
from typing import Any

from flyteidl.core import literals_pb2, types_pb2

from ferry.errors import TypeMismatchError, TypeTransformerError
from ferry.literals import Literal, LiteralType
from ferry.types import fastlists
from ferry.types.engine import Transformer, a, expect_scalar, literal_kind, type_name, value_type_name
from ferry.types.primitives import PrimitiveTransformer


def _args(python_type: Any, count: int, example: str) -> tuple[Any, ...]:
    args = typing.get_args(python_type)
    if len(args) != count:
        raise TypeTransformerError(
            f"{type_name(python_type)} needs its item type{'s' if count > 1 else ''}: write {example}."
        )
    return args


class ListTransformer(Transformer):
    """``list[T]`` as a LiteralCollection, with a fast path for lists of primitives."""

    name = "list"

    def matches(self, python_type: Any) -> bool:
        return python_type is list or typing.get_origin(python_type) is list

    def literal_type(self, python_type: Any, engine: Any) -> LiteralType:
        (item,) = _args(python_type, 1, "list[int]")
        return LiteralType(collection_type=engine.literal_type(item))

    def to_literal(self, value: Any, python_type: Any, engine: Any, ctx: Any, path: str) -> Literal:
        if not isinstance(value, (list, tuple)):
            raise TypeMismatchError(f"{path}: expected {type_name(python_type)}, got {value_type_name(value)}.")
        (item,) = _args(python_type, 1, "list[int]")
        lit = Literal()
        collection = lit.collection
        collection.SetInParent()  # an empty list is still a collection
        prim = engine.transformer_for(item)
        if isinstance(prim, PrimitiveTransformer) and list(map(type, value)).count(prim.python_type) == len(value):
            if fastlists.available(prim.field, len(value)) and (encoded := _encoded(prim.field, value)) is not None:
                collection.MergeFromString(encoded)
            else:  # an int beyond int64: protobuf says so here
                _fill_primitives(collection, prim.field, value)
            return lit
        collection.literals.extend(
            engine.to_literal(v, item, ctx, f"{path}[{i}]") for i, v in enumerate(value)
        )
        return lit

    def from_serialized(self, data: bytes, python_type: Any, engine: Any) -> list[Any] | None:
        """The values of a serialized Literal holding a large list of numbers (as ``serialized_list`` writes
        it), decoded straight from the bytes; None when it is anything else."""
        (item,) = _args(python_type, 1, "list[int]")
        prim = engine.transformer_for(item)
        if not isinstance(prim, PrimitiveTransformer) or not data.startswith(_LITERAL_COLLECTION) \
                or not fastlists.available(prim.field, fastlists.MIN_SIZE):
            return None
        length, start = 0, 1
        for shift in range(0, 64, 7):  # the collection's length, a varint
            if start >= len(data):
                return None
            byte = data[start]
            length |= (byte & 0x7F) << shift
            start += 1
            if byte < 0x80:
                break
        if start + length != len(data):  # more fields than the collection: the message's own parser decides
            return None
        return fastlists.decode(prim.field, data[start:], None)

    def to_python(self, literal: Literal, python_type: Any, engine: Any, ctx: Any, path: str) -> Any:
        if not literal.HasField("collection"):
            raise TypeMismatchError(f"{path}: expected a collection literal for {type_name(python_type)}, got {literal_kind(literal)}.")
        (item,) = _args(python_type, 1, "list[int]")
        items = literal.collection.literals
        prim = engine.transformer_for(item)
        if isinstance(prim, PrimitiveTransformer) and fastlists.available(prim.field, len(items)):
            values = fastlists.decode(prim.field, literal.collection.SerializeToString(), len(items))
            if values is not None:
                return values
        if isinstance(prim, PrimitiveTransformer) and items and _all_primitive(items, prim.field):
            return list(map(operator.attrgetter(f"scalar.primitive.{prim.field}"), items))
        return [engine.to_python(x, item, ctx, f"{path}[{i}]") for i, x in enumerate(items)]


def serialized_list(value: Any, python_type: Any, engine: Any) -> bytes | None:
    """A large ``list[int|float|bool]`` as a serialized Literal, encoded straight from the values (as
    ``to_literal`` and then serializing would give, without building a message per element); None for any
    other value or type."""
    if typing.get_origin(python_type) is not list or not isinstance(value, list) \
            or not isinstance(engine.transformer_for(python_type), ListTransformer):  # a transformer of the user's
        return None
    (item,) = _args(python_type, 1, "list[int]")
    prim = engine.transformer_for(item)
    if not isinstance(prim, PrimitiveTransformer) or not fastlists.available(prim.field, len(value)) \
            or list(map(type, value)).count(prim.python_type) != len(value):
        return None
    collection = _encoded(prim.field, value)
    return None if collection is None else _LITERAL_COLLECTION + _varint(len(collection)) + collection


def _encoded(field: str, values: Any) -> bytes | None:
    """A LiteralCollection's wire bytes for primitives all of one type, encoded with numpy (``fastlists.available``
    said it pays); None when an int is beyond int64 (the per-message path then says so)."""
    try:
        return fastlists.encode(field, values)
    except OverflowError:
        return None


_LITERAL_COLLECTION = b"\x12"  # Literal.collection: field 2, length-delimited


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _fill_primitives(collection: literals_pb2.LiteralCollection, field: str, values: Any) -> None:
    add = collection.literals.add
    if field == "integer":
        for v in values:
            add().scalar.primitive.integer = v
    elif field == "float_value":
        for v in values:
            add().scalar.primitive.float_value = v
    elif field == "string_value":
        for v in values:
            add().scalar.primitive.string_value = v
    else:
        for v in values:
            add().scalar.primitive.boolean = v


def _all_primitive(items: Any, field: str) -> bool:
    """Whether every item holds ``field``; otherwise the per-item path reports the odd one out."""
    return all(item.scalar.primitive.WhichOneof("value") == field for item in items)


class DictTransformer(Transformer):
    """``dict[str, T]`` as a LiteralMap."""

    name = "dict"

    def matches(self, python_type: Any) -> bool:
        return python_type is dict or typing.get_origin(python_type) is dict

    def literal_type(self, python_type: Any, engine: Any) -> LiteralType:
        key, item = _args(python_type, 2, "dict[str, int]")
        if key is not str:
            raise TypeTransformerError(f"{type_name(python_type)}: only str keys are supported; use dict[str, ...].")
        return LiteralType(map_value_type=engine.literal_type(item))

    def to_literal(self, value: Any, python_type: Any, engine: Any, ctx: Any, path: str) -> Literal:
        if not isinstance(value, dict):
            raise TypeMismatchError(f"{path}: expected {type_name(python_type)}, got {value_type_name(value)}.")
        _, item = _args(python_type, 2, "dict[str, int]")
        lit = Literal()
        lit.map.SetInParent()  # an empty dict is still a map
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeMismatchError(f"{path}: keys must be str, got {value_type_name(k)} ({k!r}).")
            lit.map.literals[k].CopyFrom(engine.to_literal(v, item, ctx, f"{path}[{k!r}]"))
        return lit

    def to_python(self, literal: Literal, python_type: Any, engine: Any, ctx: Any, path: str) -> Any:
        if not literal.HasField("map"):
            raise TypeMismatchError(f"{path}: expected a map literal for {type_name(python_type)}, got {literal_kind(literal)}.")
        _, item = _args(python_type, 2, "dict[str, int]")
        return {k: engine.to_python(v, item, ctx, f"{path}[{k!r}]") for k, v in literal.map.literals.items()}


def _is_union(python_type: Any) -> bool:
    origin = typing.get_origin(python_type)
    return origin is typing.Union or origin is types.UnionType


class UnionTransformer(Transformer):
    """``Optional[T]`` and ``Union[A, B]`` as tagged union literals: the tag names the variant."""

    name = "union"

    def matches(self, python_type: Any) -> bool:
        return _is_union(python_type)

    def _variants(self, python_type: Any, engine: Any) -> list[tuple[Any, LiteralType]]:
        out = []
        for arg in typing.get_args(python_type):
            lt = LiteralType()
            lt.CopyFrom(engine.literal_type(arg))
            lt.structure.tag = type_name(arg)
            out.append((arg, lt))
        return out

    def literal_type(self, python_type: Any, engine: Any) -> LiteralType:
        return LiteralType(union_type=types_pb2.UnionType(variants=[lt for _, lt in self._variants(python_type, engine)]))

    def to_literal(self, value: Any, python_type: Any, engine: Any, ctx: Any, path: str) -> Literal:
        variants = self._variants(python_type, engine)
        # Prefer the variant whose class the value is exactly, then any that accepts it.
        ordered = sorted(variants, key=lambda v: 0 if (v[0] is type(value) or (v[0] is None and value is None)) else 1)
        errors = []
        for arg, lt in ordered:
            try:
                inner = engine.to_literal(value, arg, ctx, path)
            except TypeTransformerError as exc:
                errors.append(f"{type_name(arg)}: {exc}")
                continue
            return Literal(scalar=literals_pb2.Scalar(union=literals_pb2.Union(value=inner, type=lt)))
        raise TypeMismatchError(
            f"{path}: {a(value_type_name(value))} matches no variant of {type_name(python_type)}:\n  "
            + "\n  ".join(errors)
        )

    def to_python(self, literal: Literal, python_type: Any, engine: Any, ctx: Any, path: str) -> Any:
        variants = self._variants(python_type, engine)
        if literal.HasField("scalar") and literal.scalar.HasField("union"):
            union = literal.scalar.union
            for arg, lt in variants:
                if lt.structure.tag == union.type.structure.tag:
                    return engine.to_python(union.value, arg, ctx, path)
            raise TypeMismatchError(
                f"{path}: union variant {union.type.structure.tag!r} is not one of "
                f"{[lt.structure.tag for _, lt in variants]} declared by {type_name(python_type)}."
            )
        # An untagged literal (e.g. written by a task declaring T, read as Optional[T]).
        for arg, _ in variants:
            try:
                return engine.to_python(literal, arg, ctx, path)
            except TypeTransformerError:
                continue
        raise TypeMismatchError(f"{path}: {literal_kind(literal)} matches no variant of {type_name(python_type)}.")


class EnumTransformer(Transformer):
    """``Enum`` subclasses as a string literal of the member's value (or name for non-str values)."""

    name = "enum"

    def matches(self, python_type: Any) -> bool:
        return isinstance(python_type, type) and issubclass(python_type, enum.Enum)

    @staticmethod
    def _key(member: enum.Enum) -> str:
        return member.value if isinstance(member.value, str) else member.name

    def literal_type(self, python_type: Any, engine: Any) -> LiteralType:
        return LiteralType(enum_type=types_pb2.EnumType(values=[self._key(m) for m in python_type]))

    def to_literal(self, value: Any, python_type: Any, engine: Any, ctx: Any, path: str) -> Literal:
        if not isinstance(value, python_type):
            try:
                value = python_type(value)
            except ValueError:
                raise TypeMismatchError(
                    f"{path}: {value!r} is not a member of {type_name(python_type)}; "
                    f"expected one of {[self._key(m) for m in python_type]}."
                ) from None
        lit = Literal()
        lit.scalar.primitive.string_value = self._key(value)
        return lit

    def to_python(self, literal: Literal, python_type: Any, engine: Any, ctx: Any, path: str) -> Any:
        key = expect_scalar(literal, "primitive", python_type, path).string_value
        for member in python_type:
            if self._key(member) == key:
                return member
        raise TypeMismatchError(f"{path}: {key!r} is not a member of {type_name(python_type)}.")
