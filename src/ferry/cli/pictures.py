"""Pictures of workflows and runs: ``ferry graph`` (Mermaid, Graphviz dot, PNG) and ``ferry executions timeline``.

A workflow is drawn from its compiled spec (the ``CompiledWorkflowClosure`` the engine runs), so
what is drawn is what runs: task nodes, map nodes, branches with their arms, subworkflows as
boxes around their own nodes. A timeline is drawn from the records: one bar per task attempt,
from when it started to when it ended. PNGs are made by Graphviz (``dot``), when it is installed.
"""

from __future__ import annotations

import html
import re
import time
from dataclasses import dataclass, field
from typing import Any

import click

from ferry.errors import FerryError

STATUS_FILL = {"succeeded": "#7bc67b", "cached": "#9fd8e8", "failed": "#e57373", "running": "#ffd54f",
               "queued": "#b0bec5", "aborted": "#ce93d8", "lost": "#ce93d8", "retrying": "#ffb74d"}


class MissingToolError(FerryError):
    """A program a picture needs (Graphviz's dot) is not installed."""


# ---- workflow graphs --------------------------------------------------------------------------------

@dataclass
class Box:
    id: str
    label: str
    shape: str  # "task", "map", "branch", "arm", "io"
    cluster: str = ""  # the subworkflow box it is drawn in ("" for the top level)


@dataclass
class Drawing:
    title: str
    boxes: list[Box] = field(default_factory=list)
    edges: list[tuple[str, str, str]] = field(default_factory=list)  # (from, to, label)
    clusters: dict[str, str] = field(default_factory=dict)  # cluster id -> its label (the subworkflow)
    parents: dict[str, str] = field(default_factory=dict)  # cluster id -> the cluster it is in


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def drawing(closure: Any) -> Drawing:
    """The boxes and arrows of a compiled workflow closure."""
    from ferry.engine.bindings import START
    from ferry.engine.spec import Closure, key, node_kind, node_label, promise_refs

    spec = closure if isinstance(closure, Closure) else Closure(closure)
    primary = spec.primary
    out = Drawing(primary.template.id.name)
    inputs = ", ".join(primary.template.interface.inputs.variables) or "none"
    outputs = ", ".join(primary.template.interface.outputs.variables) or "none"
    out.boxes.append(Box("inputs", f"inputs: {inputs}", "io"))
    out.boxes.append(Box("outputs", f"outputs: {outputs}", "io"))

    def reads(node: Any) -> set[str]:
        return {ref for b in node.inputs for ref in promise_refs(b.binding)}

    def add_graph(graph: Any, prefix: str, cluster: str, entry: str, exit_: str, depth: int) -> None:
        for node_id, node in graph.nodes.items():
            path, kind = prefix + node_id, node_kind(node)
            if kind == "workflow" and depth < 20:
                sub = spec.workflows[key(node.workflow_node.sub_workflow_ref)]
                out.clusters[path] = f"{node_id}: {_short(sub.template.id.name)}"
                out.parents[path] = cluster
                box_in, box_out = f"{path}/inputs", f"{path}/outputs"
                out.boxes.append(Box(box_in, "in", "io", path))
                out.boxes.append(Box(box_out, "out", "io", path))
                add_graph(sub, path + "/", path, box_in, box_out, depth + 1)
                target = box_in
            else:
                label = f"{node_id}: {_short(node_label(node))}"
                shape = {"map": "map", "branch": "branch"}.get(kind, "task")
                if kind == "map":
                    label = f"{node_id}: map {_short(node.array_node.node.task_node.reference_id.name)}"
                out.boxes.append(Box(path, label, shape, cluster))
                target = path
                if kind == "branch":
                    _arms(out, node, path, cluster)
            ups = graph.upstream[node_id]
            out.edges.extend((prefix + up, target, "") for up in sorted(ups))
            if START in reads(node) or not ups:
                out.edges.append((entry, target, ""))
        for ref in sorted({ref for b in graph.template.outputs for ref in promise_refs(b.binding)}):
            out.edges.append((entry if ref == START else prefix + ref, exit_, ""))

    add_graph(primary, "", "", "inputs", "outputs", 0)
    # an arrow from a subworkflow leaves its "out" box (arrows into one go to its "in" box already)
    out.edges = list(dict.fromkeys((f"{src}/outputs" if src in out.clusters else src, dst, label)
                                   for src, dst, label in out.edges))
    return out


