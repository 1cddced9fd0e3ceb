"""Dataclasses and pydantic models as typed structs.

The LiteralType is ``STRUCT`` with ``structure.dataclass_type`` holding each
field's own LiteralType, and a value is a LiteralMap of field literals. So
field types survive (no opaque JSON string), ints keep full precision, and a
``File`` or data frame nested in a dataclass is offloaded like any other.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from typing import Any

from ferry.errors import TypeMismatchError
from ferry.literals import Literal, LiteralType, SimpleType
from ferry.types.engine import Transformer, literal_kind, type_name, value_type_name


def _is_pydantic_model(python_type: Any) -> bool:
    # Checked without importing pydantic: a BaseModel subclass has model_fields and
    # pydantic in its MRO's modules.
    return isinstance(python_type, type) and any(
        base.__module__.startswith("pydantic") and base.__name__ == "BaseModel" for base in python_type.__mro__
    )


class StructTransformer(Transformer):
    name = "struct"

    def matches(self, python_type: Any) -> bool:
        return (isinstance(python_type, type) and dataclasses.is_dataclass(python_type)) or _is_pydantic_model(python_type)

    @staticmethod
    @functools.lru_cache(maxsize=512)
    def fields(python_type: Any) -> dict[str, Any]:
        """Field name -> declared type (cached: resolving hints is slow)."""
        if _is_pydantic_model(python_type):
            return {name: f.annotation for name, f in python_type.model_fields.items()}
        hints = typing.get_type_hints(python_type, include_extras=True)
        return {f.name: hints[f.name] for f in dataclasses.fields(python_type)}

    def literal_type(self, python_type: Any, engine: Any) -> LiteralType:
        lt = LiteralType(simple=SimpleType.STRUCT)
        lt.structure.tag = type_name(python_type)
        for name, field_type in self.fields(python_type).items():
            lt.structure.dataclass_type[name].CopyFrom(engine.literal_type(field_type))
        return lt

    def to_literal(self, value: Any, python_type: Any, engine: Any, ctx: Any, path: str) -> Literal:
        if not isinstance(value, python_type):
            raise TypeMismatchError(
                f"{path}: expected {type_name(python_type)}, got {value_type_name(value)}. "
                f"Build a {python_type.__name__}(...) instance."
            )
        lit = Literal()
        lit.map.SetInParent()
        fields = lit.map.literals
        for name, field_type in self.fields(python_type).items():
            fields[name].CopyFrom(engine.to_literal(getattr(value, name), field_type, ctx, f"{path}.{name}"))
        return lit

    def to_python(self, literal: Literal, python_type: Any, engine: Any, ctx: Any, path: str) -> Any:
        if not literal.HasField("map"):
            raise TypeMismatchError(f"{path}: expected a struct literal for {type_name(python_type)}, got {literal_kind(literal)}.")
        stored = literal.map.literals
        values = {}
        for name, field_type in self.fields(python_type).items():
            if name in stored:
                values[name] = engine.to_python(stored[name], field_type, ctx, f"{path}.{name}")
        try:
            return python_type(**values)
        except (TypeError, ValueError) as exc:
            missing = sorted(set(self.fields(python_type)) - set(stored))
            raise TypeMismatchError(
                f"{path}: cannot build {type_name(python_type)} from the stored fields "
                f"(missing: {missing or 'none'}): {exc}"
            ) from exc
