"""Dynamic workflows, tasks in any language, Flyte's packages: what each costs against its plainest twin.

- a ContainerTask (a shell one-liner) vs a Python task, per task, mapped on the process executor;
- a @dynamic task that generates N nodes vs the same N as a map, per node, inline;
- a Flyte package's two-task workflow launched on ferry vs flytekit's own local execution of it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import flytekit_env
from common import Table, run_child

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FLYTE_PROJECT = os.path.join(ROOT, "tests", "flows", "flyte", "fkwf.py")


def _child(code: str, home: str, env: dict[str, str] | None = None) -> dict:
    prelude = f"import sys, time; sys.path.insert(0, {HERE!r}); import ferry; from flows import *; from flows_polyglot import *\n"
    return run_child(prelude + code, env={"FERRY_HOME": home, **(env or {})})


BEST = """
def best(fn, repeat):
    out = []
    for _ in range(repeat):
        t = time.perf_counter(); e = fn(); out.append(time.perf_counter() - t)
        assert getattr(e, "status", "succeeded") == "succeeded", e.error
    return min(out)
"""


def programs(table: Table, home: str, n: int) -> None:
    r = _child(BEST + f"""
xs = list(range({n}))
result["python"] = best(lambda: ferry.run(map_python, {{"xs": xs}}, executor="process"), 2) / {n}
result["program"] = best(lambda: ferry.run(map_program, {{"xs": xs}}, executor="process"), 2) / {n}
""", home)
    table.add(f"ContainerTask per task, map of {n}, process executor", r["program"], "s", baseline=r["python"],
              baseline_label="Python task", note="a fresh process per program attempt; Python tasks run in warm workers")


def dynamic(table: Table, home: str, n: int) -> None:
    r = _child(BEST + f"""
xs = list(range({n}))
result["dynamic"] = best(lambda: ferry.run(dynamic_fan, {{"n": {n}}}), 3) / {n}
result["map"] = best(lambda: ferry.run(map_python, {{"xs": xs}}), 3) / {n}
""", home)
    table.add(f"@dynamic generating {n:,} nodes, per node, inline", r["dynamic"], "s", baseline=r["map"],
              baseline_label=f"map of {n:,}")


def flyte_package(table: Table, home: str) -> None:
    fk = flytekit_env.flytekit()
    if not fk.python:
        table.add("Flyte package, two tasks: ferry launch", None, "s", baseline_label=f"n/a ({fk.why})")
        return
    bin_dir = os.path.dirname(fk.python)
    with tempfile.TemporaryDirectory(prefix="ferry-bench-flyte-") as project:
        shutil.copy(FLYTE_PROJECT, os.path.join(project, "fkwf.py"))
        env = flytekit_env.env(project)
        subprocess.run([os.path.join(bin_dir, "pyflyte"), "--pkgs", "fkwf", "package", "--output", "pkg.tgz", "--force"],
                       cwd=project, env=env, check=True, capture_output=True)
        local = []
        for _ in range(3):  # flytekit's local execution of the same workflow, its import excluded
            out = subprocess.run([fk.python, "-c", "import time; from fkwf import wf; t = time.perf_counter(); wf(n=3); "
                                  "print(time.perf_counter() - t)"], cwd=project, env=env, check=True,
                                 capture_output=True, text=True)
            local.append(float(out.stdout.strip().splitlines()[-1]))
        r = _child(BEST + f"""
import os, subprocess
os.environ["PATH"] = {bin_dir!r} + os.pathsep + os.environ["PATH"]
os.environ["PYTHONPATH"] = {project!r}
subprocess.run([sys.executable, "-m", "ferry.cli.main", "register", {os.path.join(project, "pkg.tgz")!r}], check=True,
               capture_output=True)
result["ferry"] = best(lambda: ferry.launch("fkwf.wf", {{"n": 3}}, executor="process"), 3)
""", home)
    table.add("Flyte package, two tasks: ferry launch (process executor)", r["ferry"], "s", baseline=min(local),
              baseline_label="flytekit local execution",
              note="each task is a pyflyte-execute process (flytekit's import, ~1 s); flytekit local runs in-process")


def run(table: Table, quick: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="ferry-bench-polyglot-") as home:
        programs(table, home, 50 if quick else 200)
        dynamic(table, home, 200 if quick else 1000)
        flyte_package(table, home)
