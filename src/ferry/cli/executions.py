"""``ferry executions list|show|outputs|logs|report|timeline|resume``: every meta value of every execution.

Read commands open the records read-only (``ferry.engine.rows``: the standard library's sqlite3 for
the embedded SQLite database, so they start fast) and take ``--json``.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any, Iterator

import click

from ferry.cli.output import (
    colored_status,
    emit_json,
    info,
    json_option,
    status_text,
    table,
    wants_json,
)
from ferry.errors import redact
from ferry.units import duration, when

if TYPE_CHECKING:  # protobuf loads only for commands that read meta values, not for `executions list`
    from ferry.literals import Literal, LiteralMap


@contextlib.contextmanager
def records_of() -> Iterator[Any]:
    """The records, to read (see ``ferry.engine.rows.open_for_reading``)."""
    from ferry.config import active_settings
    from ferry.engine.rows import open_for_reading

    records = open_for_reading(active_settings().database_url)
    try:
        yield records
    finally:
        records.close()


def home_line() -> str:
    """Which home (and records) a read command shows, and what chose it."""
    from ferry.config import active_settings

    s = active_settings()
    why = {"default": "the per-user default", "FERRY_HOME": "from FERRY_HOME",
           "argument": "given"}.get(s.home_source, f"from {s.home_source}")
    line = f"home: {s.home} ({why})"
    if not s.database_url.startswith(f"sqlite:///{s.home}"):
        line += f"; records: {redact(s.database_url)}"
    local = os.path.abspath(".ferry")
    if os.path.isdir(local) and os.path.abspath(s.home) != local:
        line += (f"\nnote: {local} is another ferry home, not read here; to use it, set home = \".ferry\" in "
                 "this project's ferry.toml (or FERRY_HOME=.ferry)")
    return line


def _read_object(uri: str) -> bytes | None:
    from ferry.config import active_settings
    from ferry.errors import ObjectNotFoundError
    from ferry.storage import read_bytes

    try:
        return read_bytes(uri, active_settings().options_for(uri))
    except ObjectNotFoundError:
        return None


def _read_map(uri: str | None) -> LiteralMap | None:
    from ferry.literals import parse_literal_map

    data = _read_object(uri) if uri else None
    return None if data is None else parse_literal_map(data, uri or "")


def _exists(uri: str) -> bool:
    from ferry.config import active_settings
    from ferry.storage import exists

    return exists(uri, active_settings().options_for(uri), "metadata")


def value_json(lit: Literal) -> dict[str, Any]:
    """A meta value as JSON, in full: the API's form (``ferry.server.values.meta_value``), structs decoded."""
    from ferry.server.values import full_text, meta_value

    value = meta_value(lit)
    _decode_structs(value, lit)
    value["text"] = full_text(value)
    return value


def _decode_structs(value: dict[str, Any], lit: Literal) -> None:
    kind = lit.WhichOneof("value")
    if kind == "collection":
        for item, sub in zip(value.get("items", []), lit.collection.literals, strict=False):
            _decode_structs(item, sub)
    elif kind == "map":
        for name, item in value.get("items", {}).items():
            _decode_structs(item, lit.map.literals[name])
    elif kind == "scalar" and lit.scalar.WhichOneof("value") == "union":
        _decode_structs(value, lit.scalar.union.value)
    elif kind == "scalar" and lit.scalar.WhichOneof("value") == "binary" and lit.scalar.binary.tag == "msgpack":
        try:
            import msgpack

            value.update(kind="struct", value=msgpack.unpackb(lit.scalar.binary.value, raw=False,
                                                              strict_map_key=False))
        except Exception:  # noqa: BLE001 - not MessagePack after all: its size says enough
            pass


def map_json(lm: LiteralMap | None) -> dict[str, Any] | None:
    return None if lm is None else {name: value_json(lm.literals[name]) for name in sorted(lm.literals)}


