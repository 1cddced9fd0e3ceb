"""A function's signature and docstring -> a typed interface (flyteidl TypedInterface).

Inputs are the parameters; outputs are ``o0``, ``o1``, ... or a returned
NamedTuple's field names. Descriptions come from reST (``:param a:``),
Google (``Args:``) or NumPy (``Parameters\\n----------``) docstrings.
Untyped parameters are refused when the task is defined, not when it runs.
"""

from __future__ import annotations

import inspect
import re
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
    docs = parse_docstring(inspect.getdoc(fn) or "")
    typed = TypedInterface()
    for direction, variables in (("input", inputs), ("output", outputs)):
        target = typed.inputs.variables if direction == "input" else typed.outputs.variables
        for var, var_type in variables.items():
            try:
                literal_type = engine.literal_type(var_type)
            except TypeTransformerError as exc:
                raise InterfaceError(f"Task {name}: {direction} {var!r}: {exc}") from exc
            desc_key = var if direction == "input" else ("return" if len(outputs) == 1 else var)
            target[var].CopyFrom(Variable(type=literal_type, description=docs.get(desc_key, docs.get(var, ""))))
    return Interface(inputs, outputs, defaults, typed, output_tuple, docs)


_REST = re.compile(r"^:(param|parameter|arg|return|returns)\s*(\w*)\s*:\s*(.*)$")
_SECTIONS = {"args": "param", "arguments": "param", "parameters": "param", "params": "param",
             "returns": "return", "return": "return"}


def parse_docstring(doc: str) -> dict[str, str]:
    """Descriptions by parameter name, plus 'return', from reST, Google or NumPy style."""
    return _parse_rest(doc) or _parse_sections(doc)


def _parse_rest(doc: str) -> dict[str, str]:
    out: dict[str, str] = {}
    current = None
    for line in doc.splitlines():
        match = _REST.match(line.strip())
        if match:
            kind, name, text = match.groups()
            current = "return" if kind.startswith("return") else name
            out[current] = text.strip()
        elif current and line.strip() and not line.strip().startswith(":"):
            out[current] = f"{out[current]} {line.strip()}".strip()
        else:
            current = None
    return out


def _parse_sections(doc: str) -> dict[str, str]:
    """Google (``Args:``) and NumPy (``Parameters`` + dashes) sections: entries and their continuations."""
    lines = doc.splitlines()
    out: dict[str, str] = {}
    i = 0
    while i < len(lines):
        title = lines[i].strip()
        numpy = i + 1 < len(lines) and lines[i + 1].strip() != "" and set(lines[i + 1].strip()) == {"-"}
        kind = _SECTIONS.get(title.rstrip(":").lower()) if (title.endswith(":") or numpy) else None
        if kind is None:
            i += 1
            continue
        i += 2 if numpy else 1
        body = []
        while i < len(lines) and not _is_header(lines, i):
            body.append(lines[i])
            i += 1
        for head, rest in _entries(body):
            if kind == "param":
                name, _, text = head.partition(":")
                name = name.split("(")[0].strip()
                out[name] = " ".join(([] if numpy else [text.strip()]) + rest).strip()
            else:
                typed = re.match(r"^[\w\[\], .]+:\s+(.*)$", head)
                first = [] if numpy and rest else [typed.group(1) if typed else head]
                out["return"] = " ".join(first + rest).strip()
    return out


def _is_header(lines: list[str], i: int) -> bool:
    title = lines[i].strip().rstrip(":").lower()
    underlined = i + 1 < len(lines) and lines[i + 1].strip() != "" and set(lines[i + 1].strip()) == {"-"}
    return title in _SECTIONS and (lines[i].strip().endswith(":") or underlined)


def _entries(body: list[str]) -> list[tuple[str, list[str]]]:
    """Split a section body into (entry line, continuation lines) by indentation."""
    filled = [line for line in body if line.strip()]
    if not filled:
        return []
    indent = min(len(line) - len(line.lstrip()) for line in filled)
    entries: list[tuple[str, list[str]]] = []
    for line in filled:
        if len(line) - len(line.lstrip()) == indent:
            entries.append((line.strip(), []))
        elif entries:
            entries[-1][1].append(line.strip())
    return entries