def _arms(out: Drawing, node: Any, path: str, cluster: str) -> None:
    from ferry.engine.spec import node_label

    block = node.branch_node.if_else
    arms = [("if", block.case.then_node)] + [("elif", arm.then_node) for arm in block.other]
    if block.HasField("else_node"):
        arms.append(("else", block.else_node))
    for i, (word, arm) in enumerate(arms):
        arm_id = f"{path}:{i}"
        out.boxes.append(Box(arm_id, f"{arm.id}: {_short(node_label(arm))}", "arm", cluster))
        out.edges.append((path, arm_id, word))
    if block.HasField("error"):
        arm_id = f"{path}:fail"
        out.boxes.append(Box(arm_id, f"fail: {block.error.message[:40]}", "arm", cluster))
        out.edges.append((path, arm_id, "else"))


def _ident(box_id: str) -> str:
    return "n_" + re.sub(r"[^A-Za-z0-9_]", "_", box_id)


def mermaid(d: Drawing) -> str:
    shapes = {"task": ('["', '"]'), "map": ('[["', '"]]'), "branch": ('{"', '"}'), "arm": ('("', '")'),
              "io": ('(["', '"])')}
    lines = ["flowchart LR"]

    def boxes_in(cluster: str, indent: str) -> None:
        for box in d.boxes:
            if box.cluster == cluster:
                left, right = shapes[box.shape]
                lines.append(f"{indent}{_ident(box.id)}{left}{box.label.replace(chr(34), '#quot;')}{right}")
        for sub, label in d.clusters.items():
            if d.parents.get(sub) == cluster:
                lines.append(f'{indent}subgraph {_ident(sub)} ["{label}"]')
                boxes_in(sub, indent + "  ")
                lines.append(f"{indent}end")

    boxes_in("", "  ")
    for src, dst, label in d.edges:
        arrow = f" -->|{label}| " if label else " --> "
        lines.append(f"  {_ident(src)}{arrow}{_ident(dst)}")
    return "\n".join(lines) + "\n"


def dot(d: Drawing) -> str:
    shapes = {"task": "box", "map": "box3d", "branch": "diamond", "arm": "box", "io": "oval"}
    lines = [f'digraph "{d.title}" {{', "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=11];',
             '  edge [fontname="Helvetica", fontsize=9];']

    def quote(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    def boxes_in(cluster: str, indent: str) -> None:
        for box in d.boxes:
            if box.cluster == cluster:
                style = ', style="rounded,dashed"' if box.shape == "arm" else (
                    ', style=filled, fillcolor="#eeeeee"' if box.shape == "io" else "")
                lines.append(f"{indent}{_ident(box.id)} [label={quote(box.label)}, shape={shapes[box.shape]}{style}];")
        for sub, label in d.clusters.items():
            if d.parents.get(sub) == cluster:
                lines.append(f"{indent}subgraph cluster_{_ident(sub)} {{")
                lines.append(f"{indent}  label={quote(label)}; style=rounded;")
                boxes_in(sub, indent + "  ")
                lines.append(f"{indent}}}")

    boxes_in("", "  ")
    for src, dst, label in d.edges:
        lines.append(f"  {_ident(src)} -> {_ident(dst)}" + (f" [label={quote(label)}]" if label else "") + ";")
    lines.append("}")
    return "\n".join(lines) + "\n"


def graphviz(source: str, target: str, engine: str = "dot", *extra: str) -> None:
    """Render Graphviz ``source`` to the PNG ``target``; a clear error when Graphviz isn't installed."""
    import shutil
    import subprocess

    program = shutil.which(engine)
    if program is None:
        raise MissingToolError(f"A PNG needs Graphviz's `{engine}` program, which is not installed here. Install "
                               "Graphviz (apt-get install graphviz, brew install graphviz), or use --format mermaid "
                               "or dot and render it elsewhere.")
    done = subprocess.run([program, *extra, "-Tpng", "-o", target], input=source.encode(), capture_output=True,
                          timeout=120)
    if done.returncode != 0:
        raise FerryError(f"Graphviz's {engine} failed to draw {target}: {done.stderr.decode(errors='replace')[:500]}")


@click.command()
@click.argument("file")
@click.argument("name")
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot", "png"]), default="mermaid", show_default=True,
              help="Mermaid and dot are text (to stdout, or --out); png is drawn by Graphviz's dot.")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default=None,
              help="Write to this file (default: stdout; NAME.png for png).")
