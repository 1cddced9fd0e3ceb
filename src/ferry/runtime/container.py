"""Tasks in any language: run a program with its inputs as files and turn the files it writes into outputs.

The program runs in the attempt's working folder with two folders beside it:

- ``inputs/NAME`` for each input: primitives as text (``true``/``false`` for bools, ISO 8601
  for datetimes), a File or Directory as the local copy itself, a data frame as CSV with a
  header, lists, dicts and dataclasses as JSON;
- ``outputs/NAME`` for each output, which the program writes in the same forms.

In the command, ``{{.inputs.NAME}}`` is replaced by the input's text (primitives) or path,
``{{.inputDir}}`` and ``{{.outputDir}}`` by the two folders. In a shell script (``sh -c SCRIPT``,
``bash -c``, ...) each is quoted for where it stands (bare, in "..." or in '...'), so a value is always
data, one word, never code: ``a; rm -rf ~`` or a file name with spaces stays what it is (inside
backticks, where ferry can't quote, a placeholder is an error: write ``$(...)``). In an
argument of any other program (no shell reads it) it stands as is. A program that exits non-zero
failed (a user error, retried as ``retries`` says); an output it didn't write, or wrote in a
form its type can't take, is a user error naming the output, what was expected and what was found.

``python -m ferry.runtime.container --interface B64 --inputs URI --output-prefix URI
--raw-output-prefix URI -- COMMAND...`` is what a pod runs: the spec carries the command
and the typed interface, so no Python code of the user's is needed anywhere.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from flyteidl.core import interface_pb2

from ferry.errors import FerryError, TypeMismatchError
from ferry.interface import Interface

STDERR_TAIL = 2000  # characters of a failed program's stderr shown in its error


class ProgramFailedError(Exception):
    """The program exited non-zero (a user error of the task)."""


def interface_from(typed: interface_pb2.TypedInterface) -> Interface:
    """A Python-side interface for a spec's typed interface (types as ferry reads them)."""
    from ferry.types.guess import python_type

    inputs = {name: python_type(v.type) for name, v in sorted(typed.inputs.variables.items())}
    outputs = {name: python_type(v.type) for name, v in sorted(typed.outputs.variables.items())}
    return Interface(inputs, outputs, {}, typed)


class Program:
    """A command run as a task: ``fn(**inputs)`` materializes the inputs, runs it, reads its outputs."""

    def __init__(self, name: str, command: list[str], interface: Interface) -> None:
        self.name = name
        self.command = command
        self.interface = interface

    def fn(self, **values: Any) -> Any:
        work = Path.cwd()
        inputs_dir, outputs_dir = work / "inputs", work / "outputs"
        inputs_dir.mkdir(exist_ok=True)
        outputs_dir.mkdir(exist_ok=True)
        placeholders = {"{{.inputDir}}": str(inputs_dir), "{{.outputDir}}": str(outputs_dir)}
        for name, value in values.items():
            placeholders[f"{{{{.inputs.{name}}}}}"] = _materialize(value, inputs_dir / name)
        script = shell_script_index(self.command)
        argv = [fill_script(arg, placeholders) if i == script else _fill(arg, placeholders)
                for i, arg in enumerate(self.command)]
        temp = work / "tmp"  # the program's temporary files go with the attempt's folder
        temp.mkdir(exist_ok=True)
        try:
            proc = subprocess.run(argv, stderr=subprocess.PIPE, text=True, errors="replace",
                                  env={**os.environ, "TMPDIR": str(temp)})
        except OSError as exc:
            raise ProgramFailedError(f"could not start {argv[0]!r}: {exc.strerror or exc}") from None
        sys.stderr.write(proc.stderr)  # kept in the attempt's logs like anything a task prints
        if proc.returncode != 0:
            tail = proc.stderr[-STDERR_TAIL:].strip()
            raise ProgramFailedError(f"{' '.join(argv)} exited with code {proc.returncode}" + (f": {tail}" if tail else ""))
        results = [_read_output(self.name, name, t, outputs_dir / name) for name, t in self.interface.outputs.items()]
        if not results:
            return None
        return results[0] if len(results) == 1 else tuple(results)


def _fill(arg: str, placeholders: dict[str, str]) -> str:
    for key, value in placeholders.items():
        arg = arg.replace(key, value)
    return arg


SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "busybox"})


