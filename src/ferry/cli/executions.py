"""``ferry executions list|show|outputs|resume``: every meta value of every execution, from the CLI."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from typing import Any, Iterator

import click

from ferry.errors import redact
from ferry.layout import ErrorInfo
from ferry.literals import LiteralMap, describe, parse_literal_map


@contextlib.contextmanager
def records_of() -> Iterator[Any]:
    from ferry.config import active_settings
    from ferry.engine.records import Records

    records = Records(active_settings().database_url)
    try:
        yield records
    finally:
        records.close()


def _when(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _read_map(uri: str) -> LiteralMap | None:
    from ferry.config import active_settings
    from ferry.errors import ObjectNotFoundError
    from ferry.storage import read_bytes

    try:
        return parse_literal_map(read_bytes(uri, active_settings().options_for(uri)), uri)
    except ObjectNotFoundError:
        return None


@click.group()
def executions() -> None:
    """Inspect and resume recorded executions."""


@executions.command("list")
@click.option("--limit", default=20, show_default=True, help="How many executions to show.")
def list_(limit: int) -> None:
    """Recent executions first, with status and duration."""
    from rich.console import Console
    from rich.table import Table

    with records_of() as records:
        rows = records.list_executions(limit)
    table = Table("id", "workflow", "status", "started", "duration", "executor")
    for column in table.columns:
        column.no_wrap = True
    for r in rows:
        color = {"succeeded": "green", "failed": "red", "running": "yellow", "aborted": "magenta"}.get(r.status, "")
        table.add_row(r.id, r.workflow, f"[{color}]{r.status}[/]", _when(r.started), _duration(r.duration), r.executor)
    Console(width=max(120, Console().width)).print(table if rows else "No executions yet. Start one with `ferry run FILE.py WORKFLOW`.")


@executions.command()
@click.argument("execution_id", required=False)
@click.option("--traceback", "full_errors", is_flag=True, help="Show each error in full, with its traceback.")
def show(execution_id: str | None, full_errors: bool) -> None:
    """The node tree with statuses, and each node's input and output meta values (default: the latest)."""
    from ferry.layout import INPUTS, OUTPUTS
    from ferry.storage import join

    with records_of() as records:
        rec = records.get_execution(execution_id)
        nodes = records.nodes(rec.id)
    click.echo(f"execution {rec.id}  {rec.workflow}  {rec.status}  {_duration(rec.duration)}  executor={rec.executor}")
    if rec.launch_plan:
        click.echo(f"  launch plan: {rec.launch_plan}")
    source = f"  (from the {rec.raw_output_source})" if rec.raw_output_source else ""
    click.echo(f"  metadata: {rec.metadata_prefix}\n  raw output prefix: {rec.raw_output_prefix}{source}")
    _show_map("inputs", _read_map(rec.inputs_uri) if rec.inputs_uri else None, "  ")
    if rec.outputs_uri:
        _show_map("outputs", _read_map(rec.outputs_uri), "  ")
    if rec.error:
        click.secho(f"  error: {redact(rec.error)}", fg="red")
    for node in nodes:
        depth = node.path.count("/")
        indent = "  " * (depth + 1)
        attempt = f" attempt {node.attempt + 1}" if node.kind == "task" else ""
        extra = f"  ({node.detail})" if node.detail else ""
        color = {"succeeded": "green", "failed": "red", "running": "yellow"}.get(node.status)
        click.secho(f"{indent}{node.path.rsplit('/', 1)[-1]} [{node.kind}] {node.label}{attempt}: {node.status} "
                    f"{_duration((node.ended or 0) - node.started if node.ended else None)}{extra}", fg=color)
        if node.kind == "task" and node.prefix:
            _show_map("inputs", _read_map(join(node.prefix, INPUTS)), indent + "  ")
            _show_map("outputs", _read_map(join(node.prefix, OUTPUTS)), indent + "  ")
        if node.error:
            text = node.error.rstrip() if full_errors else ErrorInfo(node.error).headline
            click.secho(f"{indent}  error: {redact(text)}", fg="red")


def _show_map(title: str, lm: LiteralMap | None, indent: str) -> None:
    if lm is None:
        return
    if not lm.literals:
        click.echo(f"{indent}{title}: (none)")
        return
    click.echo(f"{indent}{title}:")
    for name in sorted(lm.literals):
        click.echo(f"{indent}  {name} = {describe(lm.literals[name], 100)}")


@executions.command()
@click.argument("execution_id", required=False)
@click.option("--download", "download_dir", type=click.Path(file_okay=False), help="Fetch offloaded outputs into this folder.")
def outputs(execution_id: str | None, download_dir: str | None) -> None:
    """Print an execution's outputs; with --download, fetch files, folders and frames too."""
    from ferry.config import active_settings
    from ferry.literals import references
    from ferry.storage import download_directory, download_file, list_files

    with records_of() as records:
        rec = records.get_execution(execution_id)
    lm = _read_map(rec.outputs_uri) if rec.outputs_uri else None
    if lm is None:
        raise click.ClickException(f"Execution {rec.id} has no outputs (status: {rec.status}).")
    _show_map("outputs", lm, "")
    if not download_dir:
        return
    settings = active_settings()
    for name in sorted(lm.literals):
        for i, uri in enumerate(references(lm.literals[name])):
            target = os.path.join(download_dir, name if i == 0 else f"{name}-{i}", uri.rstrip("/").rsplit("/", 1)[-1])
            options = settings.options_for(uri)
            if list_files(uri, options):
                download_directory(uri, target, options)
            else:
                download_file(uri, target, options)
            click.echo(f"downloaded {uri} -> {target}")


@executions.command()
@click.argument("execution_id")
@click.argument("node", required=False)
@click.option("--attempt", type=int, default=None, help="Attempt number (1 is the first; default: every attempt).")
def logs(execution_id: str, node: str | None, attempt: int | None) -> None:
    """What each task attempt printed (stdout and stderr, the last MiB), for NODE or every node."""
    from ferry.config import active_settings
    from ferry.errors import FerryError, ObjectNotFoundError
    from ferry.layout import LOGS
    from ferry.storage import join, read_bytes

    with records_of() as records:
        rec = records.get_execution(execution_id)
        nodes = [n for n in records.nodes(rec.id) if n.kind == "task" and n.prefix]
    chosen = [n for n in nodes if (node is None or n.path == node) and (attempt is None or n.attempt + 1 == attempt)]
    if not chosen:
        known = ", ".join(sorted({n.path for n in nodes})) or "none"
        raise FerryError(f"Execution {rec.id} has no task attempt {node or ''}"
                         f"{f' attempt {attempt}' if attempt else ''}; its task nodes: {known}.")
    options = active_settings().options_for(active_settings().metadata_url)
    for n in chosen:
        try:
            text = read_bytes(join(n.prefix or "", LOGS), options).decode(errors="replace")
        except ObjectNotFoundError:
            text = ""
        if node is None or attempt is None:
            click.secho(f"== {n.path} {n.label} attempt {n.attempt + 1}: {n.status}", bold=True)
        click.echo(redact(text.rstrip("\n")) if text else "(printed nothing)")


@executions.command()
@click.argument("execution_id")
@click.option("--executor", default=None, help="Executor to continue with (default: the original one).")
def resume(execution_id: str, executor: str | None) -> None:
    """Continue an execution whose engine stopped; completed nodes are not run again."""
    from ferry.cli.main import report
    from ferry.cli.progress import NodeProgress
    from ferry.client import resume as resume_execution

    with NodeProgress(f"resume {execution_id}") as progress:
        execution = resume_execution(execution_id, executor=executor, listener=progress)
    report(execution)
