"""Dataset benchmarks: reads through the node cache of a large object in a local SeaweedFS.

Cold rows start with the object out of the OS page cache (SeaweedFS keeps it in volume files under its data
folder) and the node cache empty; each cold row's note says whether the page cache could be dropped. Cold data, warm
code: each side first reads a small other object, so lazy imports and client set-up are not timed as transfer.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile

from common import Table, drop_page_cache, paired_median, run_child


def _child(code: str, env: dict[str, str]) -> dict:
    return run_child("import time, os\n" + code, env=env)


def run(table: Table, quick: bool) -> None:
    from ferry.testing.s3server import SeaweedS3

    size = (128 if quick else 1024) << 20
    with tempfile.TemporaryDirectory(prefix="ferry-bench-") as tmp, SeaweedS3(os.path.join(tmp, "s3"), ["persistent"]) as s3:
        opts = s3.options()
        env = {
            "FERRY_HOME": os.path.join(tmp, "home"),
            "FERRY_PERSISTENT_URL": "s3://persistent/bench",
            "FERRY_PERSISTENT_OPTIONS": json.dumps(opts),
            "FERRY_CACHE_MAX_BYTES": str(4 * size),
        }
        local = os.path.join(tmp, "object.bin")
        with open(local, "wb") as fh:
            block = os.urandom(8 << 20)
            for _ in range(size // len(block)):
                fh.write(block)
        uri = "s3://persistent/bench/big/object.bin"
        setup = f"""
import s3fs
fs = s3fs.S3FileSystem(**{opts!r})
fs.put_file({local!r}, "persistent/bench/big/object.bin")
fs.pipe_file("persistent/bench/warmup/small.bin", b"w" * 65536)
"""
        _child(setup, env)
        clear = f"shutil.rmtree({env['FERRY_HOME'] + '/cache'!r}, ignore_errors=True)\n"
        server_files = s3.data_dir / "data"  # the volume files SeaweedFS serves the object from
        small = "s3://persistent/bench/warmup/small.bin"
        warm_ferry = f"""
from ferry import File
File({small!r}).download()
with File({small!r}).open("rb") as fh:
    fh.read()
"""
        warm_s3fs = f"""
import s3fs
fs = s3fs.S3FileSystem(**{opts!r})
fs.get_file({small[5:]!r}, {tmp + '/warmup.bin'!r})
"""

        def cold(code: str) -> dict:
            """Run ``code`` with the object out of the page cache; the result gets a "dropped" note."""
            dropped = drop_page_cache([server_files])
            return {**_child(code, env), "dropped": dropped}

        # 1. cold sequential read: ferry (fill through the cache) vs a direct fsspec get, alternated
        direct_code = warm_s3fs + f"""
t = time.perf_counter(); fs.get_file("persistent/bench/big/object.bin", {tmp + '/direct.bin'!r})
result["seconds"] = time.perf_counter() - t
os.unlink({tmp + '/direct.bin'!r})
"""
        cold_code = "import shutil\n" + clear + warm_ferry + f"""
t = time.perf_counter(); path = File({uri!r}).download()
assert os.path.getsize(path) == {size}
result["seconds"] = time.perf_counter() - t
"""
        streamed_code = "import shutil\n" + clear + warm_ferry + f"""
t = time.perf_counter()
with File({uri!r}).open("rb") as fh:
    while fh.read(8 << 20):
        pass
result["seconds"] = time.perf_counter() - t
"""
        # the three alternated, best of 3 each (the machine's other work swings one read by 20%)
        directs, wholes, streams = [], [], []
        for _ in range(3):
            directs.append(cold(direct_code)["seconds"])
            measured = cold(cold_code)
            wholes.append(measured["seconds"])
            streams.append(cold(streamed_code)["seconds"])
        direct, whole, streamed = min(directs), min(wholes), min(streams)
        mib = size / (1 << 20)
        table.add(f"cold sequential read, {mib:.0f} MiB (throughput)", mib / whole, "MiB/s", better="higher",
                  baseline=mib / direct, baseline_label="s3fs get_file", target=">= 1.3x s3fs get_file",
                  met=direct / whole >= 1.3, note=f"best of 3, alternated; {measured['dropped']}")
        table.add("cold sequential f.open('rb') (block reads)", mib / streamed, "MiB/s", better="higher",
                  baseline=mib / whole, baseline_label="ferry's cold whole-object read", target=">= 0.9x",
                  met=whole / streamed >= 0.9, note=f"best of 3, alternated with the whole read (median of the 3 side-by-side "
                  f"ratios: {paired_median(wholes, streams):.2f}x); s3fs get_file {mib / direct:.0f} MiB/s")

        # 2. warm read vs a plain local file
        warm = _child(f"""
from ferry import File
def read(path):
    with open(path, "rb") as fh:
        while fh.read(8 << 20):
            pass
