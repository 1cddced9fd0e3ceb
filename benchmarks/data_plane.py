"""Issue 2 benchmarks: literal conversion, data frames and files through the raw store, import time."""

from __future__ import annotations

import os
import sys
import tempfile

from common import Table, best_of, ms, run_child

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))


def list_of_ints(table: Table, n: int) -> None:
    code = f"""
import os, time, pickle
from ferry.config import Settings, reset_settings
from ferry.literals import Literal, serialize
from ferry.types import TransferContext, default_engine
s = Settings.load(max_literal_bytes=1 << 30)
ctx = TransferContext(s, s.raw_output_prefix)
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
base = float("inf")
for _ in range(3):
    t = time.perf_counter(); ys = pickle.loads(pickle.dumps(xs)); base = min(base, time.perf_counter() - t)
result.update(ferry=best, baseline=base, size=len(data))
"""
    r = run_child(code)
    table.add(f"list[int] of {n:,}: value->literal->bytes->value", f"{ms(r['ferry'])} ({r['ferry'] / n * 1e9:.0f} ns/elem)",
              f"pickle {ms(r['baseline'])}", r["ferry"] / r["baseline"], "< 1 s for 1,000,000",
              r["ferry"] < 1.0 if n == 1_000_000 else None, f"{r['size'] / 1e6:.1f} MB serialized, peak {r['peak_rss_mib']:.0f} MiB")


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
    table.add(f"list of {n:,} small dataclasses", f"{ms(r['ferry'])} ({r['ferry'] / n * 1e6:.1f} us/elem)",
              f"pickle {ms(r['baseline'])}", r["ferry"] / r["baseline"], "(time per element)", None)


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
    ratio = r["ferry"] / r["baseline"]
    table.add(f"{rows:,} x 5 pandas frame round trip (file://)", ms(r["ferry"]), f"bare pyarrow {ms(r['baseline'])}",
              ratio, "<= 1.25x", ratio <= 1.25)


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
    runs = [(run_child(code), run_child(copy_code)) for _ in range(2)]
    ferry_s = min(f["ferry"] for f, _ in runs)
    base_s = min(b["baseline"] for _, b in runs)
    rss = max(f["peak_rss_mib"] for f, _ in runs)
    ratio = ferry_s / base_s
    table.add(f"{size >> 20} MiB File offload + fetch (file://)", ms(ferry_s), f"2x shutil.copyfile {ms(base_s)}",
              ratio, "<= 1.2x", ratio <= 1.2)
    table.add(f"{size >> 20} MiB File: peak RSS of the process", f"{rss:.0f} MiB", "", None, "< 150 MiB", rss < 150)
    os.unlink(src)


def import_time(table: Table) -> None:
    import subprocess

    def once(code: str) -> float:
        return best_of(lambda: subprocess.run([sys.executable, "-c", code], check=True), repeat=7)

    bare = once("pass")
    with_ferry = once("import ferry")
    table.add("python -c 'import ferry'", ms(with_ferry), f"python -c pass {ms(bare)}", with_ferry / bare,
              "< 150 ms", with_ferry < 0.150, f"ferry's own share {ms(with_ferry - bare)}")


def main(quick: bool = False) -> Table:
    table = Table()
    with tempfile.TemporaryDirectory(prefix="ferry-bench-") as home:
        import_time(table)
        list_of_ints(table, 100_000 if quick else 1_000_000)
        list_of_dataclasses(table, 10_000 if quick else 100_000)
        dataframe(table, 200_000 if quick else 2_000_000, home)
        big_file(table, (64 if quick else 1024) << 20, home)
    return table


if __name__ == "__main__":
    main("--quick" in sys.argv).print("data plane")