def graph(file: str, name: str, fmt: str, out_file: str | None) -> None:
    """Draw workflow NAME of FILE from its compiled spec: tasks, maps, branches and subworkflows."""
    from ferry.cli.output import info
    from ferry.literals import Literal
    from ferry.runtime.load import load_object

    wf = load_object(file, name, "workflow")
    d = drawing(wf.closure(lambda constant: Literal()))  # constants don't change the picture: nothing is uploaded
    if fmt == "png":
        target = out_file or f"{name}.png"
        graphviz(dot(d), target)
        info(f"drew {wf.name} -> {target}")
        return
    text = mermaid(d) if fmt == "mermaid" else dot(d)
    if out_file:
        with open(out_file, "w") as fh:
            fh.write(text)
        info(f"drew {wf.name} -> {out_file}")
    else:
        click.echo(text, nl=False)


# ---- timelines --------------------------------------------------------------------------------------

@dataclass
class Bar:
    path: str
    label: str
    attempt: int  # 1-based
    status: str
    start: float  # seconds since the execution started
    end: float
    running: bool  # still running (end is now)
    detail: str = ""


def bars(rec: Any, nodes: list[Any]) -> list[Bar]:
    """One bar per task attempt, in start order, times relative to the execution's start."""
    now = time.time()
    origin = min([rec.started, *(n.started for n in nodes)]) if nodes else rec.started
    out = []
    for n in nodes:
        if n.kind != "task":
            continue
        running = n.ended is None
        end = (rec.ended or now) if running else n.ended
        out.append(Bar(n.path, _short(n.label), n.attempt + 1, n.status, n.started - origin, max(end, n.started) - origin,
                       running, n.detail or ""))
    return sorted(out, key=lambda b: (b.start, b.path, b.attempt))


def _span(rec: Any, bs: list[Bar]) -> float:
    ends = [b.end for b in bs] + ([float(rec.ended - rec.started)] if rec.ended else [])
    return max([*ends, 1e-3])


def timeline_text(rec: Any, bs: list[Bar], width: int | None = None) -> str:
    """A Gantt chart in text: one line per attempt."""
    import shutil

    from ferry.cli.output import STATUS_COLORS, color_allowed
    from ferry.units import duration

    if not bs:
        return f"execution {rec.id} {rec.workflow} {rec.status}: no task attempt recorded yet\n"
    total = _span(rec, bs)
    names = [f"{b.path} {b.label} #{b.attempt}" for b in bs]
    name_w = min(max(len(n) for n in names), 48)
    columns = width or shutil.get_terminal_size((100, 24)).columns
    chart_w = max(columns - name_w - 24, 10)
    fancy = color_allowed()
    full, empty = ("█", "·") if fancy else ("=", ".")
    lines = [f"execution {rec.id}  {rec.workflow}  {rec.status}  {duration(total)}",
             f"{'':{name_w}}  0{duration(total).rjust(chart_w - 1)}"]
    for name, b in zip(names, bs, strict=True):
        lo = int(b.start / total * chart_w)
        hi = max(int(b.end / total * chart_w), lo + 1)
        cells = empty * lo + full * (hi - lo) + empty * (chart_w - hi)
        if fancy:
            color = STATUS_COLORS.get(b.status)
            cells = cells[:lo] + click.style(cells[lo:hi], fg=color) + cells[hi:]
        status = b.status + ("…" if b.running else "")
        lines.append(f"{name[:name_w]:{name_w}}  {cells}  {status} {duration(b.end - b.start)}")
    return "\n".join(lines) + "\n"


