"""Round trips through every transformer, and the errors for values that don't fit."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from typing import Any, Optional, Union

import pydantic
import pytest
from flyteidl.core import literals_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from ferry.config import active_settings
from ferry.errors import TypeMismatchError, UnsupportedTypeError
from ferry.literals import Literal, SimpleType, serialize
from ferry.types import (
    PickledTypeWarning,
    TransferContext,
    Transformer,
    TypeEngine,
    default_engine,
    register,
)


def ctx() -> TransferContext:
    s = active_settings()
    return TransferContext(s, raw_prefix=s.raw_output_prefix)


def roundtrip(value: Any, python_type: Any) -> Any:
    """value -> literal -> bytes -> literal -> value, as between two processes."""
    engine = default_engine()
    c = ctx()
    lit = engine.to_literal(value, python_type, c)
    again = Literal()
    again.ParseFromString(serialize(lit))
    return engine.to_python(again, python_type, c)


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.Enum):
    LOW = 1
    HIGH = 2


@dataclasses.dataclass
class Inner:
    name: str
    weights: list[float]


@dataclasses.dataclass
class Outer:
    id: int
    inner: Inner
    tags: dict[str, int]
    note: Optional[str] = None


class Model(pydantic.BaseModel):
    id: int
    inner: Inner
    labels: list[str]


ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
floats = st.floats(allow_nan=False)
texts = st.text()
datetimes = st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30))


@pytest.mark.parametrize(
    "python_type, strategy",
    [
        (int, ints), (float, floats), (str, texts), (bool, st.booleans()), (bytes, st.binary()),
        (dt.datetime, datetimes), (dt.date, st.dates()),
        (dt.timedelta, st.timedeltas(min_value=dt.timedelta(days=-10**6), max_value=dt.timedelta(days=10**6))),
        (list[int], st.lists(ints)),
        (list[list[str]], st.lists(st.lists(texts, max_size=4), max_size=4)),
        (dict[str, list[float]], st.dictionaries(texts, st.lists(floats, max_size=3), max_size=4)),
        (dict[str, dict[str, int]], st.dictionaries(texts, st.dictionaries(texts, ints, max_size=3), max_size=3)),
        (Optional[int], st.none() | ints),
        (Union[int, str], ints | texts),
        (list[Optional[str]], st.lists(st.none() | texts, max_size=5)),
        (Color, st.sampled_from(Color)),
        (Level, st.sampled_from(Level)),
        (Outer, st.builds(Outer, id=ints, inner=st.builds(Inner, name=texts, weights=st.lists(floats, max_size=3)),
                          tags=st.dictionaries(texts, ints, max_size=3), note=st.none() | texts)),
        (list[Inner], st.lists(st.builds(Inner, name=texts, weights=st.lists(floats, max_size=2)), max_size=4)),
    ],
    ids=lambda p: getattr(p, "__name__", None) or repr(p).replace("typing.", "") if not isinstance(p, st.SearchStrategy) else "",
)
def test_roundtrip(python_type: Any, strategy: st.SearchStrategy[Any]) -> None:
    @settings(max_examples=60, deadline=None)
    @given(strategy)
    def check(value: Any) -> None:
        assert roundtrip(value, python_type) == value

    check()


def test_pydantic_roundtrip_keeps_nested_types() -> None:
    value = Model(id=2**62 + 1, inner=Inner("a", [1.5]), labels=["x"])
    assert roundtrip(value, Model) == value


def test_none() -> None:
    assert roundtrip(None, type(None)) is None


def test_struct_literal_type_keeps_field_types() -> None:
    lt = default_engine().literal_type(Outer)
    fields = lt.structure.dataclass_type
    assert lt.simple == SimpleType.STRUCT
    assert fields["id"].simple == SimpleType.INTEGER
    assert fields["inner"].structure.dataclass_type["weights"].collection_type.simple == SimpleType.FLOAT
    assert fields["tags"].map_value_type.simple == SimpleType.INTEGER
    assert len(fields["note"].union_type.variants) == 2


@pytest.mark.parametrize(("value", "message"), [
    (Outer(2**63, Inner("a", []), {}), "out of range"),
    (Outer(True, Inner("a", []), {}), "expected int, got bool"),  # type: ignore[arg-type]
    (Outer(1, Inner("a", [1.0]), {"k": 2**64}), "out of range"),
    (Outer(1, Inner(5, []), {}), "value.inner.name"),  # type: ignore[arg-type]
])
def test_struct_fields_keep_the_type_engines_rules(value: Outer, message: str) -> None:
    # fields stored natively still get the primitive checks (range, no bool for int), and errors name the field
    with pytest.raises(TypeMismatchError, match=message):
        default_engine().to_literal(value, Outer, ctx())


def test_struct_float_field_takes_an_int_and_reads_back_a_float() -> None:
    back = roundtrip(Outer(1, Inner("a", [2]), {}), Outer)  # type: ignore[list-item]
    assert back.inner.weights == [2.0] and type(back.inner.weights[0]) is float


def test_union_literal_is_tagged() -> None:
    lit = default_engine().to_literal("x", Union[int, str], ctx())
    assert lit.scalar.union.type.structure.tag == "str"
    assert lit.scalar.union.value.scalar.primitive.string_value == "x"


def test_int_is_not_confused_with_bool_in_union() -> None:
    assert roundtrip(True, Union[int, bool]) is True
    assert roundtrip(1, Union[bool, int]) == 1 and roundtrip(1, Union[bool, int]) is not True


@pytest.mark.parametrize(
    "value, python_type, expected",
    [
        ("abc", int, "expected int, got str"),
        (1.5, int, "expected int, got float"),
        (True, int, "expected int, got bool"),
        ([1, "x"], list[int], "value[1]: expected int, got str"),
        ({"a": [1, None]}, dict[str, list[int]], "value['a'][1]: expected int"),
        (Inner("n", ["w"]), Inner, "value.weights[0]: expected float, got str"),
        (3.5, Union[int, str], "matches no variant"),
        ("purple", Color, "not a member of"),
        (5, list[int], "expected list[int], got int"),
    ],
)
def test_mismatch_names_the_path_and_both_types(value: Any, python_type: Any, expected: str) -> None:
    with pytest.raises(TypeMismatchError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        default_engine().to_literal(value, python_type, ctx())


def test_literal_of_wrong_type_is_a_clear_error() -> None:
    lit = default_engine().to_literal("text", str, ctx())
    with pytest.raises(TypeMismatchError, match="expected a literal of type int, got a string_value primitive"):
        default_engine().to_python(lit, int, ctx())


def test_int_widens_to_float_on_read() -> None:
    lit = default_engine().to_literal(3, int, ctx())
    assert default_engine().to_python(lit, float, ctx()) == 3.0


class Opaque:
    def __init__(self, x: int) -> None:
        self.x = x


def test_unknown_types_are_pickled_with_a_warning() -> None:
    engine = TypeEngine(default_engine()._predicates, fallback=default_engine()._fallback)
    with pytest.warns(PickledTypeWarning, match="test_types.Opaque; its values will be pickled"):
        lit = engine.to_literal(Opaque(7), Opaque, ctx())
    assert lit.scalar.blob.metadata.type.format == "PythonPickle"
    assert engine.to_python(lit, Opaque, ctx()).x == 7


def test_engine_without_fallback_refuses_unknown_types() -> None:
    with pytest.raises(UnsupportedTypeError, match="Unsupported type: .*Opaque. .*ferry.types.register"):
        TypeEngine().literal_type(Opaque)


class Point:
    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y


class PointTransformer(Transformer):
    name = "point"
    python_types = (Point,)

    def literal_type(self, python_type: Any, engine: Any) -> Any:
        return engine.literal_type(str)

    def to_literal(self, value: Any, python_type: Any, engine: Any, ctx: Any, path: str) -> Literal:
        return Literal(scalar=literals_pb2.Scalar(primitive=literals_pb2.Primitive(string_value=f"{value.x},{value.y}")))

    def to_python(self, literal: Literal, python_type: Any, engine: Any, ctx: Any, path: str) -> Any:
        x, y = literal.scalar.primitive.string_value.split(",")
        return Point(int(x), int(y))


def test_register_a_user_transformer() -> None:
    register(PointTransformer())
    out = roundtrip([Point(3, 4)], list[Point])
    assert (out[0].x, out[0].y) == (3, 4)


@pytest.mark.parametrize(
    "python_type, field, values",
    [
        (int, "integer", [0, -1, 1, 127, 128, 2**63 - 1, -(2**63), 300, -300] * 3000),
        (float, "float_value", [0.0, -0.0, 1.5, -2.25e300, float("inf"), 1e-300] * 4000),
        (bool, "boolean", [True, False, False] * 8000),
    ],
    ids=["int", "float", "bool"],
)
def test_large_primitive_lists_take_the_vectorized_path_exactly(python_type: Any, field: str, values: list[Any]) -> None:
    from ferry.types import fastlists
    from ferry.types.collections import _fill_primitives

    assert fastlists.available(field, len(values))
    fast = default_engine().to_literal(values, list[python_type], ctx())
    slow = Literal()
    slow.collection.SetInParent()
    _fill_primitives(slow.collection, field, values)
    assert serialize(fast) == serialize(slow)
    assert roundtrip(values, list[python_type]) == values


def test_vectorized_read_falls_back_on_a_foreign_element() -> None:
    values = list(range(30_000))
    lit = default_engine().to_literal(values, list[int], ctx())
    lit.collection.literals[12_345].scalar.primitive.string_value = "intruder"
    from ferry.types import fastlists

    assert fastlists.decode("integer", lit.collection.SerializeToString(), len(values)) is None
    lit.collection.literals[0].scalar.primitive.string_value = "first"
    with pytest.raises(TypeMismatchError, match=r"value\[0\]: expected a literal of type int"):
        default_engine().to_python(lit, list[int], ctx())


def test_vectorized_ints_of_every_varint_length_are_exact() -> None:
    """Values of 1 to 10 varint bytes, mixed: the same bytes as protobuf's own encoder, and back."""
    import random

    from ferry.types import fastlists
    from ferry.types.collections import _fill_primitives

    rng = random.Random(3)
    values = [rng.choice([1, -1]) * (rng.getrandbits(rng.randrange(1, 64)) - 1) for _ in range(40_000)]
    slow = Literal()
    _fill_primitives(slow.collection, "integer", values)
    data = slow.collection.SerializeToString()
    assert fastlists.encode("integer", values) == data
    assert fastlists.decode("integer", data, len(values)) == values
    assert fastlists.decode("integer", data[:-1], len(values)) is None  # cut short
    assert fastlists.decode("integer", data, len(values) + 1) is None  # a count that doesn't match


