"""Compiled specs: the per-task cost of launching a registered workflow, against ``ferry.run`` as it was before
the engine ran compiled specs (commit eff4bf4, checked out for the run); the engine's RSS and import set.

The "before" side runs the same workflows with the sources of that commit in a child process, so both sides are
measured on this machine, in this run. Without git history (a source tarball) those rows say n/a.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile

from common import ROOT, Table, paired_median, run_child

HERE = os.path.dirname(os.path.abspath(__file__))
BEFORE = "eff4bf4"  # the last commit whose engine walked live Python objects


def _old_sources(folder: str) -> str | None:
    """The src/ folder of commit BEFORE, extracted into ``folder``; None when the history isn't here."""
    archive = subprocess.run(["git", "-C", ROOT, "archive", BEFORE, "src"], capture_output=True)
    if archive.returncode != 0:
        return None
    subprocess.run(["tar", "-x", "-C", folder], input=archive.stdout, check=True)
    return os.path.join(folder, "src")


def _child(code: str, home: str, src: str | None = None) -> dict:
    path = [HERE] + ([src] if src else [])
    prelude = f"import sys, time; sys.path[:0] = {path!r}; import ferry\n"
    env = {"FERRY_HOME": home}
    if src:
        env["PYTHONPATH"] = os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])
    return run_child(prelude + code, env=env)


TIMING = """
def best(fn, repeat):
    out = []
    for _ in range(repeat):
        t = time.perf_counter(); e = fn(); out.append(time.perf_counter() - t)
        assert e.status == "succeeded", e.error
    return min(out)
"""


def per_task(table: Table, home: str, old_src: str | None, map_size: int, rounds: int) -> None:
    """Each side in a fresh child per round (best of two runs there: the first pays for first use), the two
    alternated; a row gives the median of the rounds (a best of three in one child per side swung the process map's
    ratio from 0.78x to 1.19x between two runs of the suite)."""
    register = "from ferry.cli.main import cli\ncli(['register', 'flows.py'], standalone_mode=False)\n"
    timed = f"""
{TIMING}
xs = list(range({map_size}))
for ex in ("inline", "process"):
    result[ex + "_chain"] = best(lambda: go("chain200", {{"x": 0}}), 2) / 200
    result[ex + "_map"] = best(lambda: go("map_reduce", {{"xs": xs}}), 2) / {map_size}
"""
    new_code = f"""
import os; os.chdir({HERE!r})
{register}
def go(name, inputs):
    return ferry.launch("flows." + name, inputs, executor=ex)
{timed}"""
    old_code = f"""
import flows
def go(name, inputs):
    return ferry.run(getattr(flows, name), inputs, executor=ex)
{timed}"""
    new: list[dict] = []
    old: list[dict] = []
    for _ in range(rounds):
        new.append(_child(new_code, home))
        if old_src:
            old.append(_child(old_code, home + "-before", old_src))
    label = f"ferry.run at {BEFORE}" if old_src else f"n/a (no git history for {BEFORE})"
    for executor in ("inline", "process"):
        for shape, key in (("chain of 200", "chain"), (f"map over {map_size:,}", "map")):
            values = [r[f"{executor}_{key}"] for r in new]
            bases = [r[f"{executor}_{key}"] for r in old]
            value, base = statistics.median(values), statistics.median(bases) if bases else None
            note = f"median of {rounds} rounds, alternated"
            if bases:
                note += (f"; per round {[round(v / b, 2) for v, b in zip(values, bases, strict=True)]}, "
                         f"their median {paired_median(values, bases):.2f}x")
            table.add(f"{shape}, {executor}: ferry.launch per task", value, "s", baseline=base, baseline_label=label,
                      target="not slower (<= 1.0x)", met=(value <= base * 1.0) if base else None, note=note)


def engine_footprint(table: Table, home: str, old_src: str | None) -> None:
    """Peak RSS and imports of the engine process running a workflow whose tasks use pandas."""
    new = _child(f"""
import os, subprocess
os.chdir({HERE!r})
subprocess.run([sys.executable, "-m", "ferry.cli.main", "register", "flows.py"], check=True, capture_output=True)
os.chdir("/")
e = ferry.launch("flows.frames", {{"n": 1000}}, executor="process")
assert e.status == "succeeded", e.error
result["pandas"] = "pandas" in sys.modules or "pyarrow" in sys.modules
result["user_code"] = "flows" in sys.modules
""", home)
    old: dict = {}
    if old_src:
        old = _child("""
from flows import frames
e = ferry.run(frames, {"n": 1000}, executor="process")
assert e.status == "succeeded", e.error
result["pandas"] = "pandas" in sys.modules
""", home + "-before", old_src)
    label = f"ferry.run at {BEFORE}" if old_src else "n/a"
    loaded = [name for name, yes in (("pandas/pyarrow", new["pandas"]), ("the user's module", new["user_code"])) if yes]
    table.add("engine peak RSS, pandas workflow on the process executor", new["peak_rss_mib"], "MiB",
              baseline=old.get("peak_rss_mib"), baseline_label=label,
              target="engine loads neither pandas nor the user's module", met=not loaded,
              note=("engine loaded " + ", ".join(loaded)) if loaded else
              "engine loaded neither pandas nor the user's module" + ("; before it loaded pandas" if old.get("pandas") else ""))


def run(table: Table, quick: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="ferry-bench-launch-") as scratch:
        old_src = _old_sources(scratch)
        home = os.path.join(scratch, "home")
        per_task(table, home, old_src, 200 if quick else 1000, 2 if quick else 4)
        engine_footprint(table, home, old_src)