def value_text(lit: Literal, full: bool) -> str:
    if not full:
        from ferry.literals import describe

        return describe(lit, 100)
    from ferry.server.values import full_text

    return full_text(value_json(lit))


# ---- the commands ------------------------------------------------------------------------------------

@click.group()
def executions() -> None:
    """Inspect and resume recorded executions."""


@executions.command("list")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1), help="How many executions to show.")
@json_option
def list_(limit: int) -> None:
    """Recent executions first, with status and duration (and which home they are in, on stderr)."""
    with records_of() as records:
        rows = records.list_executions(limit)
    if wants_json():
        emit_json([r.summary() for r in rows])
        return
    info(home_line())
    if not rows:
        click.echo("No executions yet. Start one with `ferry run FILE.py WORKFLOW`.")
        return
    table(("id", "workflow", "status", "started", "duration", "executor"),
          [(r.id, r.workflow, r.status, when(r.started), duration(r.duration), r.executor) for r in rows],
          styles={2: colored_status})


@executions.command()
@click.argument("execution_id", required=False)
@click.option("--traceback", "full_errors", is_flag=True, help="Show each error in full, with its traceback.")
@click.option("--full", is_flag=True, help="Show values in full (long lists, strings and structs are not shortened).")
@json_option
def show(execution_id: str | None, full_errors: bool, full: bool) -> None:
    """The node tree with statuses, and each node's input and output meta values (default: the latest)."""
    from ferry.layout import INPUTS, OUTPUTS, REPORT, ErrorInfo
    from ferry.storage import join

    with records_of() as records:
        rec = records.get_execution(execution_id)
        nodes = records.nodes(rec.id)
    reports = {(n.path, n.attempt): join(n.prefix, REPORT) for n in nodes
               if n.kind == "task" and n.prefix and _exists(join(n.prefix, REPORT))}
    if wants_json():
        out = rec.summary()
        out.update(metadata_prefix=rec.metadata_prefix, inputs=map_json(_read_map(rec.inputs_uri)),
                   outputs=map_json(_read_map(rec.outputs_uri)), nodes=[])
        for n in nodes:
            entry = {"path": n.path, "attempt": n.attempt + 1, "kind": n.kind, "label": n.label, "status": n.status,
                     "started": n.started, "ended": n.ended,
                     "duration": None if n.ended is None else n.ended - n.started, "detail": n.detail,
                     "error": redact(n.error) if n.error else None, "report": reports.get((n.path, n.attempt))}
            if n.kind == "task" and n.prefix:
                entry.update(inputs=map_json(n.meta(INPUTS, _read_object)),
                             outputs=map_json(n.meta(OUTPUTS, _read_object)))
            out["nodes"].append(entry)
        emit_json(out)
        return
    click.echo(f"execution {rec.id}  {rec.workflow}  {status_text(rec.status)}  {duration(rec.duration)}  "
               f"executor={rec.executor}")
    if rec.launch_plan:
        click.echo(f"  launch plan: {rec.launch_plan}")
    source = f"  (from the {rec.raw_output_source})" if rec.raw_output_source else ""
    click.echo(f"  metadata: {rec.metadata_prefix}\n  raw output prefix: {rec.raw_output_prefix}{source}")
    _show_map("inputs", _read_map(rec.inputs_uri), "  ", full)
    if rec.outputs_uri:
        _show_map("outputs", _read_map(rec.outputs_uri), "  ", full)
    if rec.error:
        click.secho(f"  error: {redact(rec.error)}", fg="red")
    for node in nodes:
        indent = "  " * (node.path.count("/") + 1)
        attempt = f" attempt {node.attempt + 1}" if node.kind == "task" else ""
        extra = f"  ({node.detail})" if node.detail else ""
        click.echo(f"{indent}{node.path.rsplit('/', 1)[-1]} [{node.kind}] {node.label}{attempt}: "
                   f"{status_text(node.status)} {duration((node.ended or 0) - node.started if node.ended else None)}"
                   f"{extra}")
        if node.kind == "task" and node.prefix:
            _show_map("inputs", node.meta(INPUTS, _read_object), indent + "  ", full)
            _show_map("outputs", node.meta(OUTPUTS, _read_object), indent + "  ", full)
        if (node.path, node.attempt) in reports:
            click.echo(f"{indent}  report: ferry executions report {rec.id} {node.path} --attempt {node.attempt + 1}")
        if node.error:
            text = node.error.rstrip() if full_errors else ErrorInfo(node.error).headline
            click.secho(f"{indent}  error: {redact(text)}", fg="red")


