"""``ferry``: a thin shell over the library. User mistakes print one line and exit non-zero."""

from __future__ import annotations

import sys
from typing import Any

import click

from ferry.cli.remote import server_routing
from ferry.errors import FerryError


class FerryGroup(click.Group):
    """Turns ferry errors into one readable line and exit code 1, no traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FerryError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(1)


@click.group(cls=server_routing(FerryGroup))
@click.option("--server", envvar="FERRY_SERVER", default=None, metavar="URL",
              help="A ferry server (`ferry serve`): launch, executions, workflows and launchplans then use its API "
                   "(its token from FERRY_SERVER_TOKEN). Default: $FERRY_SERVER.")
@click.version_option(package_name="ferry")
def cli(server: str | None) -> None:
    """ferry: typed Python tasks and workflows; small values inline, large ones by reference."""


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


@cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("file")
@click.argument("name")
@click.option("--executor", default="inline", show_default=True, help="inline, process or dask.")
@click.option("--raw-output-prefix", default=None, help="Where this execution's offloaded data goes (any fsspec URL).")
@click.option("--max-parallel", default=8, show_default=True, help="How many ready nodes run at once.")
@click.option("--workers", default=None, type=int, help="Worker processes for --executor process / a local Dask cluster.")
@click.option("--dask-address", default=None, help="With --executor dask: tcp://host:port of an existing scheduler.")
@click.option("--fresh-processes", is_flag=True, help="With --executor process: a new process per task instead of warm workers.")
@click.pass_context
def run(ctx: click.Context, file: str, name: str, executor: str, raw_output_prefix: str | None, max_parallel: int,
        workers: int | None, dask_address: str | None, fresh_processes: bool) -> None:
    """Run workflow NAME from FILE (registered under a hash of its code, then launched); its inputs are
    --flags parsed by their declared types."""
    from ferry.cli.progress import NodeProgress
    from ferry.client import run as run_workflow
    from ferry.runtime.load import load_object

    wf = load_object(file, name, "workflow")
    inputs = parse_inputs(wf.name, wf.interface.inputs, wf.interface.defaults, ctx.args)
    options = executor_options(executor, workers, dask_address, fresh_processes)
    with NodeProgress(name) as progress:
        execution = run_workflow(wf, inputs, executor=executor, raw_output_prefix=raw_output_prefix,
                                 max_parallel=max_parallel, listener=progress, executor_options=options)
    report(execution)


def executor_options(executor: str, workers: int | None, dask_address: str | None, fresh: bool) -> dict[str, Any]:
    if executor == "process":
        return {"workers": workers, "warm": not fresh}
    if executor == "dask":
        return {"address": dask_address} if dask_address else {"workers": workers or 2}
    return {}


def parse_inputs(owner: str, declared: dict[str, Any], defaults: Any, args: list[str]) -> dict[str, Any]:
    """``--name value`` pairs (or ``--name=value``) -> inputs, checked against the declared types."""
    from ferry.errors import TypeMismatchError
    from ferry.types.plain import parse_value

    values: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise TypeMismatchError(f"Unexpected argument {arg!r}; give inputs as --name value.")
        key, eq, text = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(args):
                raise TypeMismatchError(f"--{key} needs a value.")
            text, i = args[i + 1], i + 1
        name = key.replace("-", "_")
        if name not in declared:
            raise TypeMismatchError(f"{owner} has no input {key!r}; its inputs are: "
                                    + (", ".join(f"--{n}" for n in declared) or "(none)") + ".")
        values[name] = parse_value(key, text, declared[name])
        i += 1
    missing = [n for n in declared if n not in values and n not in defaults]
    if missing:
        raise TypeMismatchError(f"{owner} needs input(s) " + ", ".join(f"--{n}" for n in missing) + ".")
    return values


def report(execution: Any) -> None:
    """Print an execution's outcome: outputs on success, the failing task's error (and exit 1) on failure."""
    from ferry.literals import describe

    color = "green" if execution.status == "succeeded" else "red"
    click.secho(f"execution {execution.id} {execution.status}", fg=color, err=True)
    if execution.status != "succeeded":
        click.secho(f"error: {execution.error}", fg="red", err=True)
        click.echo(f"details: ferry executions show {execution.id}", err=True)
        sys.exit(1)
    for key in sorted(execution.output_literals.literals):
        click.echo(f"{key} = {describe(execution.output_literals.literals[key], 200)}")


def _add_subcommands() -> None:
    from ferry.cli.datasets import cache, datasets
    from ferry.cli.executions import executions
    from ferry.cli.registry import launch, launchplans, register, workflows
    from ferry.cli.serve import serve

    for command in (executions, datasets, cache, register, launch, workflows, launchplans, serve):
        cli.add_command(command)


_add_subcommands()


def main() -> None:
    cli(prog_name="ferry")


if __name__ == "__main__":
    main()
