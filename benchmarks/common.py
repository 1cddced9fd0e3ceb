"""Shared benchmark helpers: best-of-N timing, child processes, page-cache dropping, and the results table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Literal

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DROP_CACHES = "/proc/sys/vm/drop_caches"

Unit = Literal["s", "MiB/s", "MiB", "tasks/s", "count", "x"]


def best_of(fn: Callable[[], Any], repeat: int = 3) -> float:
    """The fastest of ``repeat`` runs, in seconds (the least disturbed by a noisy machine)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def paired_median(base: Sequence[float], other: Sequence[float]) -> float:
    """The median of base[i] / other[i] over runs made side by side (alternated): a second view of a ratio whose
    best-of-N can be set by one lucky run of the side that varies more."""
    import statistics

    return statistics.median(b / o for b, o in zip(base, other, strict=True))


def best_process_time(argv: list[str], repeat: int, env: dict[str, str] | None = None, cwd: str | None = None) -> float:
    """Best-of-``repeat`` wall time of a whole fresh process (interpreter start-up included)."""
    return best_of(lambda: subprocess.run(argv, check=True, env=env, cwd=cwd, stdout=subprocess.DEVNULL), repeat)


def run_child(code: str, env: dict[str, str] | None = None, python: str = sys.executable) -> dict[str, Any]:
    """Run ``code`` in a fresh Python; it fills the dict ``result``, to which its peak RSS is added."""
    wrapper = (
        "import json, resource, sys\n"
        "result = {}\n"
        f"{code}\n"
        "result['peak_rss_mib'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "print(json.dumps(result))\n"
    )
    proc = subprocess.run([python, "-c", wrapper], capture_output=True, text=True, env={**os.environ, **(env or {})},
                          cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def drop_page_cache(paths: Sequence[str | os.PathLike[str]]) -> str:
    """Evict files from the OS page cache before a cold measurement; return what was done, for the row's note.

    As root, ``drop_caches`` empties the whole page cache (after a sync, so dirty pages become droppable).
    Otherwise each regular file under ``paths`` (files or folders) gets ``POSIX_FADV_DONTNEED``, which drops
    its clean pages. Nothing else is touched, so a cold row without either says so.
    """
    os.sync()
    try:
        with open(DROP_CACHES, "w") as fh:
            fh.write("1\n")
        return "page cache dropped (drop_caches)"
    except OSError as exc:
        no_drop = f"drop_caches: {exc.strerror or exc}"
    if not hasattr(os, "posix_fadvise"):
        return f"page cache NOT dropped ({no_drop}; no posix_fadvise on this platform)"
    count, failed = 0, ""
    for path in _files(paths):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            failed = f"{path}: {exc.strerror}"
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            count += 1
        except OSError as exc:
            failed = f"{path}: {exc.strerror}"
        finally:
            os.close(fd)
    if failed:
        return f"page cache NOT dropped for every file ({no_drop}; fadvise on {count} files, failed on {failed})"
    if not count:
        return f"page cache NOT dropped ({no_drop}; no file to fadvise under {', '.join(str(p) for p in paths)})"
    return f"page cache dropped (fadvise, {count} files)"


def _files(paths: Iterable[str | os.PathLike[str]]) -> Iterable[str]:
    for path in (os.fspath(p) for p in paths):
        if os.path.isdir(path):
            for folder, _, names in os.walk(path):
                yield from (os.path.join(folder, name) for name in names
                            if os.path.isfile(os.path.join(folder, name)))
        elif os.path.isfile(path):
            yield path


@dataclass
class Row:
    """One measurement, machine-readable: numbers are numbers, in ``unit``; the texts only describe them.

    ``ratio`` is always ``value / baseline`` (both in ``unit``), so ``better`` tells which way both improve.
    A value of None means the row could not be measured; ``baseline_label`` or ``note`` says why.
    """

    suite: str
    benchmark: str
    value: float | None
    unit: Unit
    better: Literal["lower", "higher"] = "lower"
    baseline: float | None = None
    baseline_label: str = ""  # what the baseline is: "pickle", "flytekit local", "n/a (why)"
    target: str = ""
    met: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}

    @staticmethod
    def from_json(data: dict[str, Any]) -> Row:
        return Row(**{k: v for k, v in data.items() if k != "ratio"})


@dataclass
class Table:
    """The rows of one suite, printed as they come and as a table at the end."""

    suite: str
    rows: list[Row] = field(default_factory=list)

    def add(self, benchmark: str, value: float | None, unit: Unit, *, better: Literal["lower", "higher"] = "lower",
            baseline: float | None = None, baseline_label: str = "", target: str = "", met: bool | None = None,
            note: str = "") -> Row:
        row = Row(self.suite, benchmark, value, unit, better, baseline, baseline_label, target, met, note)
        self.rows.append(row)
        ratio = f" = {row.ratio:.2f}x" if row.ratio is not None else ""
        base = f" vs {baseline_label} {fmt(baseline, unit)}" if baseline is not None else \
            (f" vs {baseline_label}" if baseline_label else "")
        print(f"  {benchmark}: {fmt(value, unit)}{base}{ratio}", flush=True)
        return row

    def print(self) -> None:
        from rich.console import Console
        from rich.table import Table as RichTable
        from rich.text import Text

        table = RichTable(title=self.suite.replace("_", " "))
        for column in ("benchmark", "ferry", "baseline", "ratio", "target", "met", "note"):
            table.add_column(column, overflow="fold")
        for r in self.rows:
            met = "-" if r.met is None else ("yes" if r.met else "NO")
            baseline = " ".join(x for x in (r.baseline_label, fmt(r.baseline, r.unit) if r.baseline is not None else "")
                                if x)
            cells = (r.benchmark, fmt(r.value, r.unit), baseline, "-" if r.ratio is None else f"{r.ratio:.2f}x",
                     r.target, met, r.note)
            table.add_row(*(Text(c, style="bold red" if c == "NO" else "") for c in cells))  # Text: "[int]" is no markup
        Console(width=180).print(table)


def fmt(value: float | None, unit: str) -> str:
    """A number in its unit, for people."""
    if value is None:
        return "n/a"
    if unit == "s":
        return ms(value)
    if unit == "count":
        return f"{value:,.0f}"
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:,.0f} {unit}" if abs(value) >= 10 else f"{value:.2f} {unit}"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms" if seconds < 0.01 else f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"
