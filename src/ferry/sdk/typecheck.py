"""Compile-time edge checks: can a value of one LiteralType feed an input of another?"""

from __future__ import annotations

from typing import Any

from ferry.literals import LiteralType, SimpleType


def castable(src: LiteralType, dst: LiteralType) -> bool:
    """Whether an upstream output of type ``src`` may be bound to an input of type ``dst``."""
    if dst.HasField("union_type"):
        if src.HasField("union_type"):
            return all(any(castable(_untagged(s), _untagged(d)) for d in dst.union_type.variants) for s in src.union_type.variants)
        return any(castable(src, _untagged(v)) for v in dst.union_type.variants)
    kind = dst.WhichOneof("type")
    if kind != src.WhichOneof("type"):
        return False
    if kind == "simple":
        if src.simple == dst.simple:
            return src.simple != SimpleType.STRUCT or src.structure.tag == dst.structure.tag
        return src.simple == SimpleType.INTEGER and dst.simple == SimpleType.FLOAT
    if kind == "collection_type":
        return castable(src.collection_type, dst.collection_type)
    if kind == "map_value_type":
        return castable(src.map_value_type, dst.map_value_type)
    if kind == "blob":
        same_shape = src.blob.dimensionality == dst.blob.dimensionality
        return same_shape and (not dst.blob.format or not src.blob.format or src.blob.format == dst.blob.format)
    if kind == "structured_dataset_type":
        have = {c.name: c.literal_type for c in src.structured_dataset_type.columns}
        if not have:
            return True  # undeclared columns: checked when the data is read
        return all(c.name in have and castable(have[c.name], c.literal_type) for c in dst.structured_dataset_type.columns)
    if kind == "enum_type":
        return set(src.enum_type.values) <= set(dst.enum_type.values)
    return src == dst


def _untagged(t: LiteralType) -> LiteralType:
    copy = LiteralType()
    copy.CopyFrom(t)
    if copy.simple != SimpleType.STRUCT:
        copy.ClearField("structure")
    return copy


def describe_type(python_type: Any) -> str:
    from ferry.types.engine import type_name

    return type_name(python_type)
