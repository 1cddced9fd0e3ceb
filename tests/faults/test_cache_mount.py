"""The FUSE mount: file locks work (SQLite and HDF5 lock on open), and a large object opened on
the mount is read page by page, not downloaded whole."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from ferry.config import active_settings
from ferry.datasets import node_cache

Put = Callable[[str, bytes], str]

MOUNTER = """
import sys
import ferry.datasets as datasets
datasets.BLOCK_READ_THRESHOLD = 1 << 20
from ferry.datasets.mount import mount
mount(sys.argv[1])
"""


@pytest.fixture
def mounted(tmp_path: Path, store: str) -> Iterator[Callable[[], Path]]:
    """Mounts the store (objects of 1 MiB and up read by pages) once called; unmounts at the end."""
    from ferry.datasets.mount import fuse_available

    available, why = fuse_available()
    if not available:
        pytest.skip(f"FUSE not available here: {why}")
    mountpoint = tmp_path / "mnt"
    procs: list[subprocess.Popen[str]] = []

    def mount() -> Path:
        proc = subprocess.Popen([sys.executable, "-c", MOUNTER, str(mountpoint)], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        procs.append(proc)
        deadline = time.monotonic() + 30  # only turns a hang into a failure
        while not os.path.ismount(mountpoint):
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "mount did not appear"
            time.sleep(0.05)
        return mountpoint

    yield mount
    subprocess.run(["fusermount", "-u", str(mountpoint)], capture_output=True)
    for proc in procs:
        output = proc.communicate(timeout=30)[0]
        assert "Traceback" not in output, output


def test_locks_work_on_mounted_files(mounted: Callable[[], Path], put: Put, tmp_path: Path) -> None:
    db = tmp_path / "genes.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE genes (name TEXT)")
        conn.execute("INSERT INTO genes VALUES ('BRCA1'), ('TP53')")
    conn.close()
    put("ref/genes.db", db.read_bytes())
    put("ref/genome.fa", b">chr1\nACGT\n")
    mnt = mounted()
    with open(mnt / "ref" / "genome.fa", "rb") as fh:
        fcntl.lockf(fh, fcntl.LOCK_SH)  # EINVAL when the lock operation was shadowed
        fcntl.lockf(fh, fcntl.LOCK_UN)
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fh, fcntl.LOCK_UN)
        assert fh.read() == b">chr1\nACGT\n"
    ro = sqlite3.connect(f"file:{mnt / 'ref' / 'genes.db'}?mode=ro", uri=True)
    try:
        assert ro.execute("SELECT COUNT(*) FROM genes").fetchone() == (2,)
    finally:
        ro.close()


def test_a_large_object_on_the_mount_is_read_by_pages(mounted: Callable[[], Path], put: Put) -> None:
    data = os.urandom(32 << 20)
    put("vol/big.bin", data)
    mnt = mounted()
    middle = 16 << 20
    with open(mnt / "vol" / "big.bin", "rb") as fh:
        fh.seek(middle)
        assert fh.read(1 << 20) == data[middle:middle + (1 << 20)]
    fetched = node_cache().stats().per_dataset["vol"]["bytes_fetched"]
    assert fetched <= 4 << 20, f"fetched {fetched:,} bytes of a {len(data):,}-byte object to read 1 MiB"
    cache = node_cache()
    assert not cache.object_path(cache.identify(f"{active_settings().persistent_url}/vol/big.bin").key).exists()
