"""The type engine: Python types <-> flyteidl literals, one module per family of types.

``default_engine()`` is the engine every task uses; ``register(t)`` adds a
transformer to it (ahead of the built-in ones).
"""

from __future__ import annotations

import functools

from ferry.types.context import TransferContext, current_context, using_context
from ferry.types.engine import PickledTypeWarning, Transformer, TypeEngine

__all__ = [
    "PickledTypeWarning", "TransferContext", "Transformer", "TypeEngine", "current_context",
    "default_engine", "default_transformers", "register", "using_context",
]


def default_transformers() -> list[Transformer]:
    """The built-in transformers, in resolution order for predicates."""
    from ferry.types.arrays import NumpyTransformer
    from ferry.types.collections import (
        DictTransformer,
        EnumTransformer,
        ListTransformer,
        UnionTransformer,
    )
    from ferry.types.dataframes import DataFrameTransformer
    from ferry.types.files import BlobTransformer, Directory, File
    from ferry.types.primitives import primitive_transformers
    from ferry.types.structs import StructTransformer

    return [
        *primitive_transformers(),
        ListTransformer(),
        DictTransformer(),
        UnionTransformer(),
        EnumTransformer(),
        BlobTransformer(File, multipart=False),
        BlobTransformer(Directory, multipart=True),
        DataFrameTransformer(),
        NumpyTransformer(),
        StructTransformer(),
    ]


@functools.cache
def default_engine() -> TypeEngine:
    from ferry.types.pickled import PickleTransformer

    return TypeEngine(default_transformers(), fallback=PickleTransformer())


def register(transformer: Transformer) -> None:
    """Teach ferry a new type: the transformer wins over the built-in ones."""
    default_engine().register(transformer)
