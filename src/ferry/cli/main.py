"""``ferry``: a thin shell over the library. User mistakes print one line and exit non-zero."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from ferry.cli.output import verbosity
from ferry.cli.remote import server_routing
from ferry.errors import DISTRIBUTION, FerryError


class FerryGroup(click.Group):
    """Turns ferry errors into one readable line and exit code 1 (with -v, the traceback too); Ctrl-C exits 130."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FerryError as exc:
            if verbosity.level > 0:
                import traceback

                traceback.print_exc()
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.secho("\ninterrupted", fg="yellow", err=True)
            sys.exit(130)


def _version() -> str:
    from ferry import __version__

    return __version__


@click.group(cls=server_routing(FerryGroup))
@click.option("--server", envvar="FERRY_SERVER", default=None, metavar="URL",
              help="A ferry server (`ferry serve`): launch, executions, workflows and launchplans then use its API "
                   "(its token from FERRY_SERVER_TOKEN). Default: $FERRY_SERVER.")
@click.option("-v", "--verbose", count=True, help="More detail: tracebacks of errors, debug logs (-vv: more).")
@click.option("-q", "--quiet", is_flag=True, help="Only results: no progress, no informational lines on stderr.")
@click.version_option(_version(), package_name=DISTRIBUTION, prog_name="ferry")
@click.pass_context
def cli(ctx: click.Context, server: str | None, verbose: int, quiet: bool) -> None:
    """ferry: typed Python tasks and workflows; small values inline, large ones by reference."""
    verbosity.level = -1 if quiet else verbose
    if os.environ.get("NO_COLOR"):
        ctx.color = False  # click's own colour (secho) too, not only rich's
    if verbose:
        import logging

        logging.basicConfig(level=logging.DEBUG if verbose > 1 else logging.INFO,
                            format="%(asctime)s %(name)s %(levelname)s %(message)s")


@cli.command()
@click.argument("file")
@click.argument("name")
def inspect(file: str, name: str) -> None:
    """Print the typed interface of task NAME in FILE (protobuf text format)."""
    from ferry.literals import to_text
    from ferry.runtime.load import load_object

    task = load_object(file, name, "task")
    click.echo(f"# {task.name}")
    click.echo("interface {")
    for line in to_text(task.interface.typed).splitlines():
        click.echo("  " + line)
    click.echo("}")


def executor_options(executor: str, workers: int | None, dask_address: str | None, fresh: bool) -> dict[str, Any]:
    if executor == "process":
        return {"workers": workers, "warm": not fresh}
    if executor == "dask":
        return {"address": dask_address} if dask_address else {"workers": workers or 2}
    return {}


def report(execution: Any) -> None:
    """Print an execution's outcome: outputs on success, the failing task's error (and exit 1) on failure."""
    from ferry.cli.output import emit_json, info, wants_json
    from ferry.literals import describe

    if wants_json():
        from ferry.server.values import meta_values

        emit_json({"id": execution.id, "status": execution.status, "error": execution.error,
                   "outputs": meta_values(execution.output_literals)})
        if execution.status != "succeeded":
            sys.exit(1)
        return
    color = "green" if execution.status == "succeeded" else "red"
    info(f"execution {execution.id} {execution.status}", fg=color)
    if execution.status != "succeeded":
        click.secho(f"error: {execution.error}", fg="red", err=True)
        click.echo(f"details: ferry executions show {execution.id}", err=True)
        sys.exit(1)
    for key in sorted(execution.output_literals.literals):
        click.echo(f"{key} = {describe(execution.output_literals.literals[key], 200)}")


def _add_subcommands() -> None:
    from ferry.cli.datasets import cache, datasets
    from ferry.cli.executions import executions
    from ferry.cli.pictures import graph
    from ferry.cli.registry import launch, launchplans, register, workflows
    from ferry.cli.run import run
    from ferry.cli.serve import serve

    for command in (run, executions, graph, datasets, cache, register, launch, workflows, launchplans, serve):
        cli.add_command(command)


_add_subcommands()


def main() -> None:
    cli(prog_name="ferry")


if __name__ == "__main__":
    main()
