"""A full disk under the node cache: reads still succeed (streamed from the store, with a warning),
and the disk is left as it was: no temporaries, nothing the index doesn't count."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from cachekit import cache_files, temporaries

from ferry import File, task
from ferry.config import reset_settings
from ferry.datasets import node_cache
from ferry.datasets.cache import CacheMissWarning, NodeCache
from ferry.errors import DiskFullError, StorageError
from ferry.storage import download_file

Put = Callable[[str, bytes], str]


@pytest.fixture
def small_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The node cache on its own 8 MiB tmpfs (mounting needs root)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a small tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"can't mount a tmpfs here: {mounted.stderr.strip()}")
    monkeypatch.setenv("FERRY_CACHE_DIR", str(disk / "cache"))
    reset_settings()
    try:
        yield disk
    finally:
        node_cache().close()
        subprocess.run(["umount", "-l", str(disk)], check=True)


def _used(disk: Path) -> int:
    """Bytes used on the disk, but for the index's own files (which hold the statistics of the read)."""
    st = os.statvfs(disk)
    index = sum(p.stat().st_blocks * 512 for p in (disk / "cache").glob("index.db*"))
    return (st.f_blocks - st.f_bfree) * st.f_frsize - index


def _no_precheck(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the cache believe there is room, so the kernel's ENOSPC is what stops the write."""
    monkeypatch.setattr(NodeCache, "_shortfall", lambda self, db, needed: 0)


@task
def size_of(f: File) -> int:
    with open(f, "rb") as fh:
        return len(fh.read())


def test_enospc_keeps_its_errno_through_download_file(tmp_path: Path, store: str, put: Put,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import fsspec.implementations.local as local

    uri = put("x/a.bin", os.urandom(1 << 20))

    def full(self: object, rpath: str, lpath: str, *args: object, **kwargs: object) -> None:
        Path(lpath).write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(local.LocalFileSystem, "get_file", full)
    with pytest.raises(DiskFullError, match="disk is full") as info:
        download_file(uri, tmp_path / "out" / "a.bin", None, "persistent")
    assert info.value.errno == errno.ENOSPC and isinstance(info.value, (OSError, StorageError))
    assert os.listdir(tmp_path / "out") == []  # its temporary is gone


def test_a_fill_hitting_enospc_streams_and_leaves_nothing(store: str, put: Put, monkeypatch: pytest.MonkeyPatch) -> None:
    import fsspec.implementations.local as local

    data = os.urandom(2 << 20)
    uri = put("x/a.bin", data)
    cache = node_cache()
    real_get = local.LocalFileSystem.get_file

    def full_cache_disk(self: object, rpath: str, lpath: str, *args: object, **kwargs: object) -> None:
        if str(lpath).startswith(str(cache.root)):  # only the cache's disk is full
            Path(lpath).write_bytes(data[:1 << 20])
            raise OSError(errno.ENOSPC, "No space left on device")
        real_get(self, rpath, lpath, *args, **kwargs)

    monkeypatch.setattr(local.LocalFileSystem, "get_file", full_cache_disk)
    with pytest.warns(CacheMissWarning, match="disk is full"):
        assert size_of(f=File(uri)) == len(data)
    assert cache_files(cache.root) == {} and cache.used_bytes() == 0 and cache.stats().entries == 0


def test_a_large_read_on_a_small_disk_streams_and_leaves_the_disk_as_it_was(small_disk: Path, store: str,
                                                                           put: Put) -> None:
    data = os.urandom(20 << 20)  # 20 MiB through an 8 MiB disk, the cache's limit being 10 GiB
    uri = put("big/x.bin", data)
    cache = node_cache()
    before = _used(small_disk)
    with pytest.warns(CacheMissWarning, match="full"):
        assert size_of(f=File(uri)) == len(data)
    assert _used(small_disk) == before and cache_files(cache.root) == {}


def test_a_real_enospc_mid_fill_streams_and_leaves_the_disk_as_it_was(small_disk: Path, store: str, put: Put,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _no_precheck(monkeypatch)
    data = os.urandom(20 << 20)
    uri = put("big/x.bin", data)
    cache = node_cache()
    before = _used(small_disk)
    with pytest.warns(CacheMissWarning, match="disk is full"):
        assert size_of(f=File(uri)) == len(data)
    assert _used(small_disk) == before and temporaries(cache.root) == [] and cache.used_bytes() == 0


def _read_20_mib_through_blocks(put: Put, monkeypatch: pytest.MonkeyPatch, warning: str) -> Any:
    """Read a 20 MiB object through the block reader (it wouldn't fit on the small disk) and check every byte and
    the warning that says the cache was passed by; the node cache."""
    import ferry.datasets as datasets

    monkeypatch.setattr(datasets, "BLOCK_READ_THRESHOLD", 1 << 20)
    data = os.urandom(20 << 20)
    uri = put("big/x.bin", data)
    cache = node_cache()
    with pytest.warns(CacheMissWarning, match=warning):
        with File(uri).open("rb") as fh:
            assert b"".join(iter(lambda: fh.read(1 << 20), b"")) == data
    return cache


def test_block_reads_on_a_small_disk_never_fill_it(small_disk: Path, store: str, put: Put,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    cache = _read_20_mib_through_blocks(put, monkeypatch, warning="full")
    st = os.statvfs(small_disk)
    assert st.f_bavail * st.f_frsize > 0  # room is left for others
    on_disk = sum(size for name, size in cache_files(cache.root).items() if name.endswith(".data"))
    assert on_disk == cache.used_bytes() > 0  # what is cached is counted, and nothing else is there


def test_a_real_enospc_writing_pages_gives_the_space_back(small_disk: Path, store: str, put: Put,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    _no_precheck(monkeypatch)
    cache = _read_20_mib_through_blocks(put, monkeypatch, warning="disk is full")
    on_disk = sum(size for name, size in cache_files(cache.root).items() if name.endswith(".data"))
    assert on_disk == cache.used_bytes() > 0  # the failed write's blocks were given back
    hog = small_disk / f"other-{uuid.uuid4().hex}"  # and the disk is usable again by others
    hog.write_bytes(b"x" * (256 << 10))
