"""``ferry run FILE [NAME] [--input value ...]``: list what a file defines, explain a workflow's inputs, run it.

``ferry run FILE`` lists the file's workflows and tasks with their inputs; ``ferry run FILE NAME
--help`` lists NAME's typed inputs with defaults and descriptions; ``ferry run FILE NAME --x 1``
runs it: a workflow is registered under a hash of its code and launched, a task is run as a
workflow of one node through the same path.
"""

from __future__ import annotations

import contextlib
import sys
from typing import TYPE_CHECKING, Any, Iterator

import click

from ferry.cli.output import emit_json, info, wants_json

if TYPE_CHECKING:
    from ferry.cli.inputs import Declared


def declared_of(obj: Any) -> Declared:
    """The inputs of a ``@workflow`` or ``@task`` object, with defaults and the docstring's descriptions."""
    import inspect

    from ferry.cli.inputs import Declared, default_text

    iface = obj.interface
    descriptions = {n: v.description for n, v in iface.typed.inputs.variables.items() if v.description}
    doc = inspect.getdoc(obj.fn) or ""
    summary = doc.split("\n\n", 1)[0].strip() if doc else ""
    return Declared(obj.name, dict(iface.inputs), {n: default_text(v) for n, v in iface.defaults.items()},
                    descriptions, summary)


def signature_text(obj: Any) -> str:
    from ferry.cli.inputs import default_text, pretty_type

    iface = obj.interface
    params = []
    for name, t in iface.inputs.items():
        text = f"{name}: {pretty_type(t)}"
        if name in iface.defaults:
            text += f" = {default_text(iface.defaults[name])}"
        params.append(text)
    outs = [pretty_type(t) for t in iface.outputs.values()]
    returns = "None" if not outs else outs[0] if len(outs) == 1 else f"({', '.join(outs)})"
    return f"({', '.join(params)}) -> {returns}"


def misplaced(argument: str | None, what: str) -> None:
    """An option where ``what`` (FILE, NAME) was expected: a global option after the command, or a typo."""
    if argument is None or not argument.startswith("-"):
        return
    from ferry.cli.main import cli

    if any(argument in p.opts or argument in p.secondary_opts for p in cli.params):
        raise click.UsageError(f"{argument} is an option of ferry itself: give it before the command, "
                               f"as in ferry {argument} {click.get_current_context().info_name} ... .")
    raise click.UsageError(f"expected {what}, got {argument!r}, which is not an option of this command "
                           "(see --help); inputs go after the names, as --input VALUE.")


def _find(file: str, module: Any, name: str) -> Any:
    """Workflow or task ``name`` of the file, or an error listing what it defines."""
    from ferry.errors import TaskLoadError
    from ferry.runtime.load import entities, kind_of

    obj = getattr(module, name, None)
    if kind_of(obj) in ("workflow", "task"):
        return obj
    found = sorted(n for n, o in entities(module).items() if kind_of(o) in ("workflow", "task"))
    if obj is not None:
        raise TaskLoadError(f"{file}:{name} is a {kind_of(obj) or type(obj).__name__}, not a workflow or task.")
    raise TaskLoadError(f"{file} has no workflow named {name!r} (nor a task). Defined there: "
                        f"{', '.join(found) or '(none)'}. `ferry run {file}` lists them with their inputs.")


def listing(file: str, module: Any) -> None:
    from ferry.runtime.load import entities, kind_of

    found = entities(module)
    rows = [(name, obj) for name, obj in found.items() if kind_of(obj) in ("workflow", "task")]
    if wants_json():
        emit_json([{"name": name, "kind": kind_of(obj), "qualified_name": obj.name,
                    "signature": signature_text(obj), **_interface_json(obj)} for name, obj in rows])
        return
    if not rows:
        click.echo(f"{file} defines no workflow or task.")
        return
    for kind, title in (("workflow", "Workflows"), ("task", "Tasks")):
        chosen = [(n, o) for n, o in rows if kind_of(o) == kind]
        if not chosen:
            continue
        click.echo(f"{title}:")
        width = max(len(n) for n, _ in chosen)
        for name, obj in chosen:
            doc = declared_of(obj).doc.splitlines()[0] if declared_of(obj).doc else ""
            click.echo(f"  {name.ljust(width)}  {signature_text(obj)}" + (f"  # {doc}" if doc else ""))
    example = next((n for n, o in rows if kind_of(o) == "workflow"), rows[0][0])
    click.echo(f"\nRun one: ferry run {file} {example} [--INPUT VALUE ...]   (--help lists its inputs)")


def _interface_json(obj: Any) -> dict[str, Any]:
    from ferry.cli.inputs import default_text
    from ferry.literals import type_text

    iface = obj.interface
    inputs = {}
    for name, var in iface.typed.inputs.variables.items():
        entry: dict[str, Any] = {"type": type_text(var.type), "description": var.description}
        if name in iface.defaults:
            entry["default"] = default_text(iface.defaults[name])
        inputs[name] = entry
    outputs = {name: type_text(var.type) for name, var in iface.typed.outputs.variables.items()}
    return {"inputs": inputs, "outputs": outputs}


