"""Issue 4 benchmarks: dataset reads through the node cache, on a large object in the local S3 server."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile

from common import ROOT, Table, ms, run_child

sys.path.insert(0, os.path.join(ROOT, "src"))


def _child(code: str, env: dict[str, str]) -> dict:
    return run_child("import time, os\n" + code, env=env)


def main(quick: bool = False) -> Table:
    from ferry.testing.s3server import SeaweedS3

    size = (128 if quick else 1024) << 20
    table = Table()
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
"""
        _child(setup, env)
        clear = f"shutil.rmtree({env['FERRY_HOME'] + '/cache'!r}, ignore_errors=True)\n"

        # 1. cold sequential read: ferry (fill through the cache) vs a direct fsspec get, alternated
        direct_code = f"""
import s3fs
fs = s3fs.S3FileSystem(**{opts!r})
t = time.perf_counter(); fs.get_file("persistent/bench/big/object.bin", {tmp + '/direct.bin'!r})
result["seconds"] = time.perf_counter() - t
os.unlink({tmp + '/direct.bin'!r})
"""
        cold_code = "import shutil\n" + clear + f"""
from ferry import File
t = time.perf_counter(); path = File({uri!r}).download()
assert os.path.getsize(path) == {size}
result["seconds"] = time.perf_counter() - t
"""
        direct = cold = float("inf")
        for _ in range(2):
            direct = min(direct, _child(direct_code, env)["seconds"])
            cold = min(cold, _child(cold_code, env)["seconds"])
        mib = size / (1 << 20)
        ratio = direct / cold
        table.add(f"cold sequential read, {mib:.0f} MiB (throughput)", f"{mib / cold:.0f} MiB/s",
                  f"fsspec get {mib / direct:.0f} MiB/s", ratio, ">= 0.9x", ratio >= 0.9, "best of 2, alternated")
        streamed = _child("import shutil\n" + clear + f"""
from ferry import File
t = time.perf_counter()
with File({uri!r}).open("rb") as fh:
    while fh.read(8 << 20):
        pass
result["seconds"] = time.perf_counter() - t
""", env)["seconds"]
        ratio = direct / streamed
        table.add("cold sequential f.open('rb') (block reads)", f"{mib / streamed:.0f} MiB/s",
                  f"fsspec get {mib / direct:.0f} MiB/s", ratio, ">= 0.9x", ratio >= 0.9)

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
        ratio = warm["local"] / warm["ferry"]
        table.add("warm read (node cache hit)", f"{mib / warm['ferry']:.0f} MiB/s",
                  f"local file {mib / warm['local']:.0f} MiB/s", ratio, ">= 0.9x", ratio >= 0.9)

        # 3. 16 concurrent cold readers
        reader = f"from ferry import File; import os; assert os.path.getsize(File({uri!r}).download()) == {size}"
        def readers(count: int, cold: bool) -> dict:
            return _child("import shutil, subprocess, sys\n" + (clear if cold else "") + f"""
t = time.perf_counter()
procs = [subprocess.Popen([sys.executable, "-c", {reader!r}]) for _ in range({count})]
assert all(p.wait() == 0 for p in procs)
result["seconds"] = time.perf_counter() - t
from ferry.datasets import node_cache
result["misses"] = node_cache().stats().per_dataset["big"]["misses"]
result["fetched"] = node_cache().stats().per_dataset["big"]["bytes_fetched"]
""", env)

        one = readers(1, cold=True)
        many = readers(16, cold=True)
        startup = readers(16, cold=False)  # the same 16 processes on a warm cache: their start-up cost
        table.add("16 concurrent cold readers: downloads", str(many["misses"]), "", None, "1",
                  many["misses"] == 1, f"{many['fetched'] / size:.2f}x the object fetched")
        table.add("16 concurrent cold readers: total time", ms(many["seconds"]), f"one reader {ms(one['seconds'])}",
                  many["seconds"] / one["seconds"], "", None,
                  f"16 warm readers take {ms(startup['seconds'])}: process start-up on 2 cores")

        # 4. 100 random 1 MiB reads on a cold object
        offsets = [int(x) for x in __import__("random").Random(7).sample(range(0, size - (1 << 20)), 100)]
        rand_ferry = _child("import shutil\n" + clear + f"""
from ferry import File
from ferry.datasets import node_cache
t = time.perf_counter()
with File({uri!r}).open("rb") as fh:
    for off in {offsets!r}:
        fh.seek(off); assert len(fh.read(1 << 20)) == 1 << 20
result["seconds"] = time.perf_counter() - t
result["fetched"] = node_cache().stats().per_dataset["big"]["bytes_fetched"]
""", env)
        rand_fsspec = _child(f"""
import fsspec, s3fs
fs = s3fs.S3FileSystem(skip_instance_cache=True, **{opts!r})
t = time.perf_counter()
with fs.open("persistent/bench/big/object.bin", "rb", cache_type="blockcache", block_size=1 << 20) as fh:
    for off in {offsets!r}:
        fh.seek(off); assert len(fh.read(1 << 20)) == 1 << 20
    result["fetched"] = fh.cache.total_requested_bytes
result["seconds"] = time.perf_counter() - t
fc = fsspec.filesystem("filecache", target_protocol="s3", target_options={opts!r}, cache_storage={tmp + '/fc'!r})
t = time.perf_counter()
with fc.open("persistent/bench/big/object.bin", "rb") as fh:
    for off in {offsets!r}:
        fh.seek(off); assert len(fh.read(1 << 20)) == 1 << 20
result["filecache_seconds"] = time.perf_counter() - t
""", env)
        read_bytes = 100 << 20
        ratio = rand_ferry["fetched"] / read_bytes
        table.add("100 random 1 MiB reads, cold: bytes transferred", f"{rand_ferry['fetched'] / (1 << 20):.0f} MiB",
                  f"blockcache {rand_fsspec['fetched'] / (1 << 20):.0f} MiB, filecache {mib:.0f} MiB", ratio,
                  "<= 4x bytes read", ratio <= 4)
        table.add("100 random 1 MiB reads, cold: time", ms(rand_ferry["seconds"]),
                  f"blockcache {ms(rand_fsspec['seconds'])}, filecache {ms(rand_fsspec['filecache_seconds'])}",
                  rand_ferry["seconds"] / rand_fsspec["seconds"], "", None)
        shutil.rmtree(os.path.join(tmp, "fc"), ignore_errors=True)
    return table


if __name__ == "__main__":
    main("--quick" in sys.argv).print("datasets")
