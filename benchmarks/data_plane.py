"""Data-plane benchmarks: literal conversion, data frames and files through the raw store, import time."""

from __future__ import annotations

import os
import sys
import tempfile

import flytekit_env
from common import Table, best_process_time, drop_page_cache, run_child


def list_of_ints(table: Table, n: int) -> None:
    code = f"""
import os, time, pickle, tempfile
from ferry import task
from ferry.config import Settings
from ferry.literals import Literal, LiteralMap, serialize
from ferry.runtime.execute import literals_to_values, values_to_literals
from ferry.types import TransferContext, default_engine

@task
def consume(xs: list[int]) -> list[int]:
    return xs

home = tempfile.mkdtemp()
inline = Settings.load(max_literal_bytes=1 << 30)
ctx = TransferContext(inline, inline.raw_output_prefix)
engine = default_engine()
xs = list(range({n}))
best = float("inf")
for _ in range(3):
    t = time.perf_counter()
    lit = engine.to_literal(xs, list[int], ctx)
    data = serialize(lit)
    back = Literal(); back.ParseFromString(data)
    ys = engine.to_python(back, list[int], ctx)
    best = min(best, time.perf_counter() - t)
assert ys == xs
size = len(data)
# What a task's output takes by default (offloading on, the 1 MiB metadata limit, which --quick's shorter list
# fits under: it gets a lower one): the list is written as a file of its own beside outputs.pb, and read back
# by the next task.
off = Settings.load(metadata_url=f"file://{{home}}/meta",
                    raw_output_prefix=f"file://{{home}}/raw", max_literal_bytes={(1 << 20) if n >= 200_000 else (1 << 16)})
offloaded = float("inf")
for i in range(5):
    ctx = TransferContext(off, f"{{off.raw_output_prefix}}/{{i}}", meta_prefix=f"{{off.metadata_url}}/e/n0/{{i}}")
    t = time.perf_counter()
    data = serialize(values_to_literals(consume, {{"xs": list[int]}}, {{"xs": xs}}, ctx, "outputs"))
    back = LiteralMap(); back.ParseFromString(data)
    ys = literals_to_values(consume, back, ctx)["xs"]
    offloaded = min(offloaded, time.perf_counter() - t)
assert ys == xs and back.literals["xs"].HasField("offloaded_metadata") and off.offload_large_literals
base = float("inf")
for _ in range(5):
    t = time.perf_counter(); ys = pickle.loads(pickle.dumps(xs)); base = min(base, time.perf_counter() - t)
result.update(ferry=best, offloaded=offloaded, baseline=base, size=size)
"""
    r = run_child(code)
    table.add(f"list[int] of {n:,} through a task's outputs, offloaded: value->file->value", r["offloaded"], "s",
              baseline=r["baseline"], baseline_label="pickle", target="<= 3x pickle",
              met=r["offloaded"] <= 3 * r["baseline"],
              note=f"{r['offloaded'] / n * 1e9:.0f} ns/elem; the default path: over the 1 MiB metadata limit the list "
                   "goes to a file of its own in the metadata store, written and read without a message per element")
    table.add(f"list[int] of {n:,} inline: value->literal->bytes->value", r["ferry"], "s", baseline=r["baseline"],
              baseline_label="pickle",
              note=f"{r['ferry'] / n * 1e9:.0f} ns/elem, {r['size'] / 1e6:.1f} MB serialized, "
                   f"peak {r['peak_rss_mib']:.0f} MiB; only with the limit raised past it (or offloading off and the "
                   f"limit raised): a LiteralCollection message of {n:,} Literals, protobuf alone ~2x pickle each way")


def list_of_dataclasses(table: Table, n: int) -> None:
    code = f"""
import dataclasses, time, pickle
from ferry.config import Settings
from ferry.literals import Literal, serialize
from ferry.types import TransferContext, default_engine

@dataclasses.dataclass
class Item:
    id: int
    name: str
    score: float

s = Settings.load(max_literal_bytes=1 << 30)
ctx = TransferContext(s, s.raw_output_prefix)
engine = default_engine()
xs = [Item(i, f"item-{{i}}", i / 3) for i in range({n})]
best = float("inf")
for _ in range(3):
    t = time.perf_counter()
    lit = engine.to_literal(xs, list[Item], ctx)
    back = Literal(); back.ParseFromString(serialize(lit))
    ys = engine.to_python(back, list[Item], ctx)
    best = min(best, time.perf_counter() - t)
assert ys == xs
base = float("inf")
for _ in range(3):
    t = time.perf_counter(); ys = pickle.loads(pickle.dumps(xs)); base = min(base, time.perf_counter() - t)
result.update(ferry=best, baseline=base)
"""
    r = run_child(code)
    table.add(f"list of {n:,} small dataclasses", r["ferry"], "s", baseline=r["baseline"], baseline_label="pickle",
              note=f"{r['ferry'] / n * 1e6:.1f} us/elem")


