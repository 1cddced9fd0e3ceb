"""The CLI's one live display per process: an execution's nodes and every transfer, on stderr.

On a terminal, one rich ``Live`` redraws eight times a second (so the clock ticks while a task
runs): the nodes done out of the total with a bar, then what is queued and running with their own
clocks, then a bar per transfer in flight. Transfers report to it through ``ferry.progress``, so
bars and the node view never overwrite each other. Off a terminal (a pipe, a CI log), nothing is
redrawn: each node's state change is one line. ``-q`` shows neither.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import click

from ferry.cli.output import STATUS_COLORS, color_allowed, verbosity
from ferry.units import duration

COUNTED = ("task", "map", "branch", "dynamic")  # the kinds of node a run's progress counts (workflow nodes hold others)
DONE = ("succeeded", "cached", "failed", "aborted", "lost")
ACTIVE = ("running", "queued")
_ELEMENT = re.compile(r"^(.*)-(\d+)$")
SHOWN_RUNNING = 8


@dataclass
class Unit:
    path: str
    label: str
    kind: str
    status: str = "pending"
    since: float = field(default_factory=time.monotonic)  # when it entered its current status


@dataclass
class Plan:
    """What a workflow will run, from its compiled spec: the nodes progress counts, map nodes, branch arms."""

    units: dict[str, str] = field(default_factory=dict)  # path -> label
    maps: set[str] = field(default_factory=set)
    arms: dict[str, str] = field(default_factory=dict)  # an arm's path -> its branch's path

    @classmethod
    def of(cls, closure: Any) -> "Plan":
        """The plan of a ``CompiledWorkflowClosure`` (``ferry.engine.spec.Closure`` or its proto)."""
        from ferry.engine.spec import Closure, key, node_kind, node_label

        spec = closure if isinstance(closure, Closure) else Closure(closure)
        plan = cls()

        def walk(nodes: Any, prefix: str, depth: int) -> None:
            for node in nodes:
                path, kind = prefix + node.id, node_kind(node)
                if kind == "workflow" and depth < 20:
                    sub = spec.workflows.get(key(node.workflow_node.sub_workflow_ref))
                    if sub is not None:
                        walk(sub.nodes.values(), path + "/", depth + 1)
                    continue
                plan.units[path] = node_label(node)
                if kind == "map":
                    plan.maps.add(path)
                elif kind == "branch":
                    block = node.branch_node.if_else
                    arms = [a.then_node for a in [block.case, *block.other]]
                    if block.HasField("else_node"):
                        arms.append(block.else_node)
                    for arm in arms:
                        plan.arms[prefix + arm.id] = path

        walk(spec.primary.nodes.values(), "", 0)
        return plan


class NodeView:
    """A listener for the engine (``(path, kind, label, status, detail)``): what ran, runs and waits."""

    def __init__(self, title: str, plan: Plan | None = None) -> None:
        self.title = title
        self.plan = plan or Plan()
        self.known = plan is not None
        self.units: dict[str, Unit] = {p: Unit(p, label, "") for p, label in self.plan.units.items()}
        self.elements: dict[str, dict[str, Unit]] = {}  # map path -> its elements
        self.started = time.monotonic()
        self.lock = threading.Lock()
        self.display: Display | None = None
        self.stopping = False  # Ctrl-C: attempts stopped now are not failures worth a line

    def __call__(self, path: str, kind: str, label: str, status: str, detail: str) -> None:
        with self.lock:
            unit = self._unit(path, kind, label)
            changed = unit.status != status
            took = time.monotonic() - unit.since if unit.status in ACTIVE else None
            if changed:
                unit.status, unit.since = status, time.monotonic()
        if self.stopping:
            return
        if status in ("failed", "retrying") and kind == "task":
            headline = detail.splitlines()[0] if detail else ""
            self._say(f"{status}: {path} {label}{': ' + headline if headline else ''}",
                      fg="red" if status == "failed" else "yellow")
        elif changed and self.display is not None and not self.display.live and self._worth_a_line(path, kind):
            self._say(self._line(unit, detail, took), fg=STATUS_COLORS.get(status))

    def _unit(self, path: str, kind: str, label: str) -> Unit:
        element = _ELEMENT.match(path)
        if kind == "task" and element and element.group(1) in self.plan.maps | {p for p, u in self.units.items()
                                                                                if u.kind == "map"}:
            return self.elements.setdefault(element.group(1), {}).setdefault(path, Unit(path, label, kind))
        if path in self.plan.arms and kind != "branch":
            return self.elements.setdefault(self.plan.arms[path], {}).setdefault(path, Unit(path, label, kind))
        if kind not in COUNTED:
            return self.elements.setdefault("", {}).setdefault(path, Unit(path, label, kind))
        unit = self.units.setdefault(path, Unit(path, label, kind))
        unit.kind, unit.label = kind if unit.kind in ("", "task") else unit.kind, label or unit.label
        return unit

    def _worth_a_line(self, path: str, kind: str) -> bool:
        """Off a terminal: every counted node's change, not each map element's (failures are said anyway)."""
        return path in self.units

    def _line(self, unit: Unit, detail: str, took: float | None = None) -> str:
        extra = f" ({detail.splitlines()[0]})" if detail and unit.status not in ACTIVE else ""
        if took is not None and unit.status in DONE:
            extra = f" {duration(took)}{extra}"
        elements = self.elements.get(unit.path)
        if unit.kind == "map" and elements and unit.status in DONE:
            extra += f" ({len(elements)} elements)"
        return f"[{_clock(time.monotonic() - self.started)}] {unit.path} {unit.label}: {unit.status}{extra}"

    def _say(self, text: str, **style: Any) -> None:
        if verbosity.level < 0:
            return
        if self.display is not None:
            self.display.say(text, **style)
        else:
            click.secho(text, err=True, **style)

    # ---- what the live display draws ---------------------------------------------------------------

    def counts(self) -> tuple[int, int, int]:
        """(done, total, failed) over the counted nodes; the total grows as dynamic nodes appear."""
        with self.lock:
            units = list(self.units.values())
        done = sum(u.status in DONE for u in units)
        failed = sum(u.status == "failed" for u in units)
        return done, len(units), failed

    def active(self) -> list[Unit]:
        with self.lock:
            units = [u for u in self.units.values() if u.status in ACTIVE and u.kind != "map"]
            for group in self.elements.values():
                units.extend(u for u in group.values() if u.status in ACTIVE and u.kind == "task")
        return sorted(units, key=lambda u: (u.status != "running", u.since))

    def map_lines(self) -> list[str]:
        out = []
        with self.lock:
            for path, unit in self.units.items():
                if unit.kind != "map" or unit.status not in ACTIVE:
                    continue
                elements = list(self.elements.get(path, {}).values())
                done = sum(e.status in DONE for e in elements)
                running = sum(e.status == "running" for e in elements)
                out.append(f"  {path} map {unit.label}: {done} done, {running} running"
                           + (f", {sum(e.status == 'failed' for e in elements)} failed" if any(
                               e.status == "failed" for e in elements) else ""))
        return out

    def __rich__(self) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        done, total, failed = self.counts()
        head = Table.grid(padding=(0, 1))
        head.add_row(Text(self.title, style="bold"), ProgressBar(total=max(total, 1), completed=done, width=24),
                     Text(f"{done}/{total} nodes" + (f", {failed} failed" if failed else "")),
                     Text(_clock(time.monotonic() - self.started), style="cyan"))
        lines: list[Any] = [head]
        active = self.active()
        now = time.monotonic()
        for unit in active[:SHOWN_RUNNING]:
            mark, style = ("▶", "yellow") if unit.status == "running" else ("…", "dim")
            lines.append(Text(f"  {mark} {unit.path}  {unit.label}  {unit.status} {_clock(now - unit.since)}",
                              style=style))
        if len(active) > SHOWN_RUNNING:
            lines.append(Text(f"  … and {len(active) - SHOWN_RUNNING} more", style="dim"))
        lines.extend(Text(line, style="cyan") for line in self.map_lines())
        return Group(*lines)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class _TransferBar:
    def __init__(self, display: "Display", description: str, total: int) -> None:
        self.display = display
        self.task = display.transfers.add_task(description, total=total or None)

    def advance(self, nbytes: int) -> None:
        self.display.transfers.advance(self.task, nbytes)

    def set_total(self, nbytes: int) -> None:
        self.display.transfers.update(self.task, total=nbytes)

    def close(self) -> None:
        try:
            self.display.transfers.remove_task(self.task)
        except KeyError:
            pass


class Display:
    """The one live display of this process (on stderr, on a terminal): a node view and transfer bars.

    While open it is ``ferry.progress``'s sink, so transfers anywhere in this process draw here.
    Off a terminal (or with -q) nothing is drawn; the node view prints a line per state change.
    """

    def __init__(self, nodes: NodeView | None = None) -> None:
        self.nodes = nodes
        self.live: Any = None
        self.transfers: Any = None
        self._previous: Any = None
        if nodes is not None:
            nodes.display = self

    def __enter__(self) -> "Display":
        import ferry.progress as progress

        if sys.stderr.isatty() and verbosity.level >= 0:
            from rich.console import Console
            from rich.live import Live
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

            console = Console(stderr=True, no_color=not color_allowed(sys.stderr))
            self.transfers = Progress(TextColumn("  {task.description}"), BarColumn(), DownloadColumn(binary_units=True),
                                      TransferSpeedColumn(), console=console)
            self.live = Live(self, console=console, refresh_per_second=8, transient=True, redirect_stdout=False,
                             redirect_stderr=False)
            self.live.start()
            self._previous = progress.set_sink(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        import ferry.progress as progress

        if self.live is not None:
            self.live.stop()
            self.live = None
            progress.set_sink(self._previous)

    def transfer(self, description: str, total: int) -> Any:
        """A bar for one transfer (``ferry.progress.Transfer``); nothing is drawn off a terminal."""
        if self.transfers is None:
            from ferry.progress import Nothing

            return Nothing()
        return _TransferBar(self, description, total)

    def say(self, text: str, **style: Any) -> None:
        """A line above the live area (or on stderr)."""
        if self.live is not None:
            color = style.get("fg")
            self.live.console.print(text, style=color or None, highlight=False, markup=False)
        else:
            click.secho(text, err=True, **style)

    def __rich__(self) -> Any:
        from rich.console import Group

        parts: list[Any] = []
        if self.nodes is not None:
            parts.append(self.nodes)
        if self.transfers is not None and self.transfers.tasks:
            parts.append(self.transfers.get_renderable())
        return Group(*parts)
