"""Values in a workflow body, and input defaults, on their way to becoming flyteidl bindings.

A constant that needs no store (an int, a list of strings, a remote File's URI)
is a literal at once. One that does (a local File, a data frame) stays a
Python value, a ``Constant``, until the workflow is launched or registered:
compiling uploads nothing. ``render`` turns a compiled binding into BindingData,
converting the constants it holds with the caller's ``convert``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Union

from flyteidl.core import literals_pb2

from ferry.errors import InterfaceError
from ferry.literals import Literal


@dataclass
class Constant:
    """A value in a workflow body (or an input's default) whose literal needs the raw store: it is
    converted when the workflow is launched or registered, not when it is compiled."""

    value: Any
    python_type: Any
    where: str


# A node input as compiled: final BindingData, or a tree holding constants still to convert.
Bound = Union[literals_pb2.BindingData, Constant, list["Bound"], dict[str, "Bound"]]
Convert = Callable[[Constant], Literal]  # turns a Constant into its literal (uploading it)


def has_constants(bound: Bound) -> bool:
    if isinstance(bound, Constant):
        return True
    if isinstance(bound, list):
        return any(has_constants(b) for b in bound)
    if isinstance(bound, dict):
        return any(has_constants(b) for b in bound.values())
    return False


def render(bound: Bound, convert: Convert | None) -> literals_pb2.BindingData:
    """A compiled binding as flyteidl BindingData, converting the constants it holds."""
    if isinstance(bound, literals_pb2.BindingData):
        return bound
    if isinstance(bound, Constant):
        if convert is None:
            raise InterfaceError(f"{bound.where}: this constant must be uploaded before the workflow can run.")
        return binding_from_literal(convert(bound))
    if isinstance(bound, list):
        return literals_pb2.BindingData(collection=literals_pb2.BindingDataCollection(
            bindings=[render(b, convert) for b in bound]))
    return literals_pb2.BindingData(map=literals_pb2.BindingDataMap(
        bindings={k: render(b, convert) for k, b in bound.items()}))


def binding_from_literal(lit: Literal) -> literals_pb2.BindingData:
    kind = lit.WhichOneof("value")
    if kind == "collection":
        return literals_pb2.BindingData(collection=literals_pb2.BindingDataCollection(
            bindings=[binding_from_literal(x) for x in lit.collection.literals]))
    if kind == "map":
        return literals_pb2.BindingData(map=literals_pb2.BindingDataMap(
            bindings={k: binding_from_literal(v) for k, v in lit.map.literals.items()}))
    if kind == "offloaded_metadata":
        return literals_pb2.BindingData(offloaded_metadata=lit.offloaded_metadata)
    return literals_pb2.BindingData(scalar=lit.scalar)


def constant(value: Any, python_type: Any, where: str) -> Literal | Constant:
    """A constant's literal when it needs no store, else a Constant to convert at launch."""
    from ferry.types import default_engine
    from ferry.types.context import Deferred, deferring_context

    try:
        return default_engine().to_literal(value, python_type, deferring_context(), where)
    except Deferred:
        return Constant(value, python_type, where)