def timeline_html(rec: Any, bs: list[Bar]) -> str:
    """A self-contained HTML page: one row per attempt, bars placed by time, details on hover."""
    from ferry.units import duration, when

    total = _span(rec, bs)
    rows = []
    for b in bs:
        left, span = 100 * b.start / total, max(100 * (b.end - b.start) / total, 0.3)
        tip = html.escape(f"{b.path} {b.label} attempt {b.attempt}: {b.status}, {duration(b.end - b.start)} "
                          f"(from +{b.start:.3f} s){' — ' + b.detail if b.detail else ''}")
        rows.append(f'<div class="row"><div class="name">{html.escape(b.path)} {html.escape(b.label)} '
                    f'#{b.attempt}</div><div class="lane"><div class="bar" title="{tip}" style="left:{left:.3f}%;'
                    f'width:{span:.3f}%;background:{STATUS_FILL.get(b.status, "#90a4ae")}"></div></div>'
                    f'<div class="took">{html.escape(b.status)} {duration(b.end - b.start)}</div></div>')
    title = html.escape(f"{rec.workflow} — {rec.id}")
    return ("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>" + title + "</title><style>"
            "body{font-family:system-ui,sans-serif;margin:2em}.row{display:flex;align-items:center;height:1.6em}"
            ".name{width:22em;overflow:hidden;white-space:nowrap;text-overflow:ellipsis;font-size:.9em}"
            ".lane{position:relative;flex:1;height:1.1em;background:#f3f3f3}.bar{position:absolute;top:0;bottom:0;"
            "border-radius:2px}.took{width:10em;padding-left:.6em;font-size:.85em;color:#555}</style></head><body>"
            f"<h1>{title}</h1><p>{html.escape(rec.status)}, started {when(rec.started)}, {duration(total)}, "
            f"{len(bs)} attempt(s)</p>\n" + "\n".join(rows) + "\n</body></html>\n")


def timeline_png(rec: Any, bs: list[Bar], target: str) -> None:
    """The chart as a PNG, laid out by hand and drawn by Graphviz (``neato -n2`` keeps the positions)."""
    from ferry.units import duration

    total = _span(rec, bs)
    chart_w, row_h, name_w = 600.0, 22.0, 260.0
    lines = ['digraph timeline {', '  node [fontname="Helvetica", fontsize=10, margin=0];']
    height = (len(bs) + 3) * row_h
    lines.append(f'  title [shape=plaintext, label="{rec.workflow} {rec.id}: {rec.status}, {duration(total)}", '
                 f'pos="{name_w + chart_w / 2},{height - row_h / 2}!"];')
    for i, b in enumerate(bs):
        y = height - (i + 2) * row_h
        x0 = name_w + chart_w * b.start / total
        w = max(chart_w * (b.end - b.start) / total, 2.0)
        name = f"{b.path} {b.label} #{b.attempt}".replace('"', "'")
        lines.append(f'  l{i} [shape=plaintext, label="{name}", pos="{name_w / 2},{y}!"];')
        lines.append(f'  b{i} [shape=box, style=filled, fillcolor="{STATUS_FILL.get(b.status, "#90a4ae")}", '
                     f'color="#555555", label="", fixedsize=true, width={w / 72:.4f}, height={row_h * 0.7 / 72:.4f}, '
                     f'pos="{x0 + w / 2},{y}!"];')
        lines.append(f'  t{i} [shape=plaintext, label="{b.status} {duration(b.end - b.start)}", '
                     f'pos="{name_w + chart_w + 60},{y}!"];')
    for i in range(5):  # a time axis under the bars
        x = name_w + chart_w * i / 4
        lines.append(f'  axis{i} [shape=plaintext, fontcolor="#555555", label="{duration(total * i / 4)}", '
                     f'pos="{x},{row_h / 2}!"];')
    lines.append("}")
    graphviz("\n".join(lines), target, "neato", "-n2")