def _show_map(title: str, lm: LiteralMap | None, indent: str, full: bool = False) -> None:
    if lm is None:
        return
    if not lm.literals:
        click.echo(f"{indent}{title}: (none)")
        return
    click.echo(f"{indent}{title}:")
    for name in sorted(lm.literals):
        click.echo(f"{indent}  {name} = {value_text(lm.literals[name], full)}")


@executions.command()
@click.argument("execution_id", required=False)
@click.option("--download", "download_dir", type=click.Path(file_okay=False),
              help="Fetch every output into this folder: files, folders and frames as themselves, values as NAME.json.")
@click.option("--full", is_flag=True, help="Show values in full.")
@json_option
def outputs(execution_id: str | None, download_dir: str | None, full: bool) -> None:
    """Print an execution's outputs; with --download, fetch them too (offloaded values as their value)."""
    with records_of() as records:
        rec = records.get_execution(execution_id)
    lm = _read_map(rec.outputs_uri)
    if lm is None:
        raise click.ClickException(f"Execution {rec.id} has no outputs (status: {rec.status}).")
    downloaded = _download(lm, download_dir) if download_dir else {}
    if wants_json():
        values = map_json(lm) or {}
        for name, paths in downloaded.items():
            values[name]["downloaded"] = paths
        emit_json({"id": rec.id, "status": rec.status, "outputs": values})
        return
    _show_map("outputs", lm, "", full)
    for name, paths in downloaded.items():
        for line in paths:
            info(f"downloaded {name} -> {line}")


def _download(lm: LiteralMap, folder: str) -> dict[str, list[str]]:
    """Each output into ``folder``: references fetched (``NAME/...``), values written as ``NAME.json``."""
    import json

    from ferry.cli.progress import Display
    from ferry.server.values import plain

    done: dict[str, list[str]] = {}
    os.makedirs(folder, exist_ok=True)
    with Display() as display:
        for name in sorted(lm.literals):
            lit = _resolved(lm.literals[name])
            refs = list(_references(lit))
            if not refs:
                target = os.path.join(folder, f"{name}.json")
                with open(target, "w") as fh:
                    json.dump(plain(value_json(lit)), fh, indent=2, default=str)
                done[name] = [f"{target} (value)"]
                continue
            done[name] = []
            for i, (kind, uri, size) in enumerate(refs):
                base = uri.rstrip("/").rsplit("/", 1)[-1]
                target = os.path.join(folder, name if i == 0 else f"{name}-{i}", base)
                bar = display.transfer(f"{name} {base}", size)
                try:
                    _fetch(kind, uri, target)
                    bar.advance(size)
                finally:
                    bar.close()
                done[name].append(f"{target} ({kind})")
    return done


def _resolved(lit: Literal) -> Literal:
    """An offloaded literal read back from the raw store (``LiteralOffloadedMetadata``): the value it stands for."""
    if not lit.HasField("offloaded_metadata"):
        return lit
    from ferry.config import active_settings
    from ferry.literals import parse_literal
    from ferry.storage import read_bytes

    uri = lit.offloaded_metadata.uri
    data = read_bytes(uri, active_settings().options_for(uri, fallback="raw"), "raw")
    return _resolved(parse_literal(data, f"offloaded literal {uri}"))


