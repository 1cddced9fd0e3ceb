"""A function's signature and docstring -> a typed interface (flyteidl TypedInterface).

Inputs are the parameters; outputs are ``o0``, ``o1``, ... or a returned
NamedTuple's field names. Descriptions come from reST (``:param a:``),
Google (``Args:``) or NumPy (``Parameters`` + dashes) docstrings, read by
``docstring_parser``.
Untyped parameters are refused when the task is defined, not when it runs.
"""

from __future__ import annotations

import functools
import inspect
import typing
from dataclasses import dataclass, field
from typing import Any, Callable

from ferry.errors import InterfaceError, TypeTransformerError
from ferry.literals import TypedInterface, Variable


@dataclass(frozen=True)
class Interface:
    """Python-side view of a task's interface; ``typed`` is the flyteidl message."""

    inputs: dict[str, Any]
    outputs: dict[str, Any]
    defaults: dict[str, Any]
    typed: TypedInterface
    output_tuple: type | None = None  # the NamedTuple class, when outputs are named
    docs: dict[str, str] = field(default_factory=dict)


def bind_inputs(owner: str, interface: Interface, signature: inspect.Signature,
                args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Positional and keyword arguments -> {input name: value}, with a clear error when they don't fit."""
    from ferry.errors import TypeMismatchError

    try:
        values = dict(signature.bind_partial(*args, **kwargs).arguments)
    except TypeError as exc:
        raise TypeMismatchError(f"{owner}: {exc}. It takes {list(interface.inputs)}.") from None
    missing = [n for n in interface.inputs if n not in values and n not in interface.defaults]
    if missing:
        raise TypeMismatchError(f"{owner}: missing input(s) {missing}; it takes {list(interface.inputs)}.")
    return values


def _is_namedtuple(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, tuple) and hasattr(t, "_fields")


def output_types(return_type: Any) -> tuple[dict[str, Any], type | None]:
    if return_type is None or return_type is type(None) or return_type is inspect.Signature.empty:
        return {}, None
    if _is_namedtuple(return_type):
        hints = typing.get_type_hints(return_type, include_extras=True)
        return {name: hints[name] for name in return_type._fields}, return_type
    if typing.get_origin(return_type) is tuple:
        args = typing.get_args(return_type)
        if not args or args[-1] is Ellipsis:
            raise InterfaceError("A variable-length tuple can't be an output; use tuple[int, str] or a NamedTuple.")
        return {f"o{i}": t for i, t in enumerate(args)}, None
    return {"o0": return_type}, None


def extract(fn: Callable[..., Any], engine: Any) -> Interface:
    """Build the interface of ``fn``, failing now if anything isn't typed or supported."""
    name = getattr(fn, "__qualname__", repr(fn))
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except NameError as exc:
        raise InterfaceError(f"Task {name}: can't resolve a type annotation ({exc}). Import the type in the task's module.") from exc
    signature = inspect.signature(fn)
    inputs: dict[str, Any] = {}
    defaults: dict[str, Any] = {}
    for pname, param in signature.parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise InterfaceError(f"Task {name}: *{pname} / **{pname} can't be typed inputs; declare each input by name.")
        if pname not in hints:
            raise InterfaceError(f"Task {name}: input {pname!r} has no type annotation. Annotate it, e.g. `{pname}: int`.")
        inputs[pname] = hints[pname]
        if param.default is not param.empty:
            defaults[pname] = param.default
    if "return" not in hints and signature.return_annotation is inspect.Signature.empty:
        raise InterfaceError(f"Task {name}: the return type is not annotated. Add `-> T` (or `-> None`).")
    outputs, output_tuple = output_types(hints.get("return"))
    doc = inspect.getdoc(fn) or ""
    docs = parse_docstring(doc)
    output_docs = output_descriptions(doc, list(outputs))
    typed = TypedInterface()
    for direction, variables in (("input", inputs), ("output", outputs)):
        target = typed.inputs.variables if direction == "input" else typed.outputs.variables
        for var, var_type in variables.items():
            try:
                literal_type = engine.literal_type(var_type)
            except TypeTransformerError as exc:
                raise InterfaceError(f"Task {name}: {direction} {var!r}: {exc}") from exc
            description = docs.get(var, "") if direction == "input" else output_docs.get(var, "")
            target[var].CopyFrom(Variable(type=literal_type, description=description))
    return Interface(inputs, outputs, defaults, typed, output_tuple, docs)


def parse_docstring(doc: str) -> dict[str, str]:
    """Descriptions by parameter name, plus 'return' (the first documented return value), from reST,
    Google or NumPy style (``docstring_parser`` tells which)."""
    parsed = _parse(doc)
    out = {p.arg_name: _flat(p.description) for p in parsed.params if p.description}
    returns = _returns(parsed)
    if returns:
        out["return"] = returns[0][1]
    return out


def output_descriptions(doc: str, outputs: list[str]) -> dict[str, str]:
    """The description of each output: one documented return value describes a single output; several
    (NumPy ``Returns`` entries) go to the outputs by name (a NamedTuple's fields), else in order."""
    returns = _returns(_parse(doc))
    if not returns or not outputs:
        return {}
    if len(outputs) == 1:
        return {outputs[0]: returns[0][1]}
    by_name = {name: text for name, text in returns if name in outputs}
    return by_name or {output: text for output, (_, text) in zip(outputs, returns, strict=False)}  # fewer documented: the rest stay blank


@functools.lru_cache(maxsize=256)
def _parse(doc: str) -> Any:
    import docstring_parser

    try:
        return docstring_parser.parse(doc)
    except docstring_parser.ParseError:  # descriptions are optional: a malformed docstring documents nothing
        return docstring_parser.Docstring()


def _returns(parsed: Any) -> list[tuple[str | None, str]]:
    return [(r.return_name, _flat(r.description)) for r in parsed.many_returns if r.description]


def _flat(text: str | None) -> str:
    """A description on one line: continuation lines joined with single spaces."""
    return " ".join((text or "").split())
