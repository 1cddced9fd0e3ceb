"""Shared benchmark helpers: best-of-N timing, child-process RSS, and the results table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def best_of(fn: Callable[[], Any], repeat: int = 3) -> float:
    """The fastest of ``repeat`` runs, in seconds (the least disturbed by a noisy machine)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def run_child(code: str, env: dict[str, str] | None = None, python: str = sys.executable) -> dict[str, Any]:
    """Run ``code`` in a fresh Python; it prints one JSON line, to which its peak RSS is added."""
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


@dataclass
class Row:
    benchmark: str
    ferry: str
    baseline: str
    ratio: float | None
    target: str
    met: bool | None
    note: str = ""


@dataclass
class Table:
    rows: list[Row] = field(default_factory=list)

    def add(self, benchmark: str, ferry: str, baseline: str = "", ratio: float | None = None, target: str = "",
            met: bool | None = None, note: str = "") -> None:
        self.rows.append(Row(benchmark, ferry, baseline, ratio, target, met, note))
        row = self.rows[-1]
        print(f"  {row.benchmark}: {row.ferry}" + (f" vs {row.baseline}" if row.baseline else "")
              + (f" = {row.ratio:.2f}x" if row.ratio is not None else ""), flush=True)

    def print(self, title: str) -> None:
        from rich.console import Console
        from rich.table import Table as RichTable

        table = RichTable(title=title)
        for column in ("benchmark", "ferry", "baseline", "ratio", "target", "met", "note"):
            table.add_column(column, overflow="fold")
        for r in self.rows:
            met = "-" if r.met is None else ("yes" if r.met else "NO")
            table.add_row(r.benchmark, r.ferry, r.baseline, "-" if r.ratio is None else f"{r.ratio:.2f}x", r.target, met, r.note)
        Console(width=160).print(table)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms" if seconds < 0.01 else f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"
