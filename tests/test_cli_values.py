"""Text and inputs-file data -> values, through the type engine: each built-in family, strictness of JSON
data, errors that say where, and transformers of the user's own (with and without ``from_plain``)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from typing import Any, Optional, Union

import pytest

from ferry.errors import TypeMismatchError
from ferry.literals import LiteralType, SimpleType
from ferry.types import Transformer, TypeEngine, default_transformers
from ferry.types.plain import Text, parse_value


class Size(enum.Enum):
    SMALL = "s"
    LARGE = "l"


@dataclasses.dataclass
class Inner:
    when: dt.date
    tags: list[str]


@dataclasses.dataclass
class Outer:
    name: str
    inner: Inner
    weights: dict[str, float]


@pytest.mark.parametrize("text, python_type, expected", [
    ("42", int, 42),
    (" 2.5", float, 2.5),
    ("7", float, 7.0),
    ("yes", bool, True),
    ("0", bool, False),
    ("anything at all", str, "anything at all"),
    ("2026-01-31T12:30:00", dt.datetime, dt.datetime(2026, 1, 31, 12, 30)),
    ("2026-01-31", dt.date, dt.date(2026, 1, 31)),
    ("90", dt.timedelta, dt.timedelta(seconds=90)),
    ("aGk=", bytes, b"hi"),
    ("l", Size, Size.LARGE),
    ("SMALL", Size, Size.SMALL),
    ('{"a": [1, 2]}', dict[str, list[int]], {"a": [1, 2]}),
    ("null", Optional[list[int]], None),
    ("3", Union[int, str], 3),
    ("three", Union[int, str], "three"),
    ('{"name": "x", "inner": {"when": "2026-02-01", "tags": ["a"]}, "weights": {"w": 1}}', Outer,
     Outer("x", Inner(dt.date(2026, 2, 1), ["a"]), {"w": 1.0})),
])
def test_text_of_each_family(text: str, python_type: Any, expected: Any) -> None:
    value = parse_value("v", text, python_type)
    assert value == expected and type(value) is type(expected)


def test_plain_strings_are_plain_str_not_text() -> None:
    value = parse_value("v", "hello", str)
    assert type(value) is str and not isinstance(value, Text)
    assert all(type(x) is str for x in parse_value("v", '["a", "b"]', list[str]))


@pytest.mark.parametrize("data, python_type, message", [
    ("1", int, "expected a number, got \"1\""),  # a JSON string is not a number...
    ("true", bool, "expected true or false, got \"true\""),
    (1.5, int, "expected a whole number"),
    (True, float, "expected a number, got true"),
    ({"name": "x", "inner": {"when": "2026-02-01", "tags": [1]}, "weights": {}}, Outer,
     "field 'inner': field 'tags': item 0: expected a string, got 1"),
])
def test_inputs_file_data_is_strict(data: Any, python_type: Any, message: str) -> None:
    with pytest.raises(TypeMismatchError) as caught:
        parse_value("v", data, python_type, typed=False)
    assert message in str(caught.value)


def test_inputs_file_data_of_the_right_type_parses() -> None:
    assert parse_value("v", 3, int, typed=False) == 3
    assert parse_value("v", [1, 2], list[float], typed=False) == [1.0, 2.0]
    assert parse_value("v", None, Optional[int], typed=False) is None
    assert parse_value("v", "s", Size, typed=False) is Size.SMALL


class Celsius:
    def __init__(self, degrees: float) -> None:
        self.degrees = degrees


class CelsiusTransformer(Transformer):
    name = "celsius"
    python_types = (Celsius,)

    def literal_type(self, python_type: Any, engine: Any) -> LiteralType:
        return LiteralType(simple=SimpleType.FLOAT)

    def from_plain(self, obj: Any, python_type: Any, engine: Any) -> Any:
        text = str(obj).strip()
        if not text.endswith("C"):
            raise ValueError("expected degrees like 21.5C")
        return Celsius(float(text[:-1]))


class Opaque:
    pass


class OpaqueTransformer(Transformer):
    name = "opaque"
    python_types = (Opaque,)

    def literal_type(self, python_type: Any, engine: Any) -> LiteralType:
        return LiteralType(simple=SimpleType.STRING)


def test_transformers_of_the_users_own_read_text_through_their_hook() -> None:
    engine = TypeEngine([CelsiusTransformer(), OpaqueTransformer(), *default_transformers()])
    assert engine.from_plain(Text("21.5C"), Celsius).degrees == 21.5
    assert [c.degrees for c in engine.from_plain(Text("[\"1C\", \"2C\"]"), list[Celsius])] == [1.0, 2.0]
    with pytest.raises(TypeMismatchError, match="can't read '21.5F' as .*Celsius: expected degrees like 21.5C"):
        engine.from_plain(Text("21.5F"), Celsius, "--t")
    with pytest.raises(TypeMismatchError, match=r"OpaqueTransformer\) can't read text: give it a from_plain"):
        engine.from_plain(Text("x"), Opaque)


def test_a_pickled_type_says_it_cannot_be_given_as_text() -> None:
    import warnings

    from ferry.types.pickled import PickleTransformer

    engine = TypeEngine(default_transformers(), fallback=PickleTransformer())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(TypeMismatchError, match="has no transformer .*register a transformer for it"):
            engine.from_plain(Text("x"), Opaque)