path = File({uri!r}).download()
best_f = best_l = 1e9
for _ in range(9):
    t = time.perf_counter(); read(File({uri!r}).download()); best_f = min(best_f, time.perf_counter() - t)
    t = time.perf_counter(); read({local!r}); best_l = min(best_l, time.perf_counter() - t)
result.update(ferry=best_f, local=best_l)
""", env)
        table.add("warm read (node cache hit)", mib / warm["ferry"], "MiB/s", better="higher",
                  baseline=mib / warm["local"], baseline_label="plain local file read", target=">= 0.9x",
                  met=warm["local"] / warm["ferry"] >= 0.9, note="best of 9, alternated")

        # 3. 16 concurrent cold readers
        reader = f"from ferry import File; import os; assert os.path.getsize(File({uri!r}).download()) == {size}"
        def readers(count: int, from_cold: bool) -> dict:
            code = "import shutil, subprocess, sys\n" + (clear if from_cold else "") + f"""
t = time.perf_counter()
procs = [subprocess.Popen([sys.executable, "-c", {reader!r}]) for _ in range({count})]
assert all(p.wait() == 0 for p in procs)
result["seconds"] = time.perf_counter() - t
from ferry.datasets import node_cache
result["misses"] = node_cache().stats().per_dataset["big"]["misses"]
result["fetched"] = node_cache().stats().per_dataset["big"]["bytes_fetched"]
"""
            return cold(code) if from_cold else _child(code, env)

        one = readers(1, from_cold=True)
        many = readers(16, from_cold=True)
        startup = readers(16, from_cold=False)  # the same 16 processes on a warm cache: their start-up cost
        table.add("16 concurrent cold readers: downloads", many["misses"], "count", target="1",
                  met=many["misses"] == 1, note=f"{many['fetched'] / size:.2f}x the object fetched")
        table.add("16 concurrent cold readers: total time", many["seconds"], "s", baseline=one["seconds"],
                  baseline_label="one cold reader",
                  note=f"16 warm readers take {startup['seconds'] * 1000:.0f} ms: process start-up on 2 cores; "
                       f"{many['dropped']}")

        # 4. random reads on a cold object: bytes transferred against bytes asked, time against fsspec's blockcache
        def random_reads(count: int, length: int, target: float, filecache: bool) -> None:
            offsets = random.Random(7).sample(range(0, size - length), count)
            reads = f"""
    for off in {offsets!r}:
        fh.seek(off); assert len(fh.read({length})) == {length}
"""
            ferry_r = cold("import shutil\n" + clear + warm_ferry + """
from ferry.datasets import node_cache
t = time.perf_counter()
with File(%r).open("rb") as fh:%s
result["seconds"] = time.perf_counter() - t
result["fetched"] = node_cache().stats().per_dataset["big"]["bytes_fetched"]
""" % (uri, reads))
            fsspec_r = cold(warm_s3fs + """
with fs.open(%r, "rb", cache_type="blockcache", block_size=1 << 20) as fh:
    fh.read()
t = time.perf_counter()
with fs.open("persistent/bench/big/object.bin", "rb", cache_type="blockcache", block_size=1 << 20) as fh:%s
    result["fetched"] = fh.cache.total_requested_bytes
result["seconds"] = time.perf_counter() - t
""" % (small[5:], reads) + ("""
import fsspec
fc = fsspec.filesystem("filecache", target_protocol="s3", target_options=%r, cache_storage=%r)
t = time.perf_counter()
with fc.open("persistent/bench/big/object.bin", "rb") as fh:%s
result["filecache_seconds"] = time.perf_counter() - t
""" % (opts, tmp + "/fc", reads) if filecache else ""))
            shutil.rmtree(os.path.join(tmp, "fc"), ignore_errors=True)
            what = f"{count} random {f'{length >> 20} MiB' if length >= 1 << 20 else f'{length >> 10} KiB'} reads, cold"
            asked, fetched = count * length / (1 << 20), ferry_r["fetched"] / (1 << 20)
            table.add(f"{what}: MiB transferred", fetched, "MiB", baseline=asked, baseline_label="MiB asked",
                      target=f"<= {target:g}x bytes asked", met=fetched <= target * asked,
                      note=f"fsspec blockcache {fsspec_r['fetched'] / (1 << 20):.0f} MiB"
                           + (f", filecache {mib:.0f} MiB" if filecache else ""))
            table.add(f"{what}: time", ferry_r["seconds"], "s", baseline=fsspec_r["seconds"],
                      baseline_label="fsspec blockcache",
                      note=(f"filecache {fsspec_r['filecache_seconds'] * 1000:.0f} ms; " if filecache else "")
                      + ferry_r["dropped"])

        random_reads(100, 1 << 20, 4, filecache=True)
        random_reads(200, 64 << 10, 2, filecache=False)