def _references(lit: Literal) -> Iterator[tuple[str, str, int]]:
    """(kind, uri, size) of every reference in a literal: "file", "directory" or "dataframe"."""
    from flyteidl.core import types_pb2

    kind = lit.WhichOneof("value")
    size = int(lit.metadata["size"]) if lit.metadata.get("size", "").isdigit() else 0
    if kind == "collection":
        for item in lit.collection.literals:
            yield from _references(_resolved(item))
    elif kind == "map":
        for key in sorted(lit.map.literals):
            yield from _references(_resolved(lit.map.literals[key]))
    elif kind == "scalar":
        scalar = lit.scalar
        which = scalar.WhichOneof("value")
        if which == "blob":
            multi = scalar.blob.metadata.type.dimensionality == types_pb2.BlobType.MULTIPART
            yield ("directory" if multi else "file"), scalar.blob.uri, size
        elif which == "structured_dataset":
            yield "dataframe", scalar.structured_dataset.uri, size
        elif which == "union":
            yield from _references(_resolved(scalar.union.value))


def _fetch(kind: str, uri: str, target: str) -> None:
    from ferry.config import active_settings
    from ferry.storage import download_directory, download_file, list_files

    options = active_settings().options_for(uri, fallback="raw")
    if kind == "directory" or (kind == "dataframe" and list_files(uri, options)):
        download_directory(uri, target, options)
    else:
        download_file(uri, target, options)


@executions.command()
@click.argument("execution_id")
@click.argument("node", required=False)
@click.option("--attempt", type=int, default=None, help="Attempt number (1 is the first; default: every attempt).")
def logs(execution_id: str, node: str | None, attempt: int | None) -> None:
    """What each task attempt printed (stdout and stderr, the last MiB), for NODE or every node."""
    from ferry.config import active_settings
    from ferry.errors import ObjectNotFoundError
    from ferry.layout import LOGS
    from ferry.storage import join, read_bytes

    rec, chosen = _attempts(execution_id, node, attempt)
    options = active_settings().options_for(active_settings().metadata_url)
    for n in chosen:
        try:
            text = read_bytes(join(n.prefix or "", LOGS), options).decode(errors="replace")
        except ObjectNotFoundError:
            text = ""
        if node is None or attempt is None:
            click.secho(f"== {n.path} {n.label} attempt {n.attempt + 1}: {n.status}", bold=True)
        click.echo(redact(text.rstrip("\n")) if text else "(printed nothing)")


def _attempts(execution_id: str, node: str | None, attempt: int | None) -> tuple[Any, list[Any]]:
    from ferry.errors import FerryError

    with records_of() as records:
        rec = records.get_execution(execution_id)
        nodes = [n for n in records.nodes(rec.id) if n.kind == "task" and n.prefix]
    chosen = [n for n in nodes if (node is None or n.path == node) and (attempt is None or n.attempt + 1 == attempt)]
    if not chosen:
        known = ", ".join(sorted({n.path for n in nodes})) or "none"
        raise FerryError(f"Execution {rec.id} has no task attempt {node or ''}"
                         f"{f' attempt {attempt}' if attempt else ''}; its task nodes: {known}.")
    return rec, chosen


@executions.command()
@click.argument("execution_id")
@click.argument("node")
@click.option("--attempt", type=int, default=None, help="Attempt number (1 is the first; default: the last one).")
@click.option("--save", "save_to", type=click.Path(dir_okay=False), default=None,
              help="Write the report to this file instead of stdout.")
@click.option("--open", "open_it", is_flag=True,
              help="Open the report in a web browser (saved as reports/ID/NODE-attemptN.html in ferry's home).")
