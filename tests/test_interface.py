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


GOOGLE_WITH_RAISES = """Summary line.

Args:
    a (int): First value.
    b: Second value.

Raises:
    ValueError: When a is negative.

Returns:
    int: The total.
"""

NUMPY_WITH_NOTES = """Summary line.

Parameters
----------
a : int
    First value.

Returns
-------
int
    The total.

Notes
-----
Not a return value.
"""

REST_MULTILINE = """Summary line.

:param a: First value,
    continued here.
:param b: Second value.
:raises ValueError: When a is negative.
:returns: The total.
"""


@pytest.mark.parametrize("doc", [GOOGLE_WITH_RAISES, REST_MULTILINE], ids=["google", "rest"])
def test_a_raises_section_keeps_every_parameter(doc: str) -> None:
    parsed = parse_docstring(doc)
    assert parsed["a"].startswith("First value") and parsed["b"] == "Second value."
    assert parsed["return"] == "The total."
    assert "ValueError" not in parsed and "When a is negative." not in parsed.values()


def test_numpy_returns_are_not_taken_from_notes() -> None:
    parsed = parse_docstring(NUMPY_WITH_NOTES)
    assert parsed == {"a": "First value.", "return": "The total."}


def test_rest_continuation_lines_join() -> None:
    assert parse_docstring(REST_MULTILINE)["a"] == "First value, continued here."


def test_a_docstring_without_sections_documents_nothing() -> None:
    assert parse_docstring("Just a summary.\n\nAnd some prose: with a colon.") == {}


class Summary(NamedTuple):
    mean: float
    count: int


def test_descriptions_reach_the_typed_interface() -> None:
    @task
    def google(a: int, b: str) -> int:
        """Add.

        Args:
            a: First value.
            b: Second value.

        Raises:
            ValueError: When a is negative.

        Returns:
            The total.
        """
        return a

    @task
    def numpy_named(xs: list[float]) -> Summary:
        """Summarize.

        Parameters
        ----------
        xs : list of float
            The values.

        Returns
        -------
        count : int
            How many.
        mean : float
            Their mean.
        """
        return Summary(0.0, 0)

    @task
    def numpy_pair() -> tuple[int, str]:
        """Pair.

        Returns
        -------
        int
            A number.
        str
            A word.
        """
        return 1, "x"

    def described(t: object, direction: str) -> dict[str, str]:
        variables = getattr(t.interface.typed, direction).variables  # type: ignore[attr-defined]
        return {name: v.description for name, v in variables.items()}

    assert described(google, "inputs") == {"a": "First value.", "b": "Second value."}
    assert described(google, "outputs") == {"o0": "The total."}
    assert described(numpy_named, "inputs") == {"xs": "The values."}
    assert described(numpy_named, "outputs") == {"mean": "Their mean.", "count": "How many."}
    assert described(numpy_pair, "outputs") == {"o0": "A number.", "o1": "A word."}


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
