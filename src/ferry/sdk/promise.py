"""Promises: what a task call returns while a workflow body is being compiled.

A promise names an output (``node_id``, ``var``) and carries its type, so
the next call can type-check the edge and bind it as flyteidl BindingData.
Comparing promises (``x > 3``, ``(a == 1) & (b < 2)``) builds flyteidl
boolean expressions that the engine evaluates on meta values alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flyteidl.core import condition_pb2, literals_pb2, types_pb2

from ferry.engine.bindings import START
from ferry.errors import InterfaceError

_OPS = {
    "==": condition_pb2.ComparisonExpression.EQ, "!=": condition_pb2.ComparisonExpression.NEQ,
    ">": condition_pb2.ComparisonExpression.GT, ">=": condition_pb2.ComparisonExpression.GTE,
    "<": condition_pb2.ComparisonExpression.LT, "<=": condition_pb2.ComparisonExpression.LTE,
}


@dataclass(eq=False)
class Promise:
    """The future output ``var`` of node ``node_id``, of type ``python_type``."""

    node_id: str
    var: str
    python_type: Any
    literal_type: types_pb2.LiteralType

    @property
    def ref(self) -> str:
        """How messages name it: ``n2.o0``, or ``input x`` for the workflow's own input."""
        return f"input {self.var}" if self.node_id == START else f"{self.node_id}.{self.var}"

    @property
    def var_name(self) -> str:
        """The name a branch node's condition refers to it by (``n2.o0``, ``start-node.x``), as Flyte spells it."""
        return f"{self.node_id}.{self.var}"

    def binding(self) -> literals_pb2.BindingData:
        return literals_pb2.BindingData(promise=types_pb2.OutputReference(node_id=self.node_id, var=self.var))

    def _compare(self, op: str, other: Any) -> "Condition":
        return Condition.compare(self, op, other)

    def __eq__(self, other: Any) -> "Condition":  # type: ignore[override]
        return self._compare("==", other)

    def __ne__(self, other: Any) -> "Condition":  # type: ignore[override]
        return self._compare("!=", other)

    def __gt__(self, other: Any) -> "Condition":
        return self._compare(">", other)

    def __ge__(self, other: Any) -> "Condition":
        return self._compare(">=", other)

    def __lt__(self, other: Any) -> "Condition":
        return self._compare("<", other)

    def __le__(self, other: Any) -> "Condition":
        return self._compare("<=", other)

    def __bool__(self) -> bool:
        raise InterfaceError(
            f"The value {self.ref} is not known while the workflow is compiled, so Python `if`/`and`/`or` can't "
            "use it. Use ferry.conditional(...).if_(x > 3) and combine conditions with & and |."
        )

    def __index__(self) -> int:
        raise InterfaceError(
            f"The value {self.ref} is a promise, not a number, while the workflow is compiled; compute with it "
            "inside a task (e.g. a task that returns list(range(n)))."
        )

    __int__ = __index__

    def __iter__(self) -> Any:
        raise InterfaceError(
            f"The value {self.ref} is a promise and can't be iterated while the workflow is compiled; "
            "use ferry.map_task(task)(xs=...) to fan out over a list."
        )

    def __repr__(self) -> str:
        return f"Promise({self.ref})"


class Condition:
    """A boolean expression over promises and constants (flyteidl BooleanExpression)."""

    def __init__(self, expr: condition_pb2.BooleanExpression, promises: dict[str, Promise]) -> None:
        self.expr = expr
        self.promises = promises

    @classmethod
    def compare(cls, left: Any, op: str, right: Any) -> "Condition":
        promises: dict[str, Promise] = {}
        comparison = condition_pb2.ComparisonExpression(
            operator=_OPS[op], left_value=_operand(left, promises), right_value=_operand(right, promises)
        )
        return cls(condition_pb2.BooleanExpression(comparison=comparison), promises)

    def _join(self, other: "Condition", op: condition_pb2.ConjunctionExpression.LogicalOperator) -> "Condition":
        if not isinstance(other, Condition):
            raise InterfaceError("Combine conditions with & and | only between comparisons, e.g. (x > 1) & (y < 2).")
        expr = condition_pb2.BooleanExpression(
            conjunction=condition_pb2.ConjunctionExpression(operator=op, left_expression=self.expr, right_expression=other.expr)
        )
        return Condition(expr, {**self.promises, **other.promises})

    def __and__(self, other: "Condition") -> "Condition":
        return self._join(other, condition_pb2.ConjunctionExpression.AND)

    def __or__(self, other: "Condition") -> "Condition":
        return self._join(other, condition_pb2.ConjunctionExpression.OR)

    def __bool__(self) -> bool:
        raise InterfaceError(
            "A workflow condition has no value while the workflow is compiled, so Python's if / and / or / not "
            "can't use it. Branch with ferry.conditional('name').if_(x > 3).then(...), and combine conditions "
            "with & and | in parentheses."
        )


def _operand(value: Any, promises: dict[str, Promise]) -> condition_pb2.Operand:
    if isinstance(value, Promise):
        if not value.literal_type.HasField("simple"):
            raise InterfaceError(
                f"Conditions compare primitive meta values only; {value.ref} is not a primitive. "
                "Compute a bool/int/str in a task and branch on that."
            )
        promises[value.var_name] = value
        return condition_pb2.Operand(var=value.var_name)
    prim = literals_pb2.Primitive()
    if isinstance(value, bool):
        prim.boolean = value
    elif isinstance(value, int):
        prim.integer = value
    elif isinstance(value, float):
        prim.float_value = value
    elif isinstance(value, str):
        prim.string_value = value
    else:
        raise InterfaceError(f"Conditions compare with int, float, str or bool constants, not {type(value).__name__}.")
    return condition_pb2.Operand(primitive=prim)
