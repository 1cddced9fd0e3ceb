"""The type engine: resolves a Python type to its transformer, and converts through it.

Resolution order: a transformer registered for the exact class, then the
first whose predicate accepts the type, then the pickle fallback (with a
warning naming the type). Results are cached; registering clears the cache.
"""

from __future__ import annotations

import typing
import warnings
from typing import Any, Iterable

from ferry.errors import TypeMismatchError, TypeTransformerError, UnsupportedTypeError
from ferry.literals import Literal, LiteralType, parse_literal
from ferry.types.context import TransferContext


class PickledTypeWarning(UserWarning):
    """A value of a type with no transformer is being pickled."""


class Transformer:
    """Converts one family of Python types to literals and back.

    Subclasses set ``python_types`` (exact classes) and/or override
    ``matches`` (a predicate), and implement the three conversions.
    """

    name: str = "transformer"
    python_types: tuple[type, ...] = ()

    def matches(self, python_type: Any) -> bool:
        return False

    def literal_type(self, python_type: Any, engine: "TypeEngine") -> LiteralType:
        raise NotImplementedError

    def to_literal(self, value: Any, python_type: Any, engine: "TypeEngine", ctx: TransferContext, path: str) -> Literal:
        raise NotImplementedError

    def to_python(self, literal: Literal, python_type: Any, engine: "TypeEngine", ctx: TransferContext, path: str) -> Any:
        raise NotImplementedError

    def from_plain(self, obj: Any, python_type: Any, engine: "TypeEngine") -> Any:
        """A value of ``python_type`` from what a person typed (a string: ``ferry run ... --x TEXT``) or what an
        inputs file holds (JSON / YAML data). Raise ValueError or TypeError saying what was expected.

        Optional: override it so that your type can be given on the command line. The built-in
        transformers' forms (numbers, JSON lists, base64 or @file bytes, paths of parquet / CSV / .npy
        files, ...) are in ``ferry.types.plain``.
        """
        from ferry.types.plain import builtin_from_plain

        return builtin_from_plain(self, obj, python_type, engine)


def strip_annotated(python_type: Any) -> tuple[Any, tuple[Any, ...]]:
    """``Annotated[T, x, y]`` -> ``(T, (x, y))``; anything else -> ``(type, ())``."""
    if typing.get_origin(python_type) is typing.Annotated:
        return python_type.__origin__, tuple(python_type.__metadata__)
    return python_type, ()


def type_name(python_type: Any) -> str:
    base, _ = strip_annotated(python_type)
    if isinstance(base, type) and not typing.get_args(base):
        return base.__qualname__ if base.__module__ == "builtins" else f"{base.__module__}.{base.__qualname__}"
    return repr(base).replace("typing.", "")


def value_type_name(value: Any) -> str:
    return type(value).__qualname__


def a(name: str) -> str:
    """``name`` with its indefinite article: "an int", "a str"."""
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


class TypeEngine:
    """A registry of transformers. ``ferry.types.default_engine()`` holds the standard set."""

    def __init__(self, transformers: Iterable[Transformer] = (), fallback: Transformer | None = None) -> None:
        self._exact: dict[type, Transformer] = {}
        self._predicates: list[Transformer] = []
        self._fallback = fallback
        self._cache: dict[Any, Transformer] = {}
        self._warned: set[str] = set()
        for transformer in transformers:
            self.register(transformer, first=False)

    def register(self, transformer: Transformer, *, first: bool = True) -> None:
        """Add a transformer. With ``first`` (the default), it wins over those already registered."""
        for cls in transformer.python_types:
            if first or cls not in self._exact:
                self._exact[cls] = transformer
        if type(transformer).matches is not Transformer.matches:
            if first:
                self._predicates.insert(0, transformer)
            else:
                self._predicates.append(transformer)
        self._cache.clear()

    def transformer_for(self, python_type: Any) -> Transformer:
        try:
            return self._cache[python_type]
        except (KeyError, TypeError):
            pass
        found = self._resolve(python_type)
        try:
            self._cache[python_type] = found
        except TypeError:  # unhashable annotation metadata
            pass
        return found

    def _resolve(self, python_type: Any) -> Transformer:
        base, _ = strip_annotated(python_type)
        if isinstance(base, type) and base in self._exact:
            return self._exact[base]
        for transformer in self._predicates:
            if transformer.matches(base):
                return transformer
        if self._fallback is None or not isinstance(base, type):
            raise UnsupportedTypeError(
                f"Unsupported type: {type_name(python_type)}. Use a supported type, or register a "
                "transformer for it with ferry.types.register(...)."
            )
        name = type_name(base)
        if name not in self._warned:
            self._warned.add(name)
            warnings.warn(
                f"ferry: no transformer for {name}; its values will be pickled (register one with ferry.types.register).",
                PickledTypeWarning,
                stacklevel=4,
            )
        return self._fallback

    def literal_type(self, python_type: Any) -> LiteralType:
        return self.transformer_for(python_type).literal_type(python_type, self)

    def to_literal(self, value: Any, python_type: Any, ctx: TransferContext, path: str = "value") -> Literal:
        transformer = self.transformer_for(python_type)
        try:
            return transformer.to_literal(value, python_type, self, ctx, path)
        except TypeTransformerError:
            raise
        except (TypeError, ValueError, AttributeError) as exc:
            raise TypeMismatchError(
                f"{path}: cannot convert {a(value_type_name(value))} to {type_name(python_type)}: {exc}"
            ) from exc

    def from_plain(self, obj: Any, python_type: Any, path: str = "value") -> Any:
        """Text or JSON-like data -> a value of ``python_type``, through its transformer's ``from_plain``."""
        try:
            return self.transformer_for(python_type).from_plain(obj, python_type, self)
        except TypeTransformerError:
            raise
        except (TypeError, ValueError) as exc:
            raise TypeMismatchError(f"{path}: can't read {obj!r} as {type_name(python_type)}: {exc}") from None

    def to_python(self, literal: Literal, python_type: Any, ctx: TransferContext, path: str = "value") -> Any:
        transformer = self.transformer_for(python_type)
        if literal.HasField("offloaded_metadata"):
            from ferry.storage import read_bytes
            from ferry.types.files import store_roots

            uri = literal.offloaded_metadata.uri
            data = read_bytes(uri, ctx.options(uri), "raw", roots=store_roots(ctx))
            fast = getattr(transformer, "from_serialized", None)  # values straight from the bytes, no message built
            if fast is not None and (value := fast(data, python_type, self)) is not None:
                return value
            literal = parse_literal(data, f"offloaded literal {uri} ({path})")
        return transformer.to_python(literal, python_type, self, ctx, path)


def expect_scalar(literal: Literal, field: str, python_type: Any, path: str) -> Any:
    """The scalar sub-message ``field`` of ``literal``, or a mismatch error naming both types."""
    scalar = literal.scalar if literal.HasField("scalar") else None
    if scalar is None or scalar.WhichOneof("value") != field:
        raise TypeMismatchError(
            f"{path}: expected a literal of type {type_name(python_type)}, got {literal_kind(literal)}. "
            "The stored value was written with a different type than the task declares."
        )
    return getattr(scalar, field)


def literal_kind(literal: Literal) -> str:
    kind = literal.WhichOneof("value")
    if kind == "scalar":
        which = literal.scalar.WhichOneof("value")
        if which == "primitive":
            return f"a {literal.scalar.primitive.WhichOneof('value')} primitive"
        return f"a {which}"
    return f"a {kind}" if kind else "an empty literal"