def dataframe(table: Table, rows: int, home: str) -> None:
    code = f"""
import time, numpy as np, pandas as pd, pyarrow as pa, pyarrow.parquet as pq
from ferry.config import Settings
from ferry.types import TransferContext, default_engine
s = Settings.load(home={home!r})
ctx = TransferContext(s, s.raw_output_prefix)
engine = default_engine()
rng = np.random.default_rng(0)
df = pd.DataFrame({{"a": np.arange({rows}), "b": rng.random({rows}), "c": rng.integers(0, 100, {rows}),
                   "d": rng.random({rows}) * 1000, "e": np.arange({rows}) % 7 == 0}})
def ferry_rt():
    lit = engine.to_literal(df, pd.DataFrame, ctx)
    return engine.to_python(lit, pd.DataFrame, ctx)
def bare_rt():
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), {home!r} + "/bare.parquet")
    return pq.read_table({home!r} + "/bare.parquet").to_pandas()
ferry_rt(); bare_rt()
f, b = [], []
for _ in range(5):
    t = time.perf_counter(); out = ferry_rt(); f.append(time.perf_counter() - t)
    t = time.perf_counter(); bare_rt(); b.append(time.perf_counter() - t)
assert out.equals(df)
result.update(ferry=min(f), baseline=min(b))
"""
    r = run_child(code)
    table.add(f"{rows:,} x 5 pandas frame round trip (file://)", r["ferry"], "s", baseline=r["baseline"],
              baseline_label="bare pyarrow", target="<= 1.25x", met=r["ferry"] <= 1.25 * r["baseline"])


def big_file(table: Table, size: int, home: str) -> None:
    src = os.path.join(home, "big.bin")
    with open(src, "wb") as fh:
        chunk = os.urandom(1 << 20)
        for _ in range(size >> 20):
            fh.write(chunk)
    code = f"""
import os, shutil, time
from ferry import File
from ferry.config import Settings
from ferry.types import TransferContext, default_engine, using_context
s = Settings.load(home={home!r})
ctx = TransferContext(s, s.raw_output_prefix)
engine = default_engine()
def ferry_rt():
    lit = engine.to_literal(File({src!r}), File, ctx)
    with using_context(ctx):
        f = engine.to_python(lit, File, ctx)
        path = f.download()
    assert os.path.getsize(path) == {size}
    return lit.scalar.blob.uri, path
# warm: the stores' modules imported and their filesystems made (import time has a row of its own)
with open({home!r} + "/warm.bin", "wb") as fh:
    fh.write(b"w")
with using_context(ctx):
    engine.to_python(engine.to_literal(File({home!r} + "/warm.bin"), File, ctx), File, ctx).download()
os.sync()  # start both measurements with no dirty pages from earlier runs
t = time.perf_counter(); uri, path = ferry_rt(); result["ferry"] = time.perf_counter() - t
os.unlink(path); os.unlink(uri[len("file://"):])
"""
    copy_code = f"""
import shutil, time, os
os.sync()
t = time.perf_counter()
shutil.copyfile({src!r}, {home!r} + "/copy1.bin"); shutil.copyfile({home!r} + "/copy1.bin", {home!r} + "/copy2.bin")
result["baseline"] = time.perf_counter() - t
os.unlink({home!r} + "/copy1.bin"); os.unlink({home!r} + "/copy2.bin")
"""

    def cold(child: str) -> dict:
        """Both sides start by reading src from disk."""
        dropped = drop_page_cache([src, home])
        return {**run_child(child), "dropped": dropped}

    runs = [(cold(code), cold(copy_code)) for _ in range(3)]  # the disk here swings 2x between reads
    ferry_s = min(f["ferry"] for f, _ in runs)
    base_s = min(b["baseline"] for _, b in runs)
    rss = max(f["peak_rss_mib"] for f, _ in runs)
    table.add(f"{size >> 20} MiB File offload + fetch (file://), cold", ferry_s, "s", baseline=base_s,
              baseline_label="2x shutil.copyfile", target="<= 1.2x", met=ferry_s <= 1.2 * base_s,
              note=f"best of 3, alternated, store modules warmed first; {runs[-1][0]['dropped']}")
    table.add(f"{size >> 20} MiB File: peak RSS of the process", rss, "MiB", target="< 150 MiB", met=rss < 150)
    os.unlink(src)


def import_time(table: Table, repeat: int) -> None:
    """A fresh interpreter's first real use of ferry, against flytekit's in its venv (best of ``repeat``)."""
    def python_c(statement: str) -> float:
        return best_process_time([sys.executable, "-c", statement], repeat)

    bare = python_c("pass")
    first_use = python_c("from ferry import task, workflow, run")
    lazy = python_c("import ferry")
    try:
        flytekit = flytekit_env.import_time("from flytekit import task, workflow", repeat)
        label = "flytekit: python -c 'from flytekit import task, workflow'"
    except RuntimeError as exc:
        flytekit, label = None, f"flytekit n/a ({exc})"
    table.add("python -c 'from ferry import task, workflow, run' (first real use)", first_use, "s", baseline=flytekit,
              baseline_label=label,
              target="< 300 ms", met=first_use < 0.300,
              note=f"whole process, best of {repeat}; python -c pass {bare * 1000:.0f} ms, "
                   f"ferry's own share {(first_use - bare) * 1000:.0f} ms")
    table.add("python -c 'import ferry' (lazy module only, no real use)", lazy, "s", baseline=bare,
              baseline_label="python -c pass", note=f"ferry's own share {(lazy - bare) * 1000:.0f} ms")


def run(table: Table, quick: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="ferry-bench-") as home:
        import_time(table, 5 if quick else 9)
        list_of_ints(table, 100_000 if quick else 1_000_000)
        list_of_dataclasses(table, 10_000 if quick else 100_000)
        dataframe(table, 200_000 if quick else 2_000_000, home)
        big_file(table, (64 if quick else 1024) << 20, home)
