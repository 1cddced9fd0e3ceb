"""``ferry``: a thin shell over the library. User mistakes print one line and exit non-zero."""

from __future__ import annotations

import sys
from typing import Any

import click

from ferry.errors import FerryError


class FerryGroup(click.Group):
    """Turns ferry errors into one readable line and exit code 1, no traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FerryError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(1)


@click.group(cls=FerryGroup)
@click.version_option(package_name="ferry")
def cli() -> None:
    """ferry: typed Python tasks and workflows; small values inline, large ones by reference."""


@cli.command()
@click.argument("file")
@click.argument("name")
def inspect(file: str, name: str) -> None:
    """Print the typed interface of task NAME in FILE (protobuf text format)."""
    from ferry.literals import to_text
    from ferry.sdk.loader import load_object
    from ferry.sdk.task import Task

    task = load_object(file, name, Task, "task")
    click.echo(f"# {task.name}")
    click.echo("interface {")
    for line in to_text(task.interface.typed).splitlines():
        click.echo("  " + line)
    click.echo("}")


def main() -> None:
    cli(prog_name="ferry")


if __name__ == "__main__":
    main()
