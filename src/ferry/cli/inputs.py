"""A workflow's inputs from the command line: ``--name value`` flags and ``--inputs-file``, parsed by declared type.

``ferry run`` (types from the code) and ``ferry launch`` (types from the registered launch plan)
share this. Each value goes through the type engine (``ferry.types.plain``), so any type with a
transformer can be given; an input that is ``Optional`` may be left out (it is None).
"""

from __future__ import annotations

import enum
import json
import os
import re
import typing
from dataclasses import dataclass, field
from typing import Any

import click

from ferry.errors import TypeMismatchError

INPUTS_FILE = "--inputs-file"


@dataclass
class Declared:
    """What a workflow (or launch plan, or task) takes: types, which have defaults, descriptions, its doc."""

    owner: str
    types: dict[str, Any]
    defaults: dict[str, str] = field(default_factory=dict)  # name -> the default, as text
    descriptions: dict[str, str] = field(default_factory=dict)
    doc: str = ""


def is_optional(python_type: Any) -> bool:
    from ferry.types.engine import strip_annotated

    base, _ = strip_annotated(python_type)
    return type(None) in typing.get_args(base)


def split_args(args: list[str]) -> tuple[dict[str, str], str | None, bool]:
    """``--name value`` / ``--name=value`` pairs, the ``--inputs-file`` path, and whether --help was asked."""
    pairs: dict[str, str] = {}
    inputs_file: str | None = None
    wants_help = False
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("--help", "-h"):
            wants_help, i = True, i + 1
            continue
        if not arg.startswith("--"):
            raise TypeMismatchError(f"Unexpected argument {arg!r}; give inputs as --name value.")
        key, eq, text = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(args):
                raise TypeMismatchError(f"--{key} needs a value.")
            text, i = args[i + 1], i + 1
        if f"--{key}" == INPUTS_FILE:
            inputs_file = text
        elif key in pairs:
            raise TypeMismatchError(f"--{key} is given twice ({pairs[key]!r} and {text!r}); give each input once "
                                    "(a list is one value: --xs '[1, 2]').")
        else:
            pairs[key] = text
        i += 1
    return pairs, inputs_file, wants_help


def read_inputs_file(path: str) -> dict[str, Any]:
    """A JSON or YAML object of input values (YAML needs PyYAML)."""
    try:
        with open(os.path.expanduser(path)) as fh:
            text = fh.read()
    except OSError as exc:
        raise TypeMismatchError(f"{INPUTS_FILE} {path}: {exc.strerror}.") from None
    if path.endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError:
            raise TypeMismatchError(f"{INPUTS_FILE} {path}: reading YAML needs PyYAML (pip install pyyaml); "
                                    "or give the inputs as JSON.") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise TypeMismatchError(f"{INPUTS_FILE} {path} is not valid YAML: {exc}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TypeMismatchError(f"{INPUTS_FILE} {path} is not valid JSON ({exc.msg}, line {exc.lineno}).") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise TypeMismatchError(f"{INPUTS_FILE} {path} must hold an object of input names to values, "
                                f"not a {type(data).__name__}.")
    return data


def parse_inputs(declared: Declared, pairs: dict[str, str], inputs_file: str | None,
                 command: click.Command | None = None) -> dict[str, Any]:
    """The inputs as Python values: the file's, then the flags' (which win); missing Optional ones are None.
    ``command``: the ferry command whose own options an input may be named like (they then go after ``--``)."""
    from ferry.types.plain import parse_value

    raw: dict[str, tuple[Any, bool]] = {}  # name -> (value, typed by a person)
    if inputs_file:
        for name, value in read_inputs_file(inputs_file).items():
            raw[name] = (value, False)
    for key, text in pairs.items():
        raw[key.replace("-", "_")] = (text, True)
    unknown = [n for n in raw if n not in declared.types]
    if unknown:
        raise TypeMismatchError(f"{declared.owner} has no input {unknown[0]!r}; its inputs are: "
                                + (", ".join(f"--{n}" for n in declared.types) or "(none)") + ".")
    values = {name: parse_value(name, value, declared.types[name], typed=typed)
              for name, (value, typed) in raw.items()}
    missing = []
    for name, python_type in declared.types.items():
        if name in values or name in declared.defaults:
            continue
        if is_optional(python_type):
            values[name] = None
        else:
            missing.append(name)
    if missing:
        taken = options_of(command)
        clashing = [n for n in missing if n in taken]
        hint = (f"; --{clashing[0]} is also an option of ferry's own, so inputs named like its options go after "
                f"--: ... -- --{clashing[0]} VALUE") if clashing else ""
        raise TypeMismatchError(f"{declared.owner} needs input(s) " + ", ".join(f"--{n}" for n in missing)
                                + f" (see --help, or give them in {INPUTS_FILE}){hint}.")
    return values