def plan_of(wf: Any) -> Any:
    """The node plan of a workflow for the progress display (None when it can't be compiled here)."""
    from ferry.cli.progress import Plan
    from ferry.literals import Literal

    try:
        return Plan.of(wf.closure(lambda constant: Literal()))
    except Exception:  # noqa: BLE001 - progress works without a plan (its total then grows as nodes appear)
        return None


@contextlib.contextmanager
def ctrl_c(execution_id: str | None, nodes: Any = None) -> Iterator[None]:
    """Ctrl-C: exit 130, naming the execution and how to continue it. The node view is told first, so the
    attempts stopped on the way out are not reported as failures."""
    import signal
    import threading

    def interrupted(signum: int, frame: Any) -> None:
        if nodes is not None:
            nodes.stopping = True
        signal.default_int_handler(signum, frame)

    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, interrupted) if main else None
    try:
        yield
    except KeyboardInterrupt:
        recorded = execution_id is not None and _recorded(execution_id)
        if recorded:
            click.secho(f"\ninterrupted: execution {execution_id} aborted. Continue it (finished nodes are not run "
                        f"again) with:\n  ferry executions resume {execution_id}", err=True, fg="yellow")
        else:
            click.secho("\ninterrupted before the execution started.", err=True, fg="yellow")
        sys.exit(130)
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)


def _recorded(execution_id: str) -> bool:
    from ferry.cli.executions import records_of

    try:
        with records_of() as records:
            return bool(records.get_execution(execution_id).id == execution_id)
    except Exception:  # noqa: BLE001 - only for the message
        return False


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True}, add_help_option=False)
@click.argument("file", required=False)
@click.argument("name", required=False)
@click.option("--executor", default="inline", show_default=True, help="inline, process or dask.")
@click.option("--raw-output-prefix", default=None, help="Where this execution's offloaded data goes (any fsspec URL).")
@click.option("--max-parallel", default=8, show_default=True, help="How many ready nodes run at once.")
@click.option("--workers", default=None, type=int, help="Worker processes for --executor process / a local Dask cluster.")
@click.option("--dask-address", default=None, help="With --executor dask: tcp://host:port of an existing scheduler.")
@click.option("--fresh-processes", is_flag=True, help="With --executor process: a new process per task instead of warm workers.")
@click.option("--json", "as_json", is_flag=True, help="Print the execution (id, status, outputs) as JSON.")
@click.pass_context
def run(ctx: click.Context, file: str | None, name: str | None, executor: str, raw_output_prefix: str | None,
        max_parallel: int, workers: int | None, dask_address: str | None, fresh_processes: bool,
        as_json: bool) -> None:
    """Run workflow (or task) NAME from FILE with its inputs as --flags parsed by their declared types
    (or from --inputs-file inputs.json|yaml). Without NAME, list what FILE defines; with --help after
    NAME, list NAME's inputs."""
    from ferry.cli.inputs import INPUTS_FILE, parse_inputs, render_help, split_args
    from ferry.cli.main import executor_options, report
    from ferry.cli.progress import Display, NodeView
    from ferry.client import run as run_workflow
    from ferry.engine.execution import new_execution_id
    from ferry.runtime.load import kind_of, load_module

    if as_json:
        ctx.meta["ferry.json"] = True
    if file in ("--help", "-h"):  # (with unknown options let through for the inputs, click leaves --help to us)
        file, ctx.args = None, ["--help", *([name] if name else []), *ctx.args]
    elif name in ("--help", "-h"):
        name, ctx.args = None, ["--help", *ctx.args]
    misplaced(file, "FILE")
    pairs, inputs_file, wants_help = split_args(ctx.args)
    if file is None:
        click.echo(ctx.get_help())
        if not wants_help:
            ctx.exit(2)
        return
    module = load_module(file)
    if name is None:
        if wants_help:
            click.echo(ctx.get_help() + "\n")
        listing(file, module)
        return
    obj = _find(file, module, name)
    declared = declared_of(obj)
    if wants_help:
        usage = f"ferry run {file} {name} [OPTIONS] [--INPUT VALUE ...] [{INPUTS_FILE} FILE]"
        click.echo(render_help(declared, usage, ctx.command, ctx), nl=False)
        return
    values = parse_inputs(declared, pairs, inputs_file, ctx.command)
    wf = obj.as_workflow() if kind_of(obj) == "task" else obj
    options = executor_options(executor, workers, dask_address, fresh_processes)
    execution_id = new_execution_id()
    info(f"execution {execution_id}: {wf.name} ({executor})")
    nodes = NodeView(name, plan_of(wf))
    with ctrl_c(execution_id, nodes), Display(nodes):
        execution = run_workflow(wf, values, executor=executor, raw_output_prefix=raw_output_prefix,
                                 max_parallel=max_parallel, listener=nodes, executor_options=options,
                                 execution_id=execution_id)
    report(execution)
