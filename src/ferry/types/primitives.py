"""int, float, str, bool, bytes, None, datetime, date, timedelta <-> flyteidl primitives."""

from __future__ import annotations

import datetime as dt
import numbers
from typing import Any

from flyteidl.core import literals_pb2
from google.protobuf import duration_pb2, timestamp_pb2

from ferry.errors import TypeMismatchError
from ferry.literals import Literal, LiteralType, SimpleType, none_literal
from ferry.types.engine import Transformer, a, expect_scalar, type_name, value_type_name


def _mismatch(path: str, python_type: Any, value: Any) -> TypeMismatchError:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return TypeMismatchError(
        f"{path}: expected {type_name(python_type)}, got {value_type_name(value)} ({shown}). "
        f"Pass {a(type_name(python_type))} or change the declared type."
    )


class PrimitiveTransformer(Transformer):
    """One Python scalar type stored in one field of flyteidl's ``Primitive``."""

    def __init__(self, python_type: type, simple: int, field: str, accepts: tuple[type, ...]) -> None:
        self.name = python_type.__name__
        self.python_types = (python_type,)
        self.python_type = python_type
        self.simple = simple
        self.field = field
        self.accepts = accepts

    def literal_type(self, python_type: Any, engine: Any) -> LiteralType:
        return LiteralType(simple=self.simple)  # type: ignore[arg-type]  # an enum number, as protobuf takes

    def check(self, value: Any, python_type: Any, path: str) -> Any:
        if type(value) is self.python_type:
            return value
        if isinstance(value, self.accepts) and not (self.python_type is not bool and isinstance(value, bool) and bool not in self.accepts):
            return self.python_type(value)
        raise _mismatch(path, python_type, value)

    def to_literal(self, value: Any, python_type: Any, engine: Any, ctx: Any, path: str) -> Literal:
        lit = Literal()
        checked = self.check(value, python_type, path)
        try:
            setattr(lit.scalar.primitive, self.field, checked)
        except ValueError:
            if self.field != "integer":
                raise
            raise TypeMismatchError(
                f"{path}: {checked} is out of range for int, which travels as a 64-bit integer ({-2**63} to "
                f"{2**63 - 1}). Declare str (or float, if a rounded value will do) for larger numbers."
            ) from None
        return lit

    def to_python(self, literal: Literal, python_type: Any, engine: Any, ctx: Any, path: str) -> Any:
        prim = expect_scalar(literal, "primitive", python_type, path)
        kind = prim.WhichOneof("value")
        if kind == self.field:
            return getattr(prim, self.field)
        if self.python_type is float and kind == "integer":  # widening is safe
            return float(prim.integer)
        raise TypeMismatchError(
            f"{path}: expected a literal of type {type_name(python_type)}, got a {kind} primitive. "
            "The stored value was written with a different type than the task declares."
        )


class DatetimeTransformer(Transformer):
    name = "datetime"
    python_types = (dt.datetime,)

    def literal_type(self, python_type: Any, engine: Any) -> LiteralType:
        return LiteralType(simple=SimpleType.DATETIME)

    def to_literal(self, value: Any, python_type: Any, engine: Any, ctx: Any, path: str) -> Literal:
        if not isinstance(value, dt.datetime):
            raise _mismatch(path, python_type, value)
        stamp = timestamp_pb2.Timestamp()
        # naive datetimes are taken as UTC, so that a round trip returns the same wall time
        stamp.FromDatetime(value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc))
        return Literal(scalar=literals_pb2.Scalar(primitive=literals_pb2.Primitive(datetime=stamp)))

    def to_python(self, literal: Literal, python_type: Any, engine: Any, ctx: Any, path: str) -> Any:
        prim = expect_scalar(literal, "primitive", python_type, path)
        return prim.datetime.ToDatetime()


class DateTransformer(Transformer):
    name = "date"
    python_types = (dt.date,)

    def literal_type(self, python_type: Any, engine: Any) -> LiteralType:
        return LiteralType(simple=SimpleType.DATETIME)

    def to_literal(self, value: Any, python_type: Any, engine: Any, ctx: Any, path: str) -> Literal:
        if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
            raise _mismatch(path, python_type, value)
        stamp = timestamp_pb2.Timestamp()
        stamp.FromDatetime(dt.datetime(value.year, value.month, value.day, tzinfo=dt.timezone.utc))
        return Literal(scalar=literals_pb2.Scalar(primitive=literals_pb2.Primitive(datetime=stamp)))

    def to_python(self, literal: Literal, python_type: Any, engine: Any, ctx: Any, path: str) -> Any:
        return expect_scalar(literal, "primitive", python_type, path).datetime.ToDatetime().date()


class TimedeltaTransformer(Transformer):
    name = "timedelta"
    python_types = (dt.timedelta,)

    def literal_type(self, python_type: Any, engine: Any) -> LiteralType:
        return LiteralType(simple=SimpleType.DURATION)

    def to_literal(self, value: Any, python_type: Any, engine: Any, ctx: Any, path: str) -> Literal:
        if not isinstance(value, dt.timedelta):
            raise _mismatch(path, python_type, value)
        duration = duration_pb2.Duration()
        duration.FromTimedelta(value)
        return Literal(scalar=literals_pb2.Scalar(primitive=literals_pb2.Primitive(duration=duration)))

    def to_python(self, literal: Literal, python_type: Any, engine: Any, ctx: Any, path: str) -> Any:
        return expect_scalar(literal, "primitive", python_type, path).duration.ToTimedelta()


class BytesTransformer(Transformer):
    name = "bytes"
    python_types = (bytes,)

    def literal_type(self, python_type: Any, engine: Any) -> LiteralType:
        return LiteralType(simple=SimpleType.BINARY)

    def to_literal(self, value: Any, python_type: Any, engine: Any, ctx: Any, path: str) -> Literal:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise _mismatch(path, python_type, value)
        return Literal(scalar=literals_pb2.Scalar(binary=literals_pb2.Binary(value=bytes(value))))

    def to_python(self, literal: Literal, python_type: Any, engine: Any, ctx: Any, path: str) -> Any:
        return expect_scalar(literal, "binary", python_type, path).value


class NoneTransformer(Transformer):
    name = "none"
    python_types = (type(None),)

    def matches(self, python_type: Any) -> bool:
        return python_type is None

    def literal_type(self, python_type: Any, engine: Any) -> LiteralType:
        return LiteralType(simple=SimpleType.NONE)

    def to_literal(self, value: Any, python_type: Any, engine: Any, ctx: Any, path: str) -> Literal:
        if value is not None:
            raise _mismatch(path, None, value)
        return none_literal()

    def to_python(self, literal: Literal, python_type: Any, engine: Any, ctx: Any, path: str) -> Any:
        expect_scalar(literal, "none_type", None, path)
        return None


def primitive_transformers() -> list[Transformer]:
    return [
        PrimitiveTransformer(int, SimpleType.INTEGER, "integer", (numbers.Integral,)),
        PrimitiveTransformer(float, SimpleType.FLOAT, "float_value", (numbers.Real,)),
        PrimitiveTransformer(str, SimpleType.STRING, "string_value", ()),
        PrimitiveTransformer(bool, SimpleType.BOOLEAN, "boolean", ()),
        DatetimeTransformer(),
        DateTransformer(),
        TimedeltaTransformer(),
        BytesTransformer(),
        NoneTransformer(),
    ]