def options_of(command: click.Command | None) -> set[str]:
    """The names a command's own options take (``--max-parallel`` -> ``max_parallel`` as an input is spelt)."""
    if command is None:
        return set()
    return {opt[2:].replace("-", "_") for p in command.params if isinstance(p, click.Option) for opt in p.opts
            if opt.startswith("--")}


def type_hint(python_type: Any) -> str:
    """How a value of ``python_type`` is typed on the command line, for --help."""
    from ferry.types import default_engine
    from ferry.types.engine import strip_annotated

    base, _ = strip_annotated(python_type)
    try:
        name = default_engine().transformer_for(python_type).name
    except Exception:  # noqa: BLE001 - help must not fail on an odd type
        name = ""
    forms = {"bytes": "base64 or @FILE", "File": "path or URL", "Directory": "path or URL",
             "dataframe": "parquet/CSV path or URL", "ndarray": ".npy path or JSON list", "list": "JSON",
             "dict": "JSON", "struct": "JSON", "datetime": "ISO 8601", "date": "ISO 8601", "timedelta": "seconds"}
    shown = pretty_type(python_type)
    if isinstance(base, type) and issubclass(base, enum.Enum):
        return f"{shown}: {'|'.join(str(m.value) for m in base)}"
    form = forms.get(name)
    return f"{shown} ({form})" if form else shown


def pretty_type(python_type: Any) -> str:
    """A type as a reader writes it: ``File``, ``list[int]``, ``DataFrame`` (no module paths)."""
    from ferry.types.engine import type_name

    return re.sub(r"\b(?:[A-Za-z_]\w*\.)+([A-Za-z_]\w*)", r"\1", type_name(python_type))


def render_help(declared: Declared, usage: str, command: click.Command | None, ctx: click.Context) -> str:
    """--help of one workflow or task: its description, then each input with type, default and description."""
    formatter = ctx.make_formatter()
    formatter.write_usage(usage, "")
    if declared.doc:
        formatter.write_paragraph()
        with formatter.indentation():
            formatter.write_text(declared.doc)
    rows = []
    taken = options_of(command)
    clashing = [n for n in declared.types if n in taken]
    for name, python_type in declared.types.items():
        parts = [declared.descriptions.get(name, "")]
        if name in clashing:
            parts.append("[after --]")
        if name in declared.defaults:
            parts.append(f"[default: {declared.defaults[name]}]")
        elif is_optional(python_type):
            parts.append("[optional]")
        else:
            parts.append("[required]")
        rows.append((f"--{name} {type_hint(python_type)}", "  ".join(p for p in parts if p)))
    with formatter.section("Inputs"):
        formatter.write_dl(rows or [("(none)", "")])
    formatter.write_paragraph()
    formatter.write_text(f"Inputs may also come from {INPUTS_FILE} FILE (a JSON or YAML object); flags win.")
    if clashing:
        formatter.write_paragraph()
        formatter.write_text(", ".join(f"--{n}" for n in clashing) + " also name options of ferry's own below: "
                             "give inputs after --, as in ... --executor process -- " +
                             " ".join(f"--{n} VALUE" for n in clashing) + ".")
    if command is not None:
        options = [p.get_help_record(ctx) for p in command.get_params(ctx) if isinstance(p, click.Option)]
        with formatter.section("Options"):
            formatter.write_dl([o for o in options if o])
    return formatter.getvalue()


def default_text(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