@pytest.mark.parametrize(
    "python_type, values",
    [(int, [0, -1, 127, 128, 2**63 - 1, -(2**63), 300] * 4000), (float, [0.5, -1e300, float("inf")] * 9000),
     (bool, [True, False] * 12000)],
    ids=["int", "float", "bool"],
)
def test_a_large_list_serialized_straight_from_its_values_is_the_literal_protobuf_writes(
        python_type: Any, values: list[Any]) -> None:
    from ferry.types.collections import ListTransformer, serialized_list

    engine = default_engine()
    data = serialized_list(values, list[python_type], engine)
    assert data == serialize(engine.to_literal(values, list[python_type], ctx()))
    assert ListTransformer().from_serialized(data, list[python_type], engine) == values
    assert ListTransformer().from_serialized(data + b"\x22\x01x", list[python_type], engine) is None  # a hash too
    assert serialized_list(values[:100], list[python_type], engine) is None  # small: the message is cheap
    assert serialized_list([*values, "x"], list[python_type], engine) is None  # a foreign element
    assert serialized_list(values, list[str], engine) is None


def test_ints_beyond_int64_are_refused() -> None:
    with pytest.raises((TypeMismatchError, ValueError)):
        default_engine().to_literal([2**64] * 30_000, list[int], ctx())


def test_a_users_transformer_for_a_list_type_is_not_bypassed_by_the_vectorized_path() -> None:
    """A large list[int] is encoded straight from its values only when ferry's own list transformer is the one
    that would convert it."""
    from ferry.types.collections import serialized_list

    engine = default_engine()
    xs = list(range(30_000))
    assert serialized_list(xs, list[int], engine) == serialize(engine.to_literal(xs, list[int], ctx()))

    users = object()  # a transformer the user registered for list[int]

    class WithUsers:
        def transformer_for(self, python_type: Any) -> Any:
            return users if python_type == list[int] else engine.transformer_for(python_type)

    assert serialized_list(xs, list[int], WithUsers()) is None