def shell_script_index(command: list[str]) -> int | None:
    """Where the script of ``[env [VAR=value ...]] SHELL [options] -c SCRIPT ...`` is in ``command``; None for
    any other command (a script file, a program that is not a shell)."""
    i = 0
    if os.path.basename(command[0]) == "env":
        i = 1
        while i < len(command) and (command[i].startswith("-") or "=" in command[i]):
            i += 1
    if i >= len(command) or os.path.basename(command[i]) not in SHELLS:
        return None
    if os.path.basename(command[i]) == "busybox":  # busybox sh -c ...
        i += 1
        if i >= len(command) or command[i] not in SHELLS:
            return None
    i += 1
    c = False  # -c seen: the first argument that is not an option is the script
    while i < len(command):
        arg = command[i]
        if arg == "--":  # the end of the options
            return i + 1 if c and i + 1 < len(command) else None
        if arg in ("--rcfile", "--init-file") or (arg[:1] in ("-", "+") and arg[-1] in "oO" and len(arg) > 1):
            i += 2  # an option that takes a value: bash -euo pipefail -c ...
        elif arg.startswith("--"):  # --norc, --posix, ...
            i += 1
        elif len(arg) > 1 and arg[0] in "-+":
            c = c or (arg[0] == "-" and "c" in arg[1:])
            i += 1
        else:
            return i if c else None  # with -c the script; without, a script file: no shell text to quote in
    return None


def fill_script(script: str, placeholders: dict[str, str]) -> str:
    """``script`` with each placeholder replaced by its value quoted for the shell where it stands: bare (one
    word, ``shlex.quote``), inside "..." (``\\ " $ ` `` escaped) or inside '...' (``'`` closed, escaped, reopened),
    quoting starting over inside ``$(...)``. Words of safe characters only (numbers, plain paths) stand as they
    are, so ``$(( {{.inputs.n}} + 1 ))`` works. Inside backticks, where backslashes take another meaning, a
    placeholder is an error. Not followed: a ``case`` pattern's lone ``)`` inside ``$(...)``, here-documents
    and ``$'...'``; a value placed after one of those may be quoted for the wrong context."""
    import shlex

    out: list[str] = []
    quote = ""  # the quote the text at i is inside of: "", "'" or '"'
    nested: list[str] = []  # per open $( or ` : the quote it was opened in (its text starts unquoted); "(": a ( in it
    i = 0
    while i < len(script):
        if script.startswith("{{.", i):
            key = next((k for k in placeholders if script.startswith(k, i)), None)
            if key is not None:
                if any(n.startswith("`") for n in nested):
                    raise FerryError(f"the shell script uses {key} inside `...`, where ferry can't quote a value "
                                     "(backslashes and quotes take another meaning there); write $(...) instead.")
                value = placeholders[key]
                if quote == "'":
                    value = value.replace("'", "'\\''")
                elif quote == '"':
                    value = "".join("\\" + ch if ch in '\\"$`' else ch for ch in value)
                else:
                    value = shlex.quote(value)
                out.append(value)
                i += len(key)
                continue
        c = script[i]
        step = 2 if (c == "\\" or script.startswith("$(", i)) and quote != "'" else 1
        if c == "\\" and quote != "'":
            pass  # an escaped character: taken as it is, whatever it is
        elif quote == "" and c == "#" and (not i or script[i - 1] in " \t\n;&|()"):  # a comment, to the line's end
            end = script.find("\n", i)
            step = (len(script) if end < 0 else end) - i
        elif quote != "'" and script.startswith("$(", i):  # a command substitution: quoting starts over inside
            nested.append(quote)
            quote = ""
        elif quote != "'" and c == "`":
            if nested and nested[-1] == "`" + quote:
                quote = nested.pop()[1:]
            else:
                nested.append("`" + quote)
                quote = ""
        elif quote == "" and c == "(":
            nested.append("(")
        elif quote == "" and c == ")" and nested and not nested[-1].startswith("`"):
            opened = nested.pop()
            quote = "" if opened == "(" else opened
        elif quote == "" and c in "'\"":
            quote = c
        elif c == quote:
            quote = ""
        out.append(script[i:i + step])
        i += step
    return "".join(out)


