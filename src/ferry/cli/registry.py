"""``ferry register``, ``ferry launch``, ``ferry workflows list``, ``ferry launchplans list``."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import click

from ferry.cli.output import json_option


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("file")
@click.option("--version", "version", default=None, help="Version to register under (default: a hash of the code).")
@click.option("--raw-output-prefix", default=None,
              help="Default raw-output prefix for the launch plans registered without their own.")
def register(file: str, version: str | None, raw_output_prefix: str | None) -> None:
    """Register every task, workflow and launch plan in FILE (a Python file or module, or a Flyte package
    made by `pyflyte --pkgs MODULE package`) under a version."""
    from ferry.client import register as register_bundle
    from ferry.config import as_url
    from ferry.engine.package import is_package, package_version, read_package

    raw = as_url(raw_output_prefix) if raw_output_prefix else None
    if is_package(file):
        chosen = version or package_version(file)
        package = read_package(file, chosen)
        report = register_bundle(lambda convert: package, raw_output_prefix=raw)
    else:
        from ferry.errors import FerryError
        from ferry.runtime.load import entities, load_module
        from ferry.sdk.compile import bundle, code_version

        found = list(entities(load_module(file)).values())
        if not found:
            raise FerryError(f"{file} defines no task, workflow or launch plan; nothing to register.")
        chosen = version or code_version(found, *([raw] if raw else []))
        report = register_bundle(lambda convert: bundle(found, chosen, convert), raw_output_prefix=raw,
                                 skip_if_registered=version is None)
    for line in report.registered:
        click.echo(f"registered {line}")
    for line in report.unchanged:
        click.echo(f"unchanged  {line}")
    click.echo(f"version {chosen}: {len(report.registered)} registered, {len(report.unchanged)} already there", err=True)


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True}, add_help_option=False)
@click.argument("name", required=False)
@click.option("--executor", default="inline", show_default=True, help="inline, process or dask.")
@click.option("--raw-output-prefix", default=None, help="Where this execution's offloaded data goes (overrides the launch plan's).")
@click.option("--max-parallel", default=8, show_default=True, help="How many ready nodes run at once.")
@click.option("--workers", default=None, type=int, help="Worker processes for --executor process / a local Dask cluster.")
@click.option("--dask-address", default=None, help="With --executor dask: tcp://host:port of an existing scheduler.")
@click.option("--fresh-processes", is_flag=True, help="With --executor process: a new process per task.")
@click.option("--json", "as_json", is_flag=True, help="Print the execution (id, status, outputs) as JSON.")
@click.pass_context
def launch(ctx: click.Context, name: str | None, executor: str, raw_output_prefix: str | None, max_parallel: int,
           workers: int | None, dask_address: str | None, fresh_processes: bool, as_json: bool) -> None:
    """Launch registered launch plan NAME[@VERSION]; its inputs are --flags (or --inputs-file inputs.json|yaml)
    parsed by their registered types. NAME --help lists them."""
    from ferry.cli.inputs import INPUTS_FILE, parse_inputs, render_help, split_args
    from ferry.cli.main import executor_options, report
    from ferry.cli.output import info
    from ferry.cli.progress import Display, NodeView, Plan
    from ferry.cli.run import ctrl_c, misplaced
    from ferry.client import start_launch
    from ferry.engine.execution import prepare

    if as_json:
        ctx.meta["ferry.json"] = True
    if name in ("--help", "-h"):  # (with unknown options let through for the inputs, click leaves --help to us)
        name, ctx.args = None, ["--help", *ctx.args]
    misplaced(name, "NAME")
    pairs, inputs_file, wants_help = split_args(ctx.args)
    if name is None:
        click.echo(ctx.get_help())
        if not wants_help:
            ctx.exit(2)
        return
    plan, _, version = name.partition("@")
    launch_ = prepare(plan, version or None, raw_output_prefix=raw_output_prefix)
    declared = declared_of_launch(launch_)
    if wants_help:
        launch_.records.close()
        usage = f"ferry launch {name} [OPTIONS] [--INPUT VALUE ...] [{INPUTS_FILE} FILE]"
        click.echo(render_help(declared, usage, ctx.command, ctx), nl=False)
        return
    try:
        launch_.refuse_fixed(k.replace("-", "_") for k in pairs)
        values = parse_inputs(declared, pairs, inputs_file, ctx.command)
    except BaseException:
        launch_.records.close()
        raise
    info(f"execution {launch_.id}: {launch_.name}, raw output under {launch_.raw_output_prefix} "
         f"(from the {launch_.raw_output_source})")
    nodes = NodeView(plan, Plan.of(launch_.closure))
    with ctrl_c(launch_.id, nodes), Display(nodes):
        execution = start_launch(launch_, values, executor=executor, max_parallel=max_parallel, listener=nodes,
                                 executor_options=executor_options(executor, workers, dask_address, fresh_processes))
    report(execution)


def declared_of_launch(launch_: Any) -> Any:
    """A launch plan's inputs (fixed ones excluded), typed by the registered spec alone."""
    from ferry.cli.inputs import Declared
    from ferry.client import input_types
    from ferry.literals import describe

    params = launch_.launch_plan.spec.default_inputs.parameters
    return Declared(launch_.name, input_types(launch_),
                    {n: describe(p.default, 60) for n, p in params.items() if p.HasField("default")},
                    {n: p.var.description for n, p in params.items() if p.var.description})


def _listing(kind: str) -> None:
    from ferry.cli.executions import records_of
    from ferry.cli.output import emit_json, wants_json

    with records_of() as records:
        rows = records.registrations(kind)
    grouped: dict[str, list[Any]] = {}
    for row in rows:
        grouped.setdefault(row.name, []).append(row)
    entries = []
    for name in sorted(grouped):
        newest = grouped[name][0]
        interface = json.loads(newest.interface or "{}")
        entries.append({"name": name, "version": newest.version, "versions": [r.version for r in grouped[name]],
                        "registered": dt.datetime.fromtimestamp(newest.created).isoformat(timespec="seconds"),
                        **interface})
    if wants_json():
        emit_json(entries)
        return
    if not entries:
        click.echo(f"No {kind}s registered yet. Register a file with `ferry register FILE.py`.")
    for e in entries:
        more = f" (+{len(e['versions']) - 1} older)" if len(e["versions"]) > 1 else ""
        click.echo(f"{e['name']}  @{e['version']}{more}  registered {e['registered']}")
        inputs = ", ".join(f"{k}: {v}" for k, v in e.get("inputs", {}).items()) or "none"
        click.echo(f"    inputs: {inputs}")
        if e.get("fixed"):
            click.echo(f"    fixed: {', '.join(e['fixed'])}")
        if e.get("outputs"):
            click.echo(f"    outputs: {', '.join(f'{k}: {v}' for k, v in e['outputs'].items())}")
        if e.get("workflow"):
            click.echo(f"    workflow: {e['workflow']}")


@click.group()
def workflows() -> None:
    """Registered workflows."""


@workflows.command("list")
@json_option
def list_workflows() -> None:
    """Every registered workflow: newest version, typed inputs and outputs."""
    _listing("workflow")


@click.group()
def launchplans() -> None:
    """Registered launch plans."""


@launchplans.command("list")
@json_option
def list_launchplans() -> None:
    """Every registered launch plan: newest version, its workflow, typed inputs (with defaults) and fixed inputs."""
    _listing("launch plan")
