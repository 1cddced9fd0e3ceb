"""Typed interfaces from signatures and docstrings."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from ferry import File, task
from ferry.errors import InterfaceError
from ferry.interface import parse_docstring
from ferry.literals import SimpleType


def test_reference_document_interface() -> None:
    @task
    def my_task(a: int, b: str) -> File:
        """Description of my function

        :param a: My input integer
        :param b: My input string
        :return: My output file
        """
        raise NotImplementedError

    typed = my_task.interface.typed
    assert typed.inputs.variables["a"].type.simple == SimpleType.INTEGER
    assert typed.inputs.variables["a"].description == "My input integer"
    assert typed.inputs.variables["b"].description == "My input string"
    assert typed.outputs.variables["o0"].type.HasField("blob")
    assert typed.outputs.variables["o0"].description == "My output file"


GOOGLE = """Summary line.

Args:
    a (int): First value,
        continued here.
    b: Second value.

Returns:
    int: The total.
"""

NUMPY = """Summary line.

Parameters
----------
a : int
    First value.
b : str
    Second value.

Returns
-------
int
    The total.
"""


@pytest.mark.parametrize("doc", [GOOGLE, NUMPY], ids=["google", "numpy"])
def test_docstring_styles(doc: str) -> None:
    parsed = parse_docstring(doc)
    assert parsed["a"].startswith("First value")
    assert parsed["b"] == "Second value."
    assert "total" in parsed["return"].lower()


def test_google_continuation_lines_join() -> None:
    assert parse_docstring(GOOGLE)["a"] == "First value, continued here."


class Stats(NamedTuple):
    mean: float
    count: int


def test_named_and_positional_outputs() -> None:
    @task
    def stats(xs: list[float]) -> Stats:
        return Stats(sum(xs) / len(xs), len(xs))

    @task
    def pair() -> tuple[int, str]:
        return 1, "x"

    @task
    def nothing() -> None:
        return None

    assert list(stats.interface.typed.outputs.variables) == ["mean", "count"] or set(stats.interface.outputs) == {"mean", "count"}
    assert stats(xs=[1.0, 3.0]) == Stats(2.0, 2)
    assert list(pair.interface.outputs) == ["o0", "o1"] and pair() == (1, "x")
    assert nothing.interface.outputs == {} and nothing() is None


def test_untyped_input_fails_at_definition() -> None:
    with pytest.raises(InterfaceError, match="input 'b' has no type annotation"):
        @task
        def bad(a: int, b) -> int:  # type: ignore[no-untyped-def]
            return a


def test_missing_return_annotation_fails_at_definition() -> None:
    with pytest.raises(InterfaceError, match="return type is not annotated"):
        @task
        def bad(a: int):  # type: ignore[no-untyped-def]
            return a


def test_varargs_are_refused() -> None:
    with pytest.raises(InterfaceError, match=r"\*args"):
        @task
        def bad(*args: int) -> int:
            return 0