def _materialize(value: Any, path: Path) -> str:
    """Write an input where the program finds it; returns what ``{{.inputs.NAME}}`` stands for."""
    from ferry.types.dataframes import frame_library, to_arrow
    from ferry.types.files import _Blob

    if isinstance(value, _Blob):
        local: str = os.fspath(value)  # fetched now
        os.symlink(local, path)
        return local
    if frame_library(type(value)) is not None:
        import csv

        import pyarrow as pa
        import pyarrow.csv as pcsv

        table = to_arrow(value)
        with open(path, "w", newline="") as fh:  # plain CSV, as shell tools expect: quoted only where needed
            csv.writer(fh).writerow(table.column_names)
        with open(path, "r+b") as fh:
            header = fh.seek(0, os.SEEK_END)
            try:
                pcsv.write_csv(table, fh, pcsv.WriteOptions(include_header=False, quoting_style="none"))
            except pa.ArrowInvalid:  # a value with a comma or a quote in it: start over, quoting
                fh.seek(header)
                fh.truncate()
                pcsv.write_csv(table, fh, pcsv.WriteOptions(include_header=False))
        return str(path)
    text = _as_text(value)
    path.write_text(text)
    return text if isinstance(value, (str, int, float, bool, dt.datetime, dt.date)) else str(path)


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return str(value.total_seconds())
    return json.dumps(_plain(value))


def _plain(value: Any) -> Any:
    """A value as JSON-able data: dataclasses and lists of them, Files by their path or URI."""
    from ferry.types.files import _Blob

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, _Blob):
        return os.fspath(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return value


def _read_output(task: str, name: str, python_type: Any, path: Path) -> Any:
    """The value the program wrote for output ``name``, as ``python_type``."""
    from ferry.types.dataframes import frame_library
    from ferry.types.engine import type_name
    from ferry.types.files import Directory, File
    from ferry.types.plain import parse_value

    expected = type_name(python_type)
    if not path.exists():
        raise TypeMismatchError(f"Task {task}: the program wrote no output {name!r}; it must write {expected} "
                                f"to {{{{.outputDir}}}}/{name} ({path}).")
    if isinstance(python_type, type) and issubclass(python_type, Directory):
        if not path.is_dir():
            raise TypeMismatchError(f"Task {task}: output {name!r} must be a folder ({expected}); {path} is a file.")
        return python_type(str(path))
    if path.is_dir():
        raise TypeMismatchError(f"Task {task}: output {name!r} must be a file ({expected}); {path} is a folder.")
    if isinstance(python_type, type) and issubclass(python_type, File):
        return python_type(str(path))
    library = frame_library(python_type)
    if library is not None:
        return _read_frame(task, name, path, library)
    text = path.read_text().strip()
    try:
        return parse_value(f"outputs/{name}", text, python_type)
    except FerryError as exc:
        shown = text if len(text) <= 80 else text[:77] + "..."
        raise TypeMismatchError(f"Task {task}: output {name!r} ({expected}) can't be read from what the program "
                                f"wrote, {shown!r}: {exc}") from None


def _read_frame(task: str, name: str, path: Path, library: str) -> Any:
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    from ferry.types.dataframes import from_arrow

    try:
        with open(path, "rb") as fh:
            parquet = fh.read(4) == b"PAR1"
        table = pq.read_table(path) if parquet else pcsv.read_csv(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow's ArrowInvalid and friends
        raise TypeMismatchError(f"Task {task}: output {name!r} is not a CSV (with a header) or parquet file: {exc}") from None
    return from_arrow(table, library)


def program_of(template: Any) -> Program:
    """The Program a ContainerTask's spec (its TaskTemplate) describes: the command after ``--``."""
    args = list(template.container.args)
    command = args[args.index("--") + 1:] if "--" in args else []
    return Program(template.id.name, command, interface_from(template.interface))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ferry.runtime.container", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True, help="the task's name, for messages")
    parser.add_argument("--interface", required=True, help="the task's TypedInterface, serialized, base64")
    parser.add_argument("--inputs", required=True)
    parser.add_argument("--output-prefix", required=True)
    parser.add_argument("--raw-output-prefix", required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the program and its arguments")
    args = parser.parse_args(argv)

    from ferry.layout import EXIT_CODES
    from ferry.runtime.execute import run_task

    typed = interface_pb2.TypedInterface()
    typed.ParseFromString(base64.b64decode(args.interface))
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    program = Program(args.name, command, interface_from(typed))
    return EXIT_CODES[run_task(program, args.inputs, args.output_prefix, args.raw_output_prefix, capture="fd")]


if __name__ == "__main__":
    sys.exit(main())