def report(execution_id: str, node: str, attempt: int | None, save_to: str | None, open_it: bool) -> None:
    """The HTML report task NODE attached to its attempt (ferry.reports.current_report())."""
    from ferry.config import active_settings
    from ferry.errors import FerryError, ObjectNotFoundError
    from ferry.layout import REPORT
    from ferry.storage import join, read_bytes

    rec, chosen = _attempts(execution_id, node, attempt)
    n = chosen[-1]
    uri = join(n.prefix or "", REPORT)
    try:
        data = read_bytes(uri, active_settings().options_for(uri), "metadata")
    except ObjectNotFoundError:
        raise FerryError(f"Node {node} of execution {rec.id} (attempt {n.attempt + 1}) attached no report. A task "
                         "attaches one with ferry.reports.current_report().add_html(...).") from None
    if open_it and not save_to:  # kept in the home for the browser, one file per attempt (not a new temp folder)
        folder = active_settings().home / "reports" / rec.id
        folder.mkdir(parents=True, exist_ok=True)
        save_to = str(folder / f"{node.replace('/', '_')}-attempt{n.attempt + 1}.html")
    if save_to:
        with open(save_to, "wb") as fh:
            fh.write(data)
        info(f"report of {rec.id} {node} attempt {n.attempt + 1} -> {save_to}")
        if open_it:
            import webbrowser

            webbrowser.open("file://" + os.path.abspath(save_to))
        return
    click.echo(data.decode(errors="replace"), nl=False)


@executions.command()
@click.argument("execution_id", required=False)
@click.option("--html", "html_file", type=click.Path(dir_okay=False), help="Write the timeline as an HTML page.")
@click.option("--png", "png_file", type=click.Path(dir_okay=False), help="Write the timeline as a PNG (needs Graphviz).")
@click.option("--width", type=int, default=None, help="Columns of the text chart (default: the terminal's).")
@json_option
def timeline(execution_id: str | None, html_file: str | None, png_file: str | None, width: int | None) -> None:
    """A Gantt chart of the execution's attempts, from the records: text here, or --html / --png to a file."""
    from ferry.cli import pictures

    with records_of() as records:
        rec = records.get_execution(execution_id)
        nodes = records.nodes(rec.id)
    bars = pictures.bars(rec, nodes)
    if wants_json():
        emit_json({"id": rec.id, "workflow": rec.workflow, "status": rec.status, "started": rec.started,
                   "ended": rec.ended, "attempts": [b.__dict__ for b in bars]})
        return
    if html_file:
        with open(html_file, "w") as fh:
            fh.write(pictures.timeline_html(rec, bars))
        info(f"timeline of {rec.id} -> {html_file}")
    if png_file:
        pictures.timeline_png(rec, bars, png_file)
        info(f"timeline of {rec.id} -> {png_file}")
    if not html_file and not png_file:
        click.echo(pictures.timeline_text(rec, bars, width), nl=False)


@executions.command()
@click.argument("execution_id")
@click.option("--executor", default=None, help="Executor to continue with (default: the original one).")
def resume(execution_id: str, executor: str | None) -> None:
    """Continue an execution whose engine stopped; completed nodes are not run again."""
    from ferry.cli.main import report as report_outcome
    from ferry.cli.progress import Display, NodeView
    from ferry.cli.run import ctrl_c
    from ferry.client import resume as resume_execution

    with records_of() as records:
        rec = records.get_execution(execution_id)
    nodes = NodeView(f"resume {rec.id}", _plan(rec))
    with ctrl_c(rec.id, nodes), Display(nodes):
        execution = resume_execution(rec.id, executor=executor, listener=nodes)
    report_outcome(execution)


def _plan(rec: Any) -> Any:
    from ferry.cli.progress import Plan
    from ferry.config import active_settings
    from ferry.engine.spec import parse_closure
    from ferry.layout import CLOSURE
    from ferry.storage import join, read_bytes

    uri = rec.closure_uri or join(rec.metadata_prefix, CLOSURE)
    try:
        return Plan.of(parse_closure(read_bytes(uri, active_settings().options_for(uri), "metadata"), uri))
    except Exception:  # noqa: BLE001 - progress works without a plan
        return None
