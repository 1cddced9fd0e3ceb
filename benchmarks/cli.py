"""The command line as a new user meets it: time to first success on a fresh clone (``scripts/quickstart``),
``ferry --help``, ``ferry executions list`` with 1,000 executions (and list / show with 10,000), and ``ferry run``'s overhead on a 1-task
workflow. Every command is a whole fresh process (interpreter start-up included), as a person runs it; each
row's baseline is measured in the same run: ``python -c pass``, a bare sqlite3 query, the task's function
called by plain Python, a venv with ferry's dependencies and nothing else.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import tomllib

from common import ROOT, Table, best_of

EXECUTIONS = 1000
FLOW = '''
from ferry import task, workflow


@task
def double(x: int) -> int:
    return 2 * x


@workflow
def once(x: int = 1) -> int:
    return double(x=x)
'''


def best_process_time(argv: list[str], repeat: int, env: dict[str, str], cwd: str | None = None) -> float:
    """Best-of-``repeat`` wall time of a whole fresh process; what it prints (stdout and stderr) is dropped."""
    return best_of(lambda: subprocess.run(argv, check=True, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL), repeat)


def _env(home: str) -> dict[str, str]:
    return {**os.environ, "FERRY_HOME": home, "NO_COLOR": "1"}


def ferry(*args: str) -> list[str]:
    return [sys.executable, "-m", "ferry.cli.main", *args]


def fill_records(home: str, count: int, nodes: int = 3) -> str:
    """``count`` finished executions of ``nodes`` nodes each in ``home``'s records; the database's path."""
    from ferry.engine.records import ExecutionRecord, Records

    url = f"sqlite:///{home}/ferry.db"
    records = Records(url)
    try:
        now = time.time() - count
        for i in range(count):
            execution_id = f"2026010100{i:04d}-{i:06x}"
            records.create_execution(ExecutionRecord(
                execution_id, "bench.wf", "bench.wf@v1", "succeeded", now + i, now + i + 0.5,
                f"file://{home}/metadata/{execution_id}", f"file://{home}/raw", "inline", None, None, None,
                "bench.wf@v1", "settings"))
            for n in range(nodes):
                records.node(execution_id, f"n{n}", 0, "task", "bench.step", "succeeded")
    finally:
        records.close()
    return f"{home}/ferry.db"


def startup(table: Table, home: str, repeat: int) -> float:
    env = _env(home)
    bare = best_process_time([sys.executable, "-c", "pass"], repeat, env=env)
    value = best_process_time(ferry("--help"), repeat, env=env)
    table.add("ferry --help", value, "s", baseline=bare, baseline_label="python -c pass", target="< 0.5 s",
              met=value < 0.5)
    return value


def listing(table: Table, home: str, help_time: float, repeat: int) -> None:
    env = _env(home)
    db = fill_records(home, EXECUTIONS)
    query = ("import sqlite3; c = sqlite3.connect(%r); "
             "c.execute('SELECT * FROM executions ORDER BY started DESC LIMIT 20').fetchall()" % db)
    bare = best_process_time([sys.executable, "-c", query], repeat, env=env)
    value = best_process_time(ferry("executions", "list"), repeat, env=env)
    note = f"{EXECUTIONS:,} executions of 3 nodes in SQLite; the newest 20 listed"
    table.add(f"ferry executions list, {EXECUTIONS:,} executions", value, "s", baseline=help_time,
              baseline_label="ferry --help", target="<= 2x ferry --help", met=value <= 2 * help_time, note=note)
    table.add(f"ferry executions list, {EXECUTIONS:,} executions (vs a bare query)", value, "s", baseline=bare,
              baseline_label="python + sqlite3 query", note=note)
    as_json = best_process_time(ferry("executions", "list", "--json"), repeat, env=env)
    table.add(f"ferry executions list --json, {EXECUTIONS:,} executions", as_json, "s", baseline=help_time,
              baseline_label="ferry --help", target="<= 2x ferry --help", met=as_json <= 2 * help_time)


def listing_at_scale(table: Table, scratch: str, help_time: float, count: int, repeat: int) -> None:
    """``executions list`` and ``show`` of a one-task execution with ``count`` executions recorded."""
    home = os.path.join(scratch, "home-many")
    os.makedirs(home, exist_ok=True)
    fill_records(home, count, nodes=1)
    env = _env(home)
    newest = f"2026010100{count - 1:04d}-{count - 1:06x}"
    for label, args in ((f"ferry executions list, {count:,} executions", ("executions", "list")),
                        (f"ferry executions show (one task), {count:,} executions", ("executions", "show", newest))):
        value = best_process_time(ferry(*args), repeat, env=env)
        table.add(label, value, "s", baseline=help_time, baseline_label="ferry --help", target="<= 2x ferry --help",
                  met=value <= 2 * help_time, note=f"{count:,} executions of 1 node in SQLite")


def run_overhead(table: Table, scratch: str, repeat: int) -> None:
    home = os.path.join(scratch, "run-home")
    folder = os.path.join(scratch, "flow")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "once.py"), "w") as fh:
        fh.write(FLOW)
    env = _env(home)
    plain = [sys.executable, "-c", "import sys; sys.path.insert(0, '.'); import once; assert once.double.fn(x=1) == 2"]
    bare = best_process_time(plain, repeat, env=env, cwd=folder)
    subprocess.run(ferry("run", "once.py", "once", "--x", "1"), check=True, env=env, cwd=folder,
                   capture_output=True)  # registered once, as on a second run
    for executor in ("inline", "process"):
        value = best_process_time(ferry("run", "once.py", "once", "--x", "1", "--executor", executor), repeat,
                                  env=env, cwd=folder)
        table.add(f"ferry run, a 1-task workflow ({executor})", value, "s", baseline=bare,
                  baseline_label="python importing the file, calling the function",
                  note=f"overhead {value - bare:.2f} s (registration unchanged, records, metadata store); "
                       "importing SQLAlchemy for the records' writes is most of it")


def first_success(table: Table, scratch: str) -> None:
    """``scripts/quickstart`` in a fresh clone of this commit, against a venv with ferry's dependencies alone."""
    clone = os.path.join(scratch, "clone")
    if subprocess.run(["git", "clone", "-q", ROOT, clone], capture_output=True).returncode != 0:
        table.add("first success on a fresh clone (scripts/quickstart)", None, "s",
                  baseline_label="n/a (no git repository to clone)")
        return
    env = {**os.environ, "XDG_DATA_HOME": os.path.join(scratch, "data"), "NO_COLOR": "1"}
    env.pop("PYTHONPATH", None)  # the clone's own install, as a new user has it
    env.pop("FERRY_HOME", None)
    start = time.perf_counter()
    done = subprocess.run(["scripts/quickstart"], cwd=clone, env=env, capture_output=True, text=True)
    value = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"scripts/quickstart failed on a fresh clone:\n{done.stderr[-2000:]}")
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as fh:
        dependencies = tomllib.load(fh)["project"]["dependencies"]
    venv = os.path.join(scratch, "deps-venv")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    pip = [os.path.join(venv, "bin", "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True, capture_output=True)
    subprocess.run([*pip, *dependencies], check=True, capture_output=True)
    baseline = time.perf_counter() - start
    cache = os.path.expanduser("~/.cache/pip")
    table.add("first success on a fresh clone (scripts/quickstart)", value, "s", baseline=baseline,
              baseline_label="venv + pip install of ferry's dependencies", target="< 60 s", met=value < 60,
              note=f"git clone, venv, pip install -e ., run, show; pip cache "
                   f"{'present' if os.path.isdir(cache) else 'empty'} ({cache})")


def run(table: Table, quick: bool) -> None:
    repeat = 3 if quick else 7
    with tempfile.TemporaryDirectory(prefix="ferry-bench-cli-") as scratch:
        home = os.path.join(scratch, "home")
        help_time = startup(table, home, repeat)
        listing(table, home, help_time, repeat)
        listing_at_scale(table, scratch, help_time, 2_000 if quick else 10_000, repeat)
        run_overhead(table, scratch, repeat)
        first_success(table, scratch)
