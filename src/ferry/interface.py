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

    @property
    def single_output(self) -> bool:
        return len(self.outputs) == 1 and self.output_tuple is None


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
_GOOGLE_HEADERS = {"args": "param", "arguments": "param", "parameters": "param", "returns": "return", "return": "return"}


def parse_docstring(doc: str) -> dict[str, str]:
    """Descriptions by parameter name, plus 'return', from reST, Google or NumPy style."""
    out: dict[str, str] = {}
    lines = doc.splitlines()
    section = None
    current: str | None = None
    for i, raw in enumerate(lines):
        line = raw.strip()
        rest = _REST.match(line)
        if rest:
            kind, pname, text = rest.groups()
            current = "return" if kind.startswith("return") else pname
            out[current] = text.strip()
            section = None
            continue
        header = line.rstrip(":").lower()
        underline = i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"}
        if (line.endswith(":") or underline) and header in _GOOGLE_HEADERS:
            section, current = _GOOGLE_HEADERS[header], None
            continue
        if not line:
            current = None if section is None else current
            continue
        if set(line) == {"-"}:
            continue
        if section == "param":
            m = re.match(r"^(\w+)\s*(\([^)]*\))?\s*(:\s*(.*))?$", line)
            indent = len(raw) - len(raw.lstrip())
            if m and (m.group(3) or _numpy_style(lines, i)) and indent <= _section_indent(lines, i):
                current = m.group(1)
                out[current] = (m.group(4) or "").strip()
                continue
        if section == "return" and "return" not in out:
            out["return"] = line.split(":", 1)[1].strip() if re.match(r"^\w[\w\[\], .]*:\s", line) else line
            current = "return"
            continue
        if current and current in out:
            out[current] = (out[current] + " " + line).strip()
    return out


def _numpy_style(lines: list[str], i: int) -> bool:
    return ":" in lines[i] or (i + 1 < len(lines) and lines[i + 1].startswith((" ", "\t")) and bool(lines[i + 1].strip()))


def _section_indent(lines: list[str], i: int) -> int:
    """Indent of the first entry in the section that contains line ``i``."""
    j = i
    while j > 0 and lines[j - 1].strip() and lines[j - 1].strip().rstrip(":").lower() not in _GOOGLE_HEADERS and set(lines[j - 1].strip()) != {"-"}:
        j -= 1
    first = lines[j]
    return len(first) - len(first.lstrip())
