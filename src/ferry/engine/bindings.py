"""Resolve BindingData to literals and evaluate branch conditions, from meta values only."""

from __future__ import annotations

from typing import Mapping

from flyteidl.core import condition_pb2, literals_pb2

from ferry.errors import FerryError
from ferry.literals import Literal, LiteralMap

START = "start-node"  # a workflow's own inputs (also the engine.spec constant)


class BindingError(FerryError):
    """A binding refers to an output that doesn't exist (a bug in the compiled graph or stored outputs)."""


def resolve(binding: literals_pb2.BindingData, results: Mapping[str, LiteralMap]) -> Literal:
    kind = binding.WhichOneof("value")
    if kind == "promise":
        ref = binding.promise
        outputs = results.get(ref.node_id or START)  # Flyte's packages leave the inputs' node id empty
        if outputs is None or ref.var not in outputs.literals:
            raise BindingError(f"Output {ref.node_id}.{ref.var} is not available; known: {sorted(results)}.")
        return outputs.literals[ref.var]
    if kind == "scalar":
        return Literal(scalar=binding.scalar)
    if kind == "collection":
        lit = Literal()
        lit.collection.SetInParent()
        lit.collection.literals.extend(resolve(b, results) for b in binding.collection.bindings)
        return lit
    if kind == "map":
        lit = Literal()
        lit.map.SetInParent()
        for key, b in binding.map.bindings.items():
            lit.map.literals[key].CopyFrom(resolve(b, results))
        return lit
    if kind == "offloaded_metadata":
        return Literal(offloaded_metadata=binding.offloaded_metadata)
    raise BindingError(f"Unsupported binding kind {kind!r}.")


def resolve_all(bindings: Mapping[str, literals_pb2.BindingData], results: Mapping[str, LiteralMap]) -> LiteralMap:
    out = LiteralMap()
    for name, binding in bindings.items():
        out.literals[name].CopyFrom(resolve(binding, results))
    return out


def _primitive_value(lit: Literal) -> object:
    if lit.HasField("scalar") and lit.scalar.HasField("union"):
        lit = lit.scalar.union.value
    if lit.HasField("scalar") and lit.scalar.HasField("none_type"):
        return None
    prim = lit.scalar.primitive
    field = prim.WhichOneof("value")
    if field is None:
        raise BindingError("Conditions compare primitive values; this operand is not a primitive.")
    value = getattr(prim, field)
    if field == "datetime":
        return value.ToDatetime()
    if field == "duration":
        return value.ToTimedelta()
    return value


def _operand(op: condition_pb2.Operand, inputs: LiteralMap) -> object:
    kind = op.WhichOneof("val")
    if kind == "var":
        return _primitive_value(inputs.literals[op.var])
    if kind == "primitive":
        return _primitive_value(Literal(scalar=literals_pb2.Scalar(primitive=op.primitive)))
    return _primitive_value(Literal(scalar=op.scalar))


_COMPARE = {
    condition_pb2.ComparisonExpression.EQ: lambda a, b: a == b,
    condition_pb2.ComparisonExpression.NEQ: lambda a, b: a != b,
    condition_pb2.ComparisonExpression.GT: lambda a, b: a > b,
    condition_pb2.ComparisonExpression.GTE: lambda a, b: a >= b,
    condition_pb2.ComparisonExpression.LT: lambda a, b: a < b,
    condition_pb2.ComparisonExpression.LTE: lambda a, b: a <= b,
}


def evaluate(expr: condition_pb2.BooleanExpression, inputs: LiteralMap) -> bool:
    """Evaluate a flyteidl BooleanExpression over the branch node's resolved inputs."""
    if expr.HasField("comparison"):
        c = expr.comparison
        left, right = _operand(c.left_value, inputs), _operand(c.right_value, inputs)
        try:
            return bool(_COMPARE[c.operator](left, right))
        except TypeError as exc:
            raise BindingError(f"Can't compare {left!r} with {right!r}: {exc}") from exc
    conj = expr.conjunction
    left_result = evaluate(conj.left_expression, inputs)
    if conj.operator == condition_pb2.ConjunctionExpression.AND:
        return left_result and evaluate(conj.right_expression, inputs)
    return left_result or evaluate(conj.right_expression, inputs)
