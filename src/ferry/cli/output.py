"""How the CLI writes: JSON for scripts (``--json`` / ``-o json``), plain columns when piped, colour only on a terminal.

Every read command takes ``--json`` (or ``-o json``): one JSON document on stdout, values in full.
Text output has no box characters; colour is used only when stdout (or stderr, for messages)
is a terminal and ``NO_COLOR`` is unset. ``-q`` silences the informational lines on stderr,
``-v`` adds detail (tracebacks of errors, debug logs).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable, Sequence, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

STATUS_COLORS = {"succeeded": "green", "cached": "green", "failed": "red", "running": "yellow", "queued": "cyan",
                 "retrying": "yellow", "aborted": "magenta", "lost": "magenta"}


@dataclass
class Verbosity:
    level: int = 0  # -1 quiet, 0 normal, 1+ verbose


verbosity = Verbosity()


def color_allowed(stream: Any = None) -> bool:
    """Colour only on a terminal, and never with NO_COLOR set (https://no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    stream = stream or sys.stdout
    return bool(getattr(stream, "isatty", lambda: False)())


def info(message: str, **style: Any) -> None:
    """An informational line on stderr (not with -q)."""
    if verbosity.level >= 0:
        click.secho(message, err=True, **style)


def debug(message: str) -> None:
    """A detail line on stderr, only with -v."""
    if verbosity.level > 0:
        click.secho(message, err=True, dim=True)


def status_text(status: str) -> str:
    """A status, coloured when stdout may be."""
    color = STATUS_COLORS.get(status)
    return click.style(status, fg=color) if color and color_allowed() else status


# ---- JSON --------------------------------------------------------------------------------------------

def _set_json(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    if value in (True, "json"):
        ctx.meta["ferry.json"] = True


def json_option(fn: F) -> F:
    """``--json`` and ``-o json|text``: the command writes one JSON document to stdout (see ``wants_json``)."""
    fn = click.option("-o", "--output", type=click.Choice(["text", "json"]), default=None, expose_value=False,
                      callback=_set_json, is_eager=True, help="Output format (json: one document, values in full).")(fn)
    return click.option("--json", is_flag=True, expose_value=False, callback=_set_json, is_eager=True,
                        help="Machine-readable JSON on stdout (same as -o json).")(fn)


def wants_json() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.meta.get("ferry.json"))


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=_json_default, ensure_ascii=False))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (dt.datetime, dt.date)):
        return obj.isoformat()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if isinstance(obj, bytes):
        import base64

        return base64.b64encode(obj).decode()
    return str(obj)


# ---- text ---------------------------------------------------------------------------------------------



def table(headers: Sequence[str], rows: Sequence[Sequence[str]], styles: dict[int, Callable[[str], str]] | None = None
          ) -> None:
    """Aligned columns separated by two spaces: no box characters, easy to cut and grep.
    ``styles`` colours a column's cells (after padding, so alignment holds) when colour is allowed."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    colored = color_allowed()

    def line(cells: Sequence[str], header: bool = False) -> str:
        out = []
        for i, cell in enumerate(cells):
            padded = cell.ljust(widths[i]) if i < len(cells) - 1 else cell
            if colored and header:
                padded = click.style(padded, bold=True)
            elif colored and styles and i in styles:
                padded = styles[i](padded)
            out.append(padded)
        return "  ".join(out).rstrip()

    click.echo(line(headers, header=True))
    for row in rows:
        click.echo(line(row))


def colored_status(cell: str) -> str:
    color = STATUS_COLORS.get(cell.strip())
    return click.style(cell, fg=color) if color else cell
