"""Flat cost at scale: per-task cost of long chains and wide maps against short ones, the engine's memory,
the records' and metadata's size, and ferry.run against Dask's threaded scheduler on the same shapes."""

from __future__ import annotations

import os
import tempfile

from common import Table, run_child

HERE = os.path.dirname(os.path.abspath(__file__))


def _child(code: str, home: str) -> dict:
    prelude = f"import sys, time, os; sys.path.insert(0, {HERE!r}); import ferry; from flows import *\n"
    return run_child(prelude + code, env={"FERRY_HOME": home})


def _size(path: str) -> tuple[int, int]:
    """Bytes and files under ``path``."""
    total = files = 0
    for folder, _, names in os.walk(path):
        for name in names:
            total += os.path.getsize(os.path.join(folder, name))
            files += 1
    return total, files


def chains(table: Table, home: str, long: int) -> None:
    r = _child(f"""
short, big = make_chain(100), make_chain({long})
ferry.run(short, {{}})
best = {{}}
for wf, n in ((short, 100), (big, {long})):
    times = []
    for _ in range(2):
        t = time.perf_counter(); e = ferry.run(wf, {{}}); times.append(time.perf_counter() - t)
        assert e.status == "succeeded" and e.outputs == n, e.error
    best[n] = min(times) / n
result["short"], result["long"] = best[100], best[{long}]
""", home)
    table.add(f"chain of {long:,} inline, per node", r["long"], "s", baseline=r["short"], baseline_label="chain of 100",
              target="<= 1.2x (no quadratic term)", met=r["long"] <= 1.2 * r["short"])


def maps(table: Table, home: str, wide: int, executor: str) -> None:
    r = _child(f"""
small, big = list(range(100)), list(range({wide}))
ferry.run(map_python, {{"xs": small}}, executor={executor!r})
t = time.perf_counter(); e = ferry.run(map_python, {{"xs": small}}, executor={executor!r}); result["small"] = (time.perf_counter() - t) / 100
assert e.status == "succeeded", e.error
t = time.perf_counter(); e = ferry.run(map_python, {{"xs": big}}, executor={executor!r}); result["big"] = (time.perf_counter() - t) / {wide}
assert e.status == "succeeded" and e.outputs[-1] == {wide}, e.error
result["id"] = e.id
""", home)
    meta_bytes, meta_files = _size(os.path.join(home, "metadata", r["id"]))
    db = os.path.getsize(os.path.join(home, "ferry.db")) + sum(
        os.path.getsize(os.path.join(home, f)) for f in os.listdir(home) if f.startswith("ferry.db-"))
    table.add(f"map of {wide:,} {executor}, per task", r["big"], "s", baseline=r["small"], baseline_label="map of 100",
              target="<= 1.5x; engine RSS < 300 MiB", met=r["big"] <= 1.5 * r["small"] and r["peak_rss_mib"] < 300,
              note=f"engine peak RSS {r['peak_rss_mib']:.0f} MiB; metadata {meta_bytes / 2**20:.1f} MiB in "
                   f"{meta_files:,} files; records db {db / 2**20:.1f} MiB (all runs)")


def versus_dask_threads(table: Table, home: str, n: int) -> None:
    r = _child(f"""
import dask
from dask import delayed
def inc_plain(x):
    return x + 1
chain_wf = make_chain({n})
ferry.run(chain_wf, {{}})
def best(fn, repeat=3):
    out = []
    for _ in range(repeat):
        t = time.perf_counter(); fn(); out.append(time.perf_counter() - t)
    return min(out)
def dask_chain():
    x = 0
    for _ in range({n}):
        x = delayed(inc_plain)(x)
    return x.compute(scheduler="threads")
def dask_map():
    return dask.compute(*[delayed(inc_plain)(i) for i in range({n})], scheduler="threads")
xs = list(range({n}))
result["ferry_chain"] = best(lambda: ferry.run(chain_wf, {{}})) / {n}
result["ferry_map"] = best(lambda: ferry.run(map_python, {{"xs": xs}})) / {n}
result["dask_chain"] = best(dask_chain) / {n}
result["dask_map"] = best(dask_map) / {n}
""", home)
    for shape in ("chain", "map"):
        ours, theirs = r[f"ferry_{shape}"], r[f"dask_{shape}"]
        table.add(f"{shape} of {n}: ferry.run inline, per task", ours, "s", baseline=theirs,
                  baseline_label="Dask threaded scheduler", target="<= 1.0x", met=ours <= theirs,
                  note="ferry records every attempt with its inputs and outputs (in its records when small); "
                       "Dask keeps values in memory")


def run(table: Table, quick: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="ferry-bench-scale-") as home:
        chains(table, home, 500 if quick else 2000)
        for executor in ("inline", "process"):
            maps(table, home, 1000 if quick else 10000, executor)
        versus_dask_threads(table, home, 200 if quick else 1000)
