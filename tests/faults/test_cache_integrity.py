"""A task can't corrupt the node cache for the others: entries are read-only and private, and a
modified entry (by any means, root included) is detected on the next hit and fetched again."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Callable

import pytest

from ferry import File, task
from ferry.config import active_settings, reset_settings
from ferry.datasets import node_cache
from ferry.datasets.cache import CacheDamagedWarning

Put = Callable[[str, bytes], str]


def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in [root, *root.rglob("*")]}


def test_cached_files_are_read_only_and_private(store: str, put: Put, monkeypatch: pytest.MonkeyPatch) -> None:
    import ferry.datasets as datasets

    monkeypatch.setattr(datasets, "BLOCK_READ_THRESHOLD", 1 << 20)
    whole = put("refs/a.fa", os.urandom(100_000))
    paged = put("refs/big.bin", os.urandom(2 << 20))
    path = File(whole).download()
    with File(paged).open("rb") as fh:  # a partial object: pages and their map
        fh.seek(1 << 20)
        fh.read(4096)
    modes = _modes(node_cache().root)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o400
    assert all(mode == 0o700 for name, mode in modes.items() if (node_cache().root / name).is_dir()), modes
    assert all(mode & 0o077 == 0 for mode in modes.values()), modes  # nothing for group or others
    assert any(name.endswith(".data") for name in modes) and any(name.endswith(".map") for name in modes)


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another user needs root")
def test_another_user_cannot_read_the_cache(tmp_path: Path, put: Put, store: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    shared = Path(tempfile.mkdtemp(prefix="ferry-node-"))  # like /var/cache on a shared node: others may traverse
    shared.chmod(0o755)
    monkeypatch.setenv("FERRY_CACHE_DIR", str(shared / "cache"))
    reset_settings()
    try:
        path = File(put("refs/a.fa", b">chr1\nACGT\n")).download()
        as_nobody = subprocess.run(["cat", path], user=65534, capture_output=True, text=True)
        assert as_nobody.returncode != 0 and "Permission denied" in as_nobody.stderr
        listing = subprocess.run(["ls", str(shared / "cache" / "objects")], user=65534, capture_output=True)
        assert listing.returncode != 0
    finally:
        node_cache().close()
        subprocess.run(["rm", "-rf", str(shared)], check=True)


def _write_as_a_task_would(path: str, offset: int, data: bytes, *, chmod: bool, keep_mtime: bool = False) -> None:
    before = os.stat(path)
    if chmod:  # a non-root task must first make the file writable
        os.chmod(path, 0o600)
    with open(path, "r+b") as fh:  # root writes a 0400 file as it is
        fh.seek(offset)
        fh.write(data)
    if chmod:
        os.chmod(path, 0o400)
    if keep_mtime:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


@pytest.mark.parametrize("where, chmod, keep_mtime", [
    ("start", False, False),  # root, straight through the 0400 mode
    ("middle", True, False),  # chmod, write where no fingerprint sample falls, chmod back
    ("end", True, True),  # and put the mtime back as well
], ids=["root-writes-start", "chmod-writes-middle", "mtime-restored"])
def test_a_modified_entry_is_detected_and_fetched_again(store: str, put: Put, where: str, chmod: bool,
                                                        keep_mtime: bool) -> None:
    data = os.urandom(3 << 20)
    digest = hashlib.sha256(data).hexdigest()
    uri = put("refs/genome.fa", data)

    @task
    def first(f: File) -> str:
        path = os.fspath(f)
        offset = {"start": 0, "middle": (3 << 20) // 2 + 12345, "end": (3 << 20) - 2}[where]
        _write_as_a_task_would(path, offset, b"XX", chmod=chmod, keep_mtime=keep_mtime)
        return path

    @task
    def second(f: File) -> str:
        return hashlib.sha256(Path(f).read_bytes()).hexdigest()

    path = first(f=File(uri))
    assert Path(path).read_bytes() != data  # the shared copy really was changed
    with pytest.warns(CacheDamagedWarning, match="modified after it was cached"):
        assert second(f=File(uri)) == digest
    assert Path(path).read_bytes() == data  # the same path now holds the store's bytes again
    stats = node_cache().stats().per_dataset["refs"]
    assert (stats["damaged"], stats["misses"], stats["bytes_fetched"]) == (1, 2, 2 * len(data))
    assert second(f=File(uri)) == digest  # and it is a plain hit again
    assert node_cache().stats().per_dataset["refs"]["hits"] == 1


def test_a_damaged_page_is_detected_and_only_it_is_fetched_again(store: str, put: Put,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import ferry.datasets as datasets
    from ferry.datasets.blocks import PAGE_SIZE

    monkeypatch.setattr(datasets, "BLOCK_READ_THRESHOLD", 1 << 20)
    data = os.urandom(4 << 20)
    uri = put("vol/data.bin", data)
    with File(uri).open("rb") as fh:
        fh.seek(1 << 20)
        assert fh.read(256 << 10) == data[1 << 20:(1 << 20) + (256 << 10)]
    cache = node_cache()
    pages = cache.pages_path(cache.identify(uri, active_settings().options_for(uri)).key)
    with open(pages, "r+b") as fh:  # flip bytes inside one present page
        fh.seek((1 << 20) + 100)
        fh.write(b"\0\0\0\0")
    fetched = cache.stats().per_dataset["vol"]["bytes_fetched"]
    with pytest.warns(CacheDamagedWarning, match="page") as caught:
        with File(uri).open("rb") as fh:
            fh.seek(1 << 20)
            assert fh.read(64 << 10) == data[1 << 20:(1 << 20) + (64 << 10)]
    assert caught[0].filename == __file__  # it points at the read
    stats = cache.stats().per_dataset["vol"]
    assert stats["bytes_fetched"] - fetched == PAGE_SIZE and stats["damaged"] == 1
    assert cache.used_bytes() == 256 << 10  # the refetched page is still counted once


def test_a_reader_that_streams_reports_a_damaged_page_once_and_fetches_only_it(
        store: str, put: Put, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader with no room left in the cache reads the pages it holds and GETs the rest; a damaged one among
    them is GET too, and reported as a caching reader reports it (it used to be fetched again silently)."""
    import warnings

    import ferry.datasets as datasets
    from ferry.datasets.blocks import PAGE_SIZE
    from ferry.datasets.cache import CacheMissWarning

    monkeypatch.setattr(datasets, "BLOCK_READ_THRESHOLD", 1 << 20)
    data = os.urandom(4 << 20)
    uri = put("vol/data.bin", data)
    with File(uri).open("rb") as fh:  # 256 KiB of pages cached, at 1 MiB
        fh.seek(1 << 20)
        fh.read(256 << 10)
    cache = node_cache()
    with open(cache.pages_path(cache.identify(uri, active_settings().options_for(uri)).key), "r+b") as fh:
        fh.seek((1 << 20) + 100)
        fh.write(b"\0\0\0\0")
    monkeypatch.setenv("FERRY_CACHE_MAX_BYTES", str(256 << 10))  # no room for another page
    reset_settings()
    cache = node_cache()
    fetched = cache.stats().per_dataset["vol"]["bytes_fetched"]
    with warnings.catch_warnings(record=True) as caught, File(uri).open("rb") as fh:
        warnings.simplefilter("always")
        for _ in range(2):  # (each read elsewhere than the last: not served from the bytes it kept)
            fh.seek(0)
            assert fh.read(64 << 10) == data[:64 << 10]  # no room: it streams from now on
            fh.seek(1 << 20)
            assert fh.read(64 << 10) == data[1 << 20:(1 << 20) + (64 << 10)]
    kinds = [type(w.message) for w in caught]
    assert kinds.count(CacheMissWarning) == 1 and kinds.count(CacheDamagedWarning) == 1, [str(w.message) for w in caught]
    assert {w.filename for w in caught} == {__file__}  # both point at the read
    stats = cache.stats().per_dataset["vol"]
    assert stats["damaged"] == 1
    assert stats["bytes_fetched"] - fetched == 2 * ((64 << 10) + PAGE_SIZE)  # reads at 0, and the damaged page


def test_a_large_read_straight_into_the_callers_buffer_checks_its_pages_too(store: str, put: Put,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import ferry.datasets as datasets
    from ferry.datasets import blocks

    monkeypatch.setattr(datasets, "BLOCK_READ_THRESHOLD", 1 << 20)
    data = os.urandom(4 << 20)
    uri = put("vol/data.bin", data)
    direct = []
    real_read_pages = blocks.BlockReader._read_pages

    def read_pages(self: Any, first: int, last: int, into: Any = None) -> Any:
        direct.append(into is not None)
        return real_read_pages(self, first, last, into)

    monkeypatch.setattr(blocks.BlockReader, "_read_pages", read_pages)
    with File(uri).open("rb") as fh:
        fh.seek(1 << 20)
        assert fh.read(1 << 20) == data[1 << 20:2 << 20]  # whole pages, 1 MiB: the direct path
    assert direct and all(direct)
    cache = node_cache()
    pages = cache.pages_path(cache.identify(uri, active_settings().options_for(uri)).key)
    with open(pages, "r+b") as fh:
        fh.seek((1 << 20) + blocks.PAGE_SIZE + 7)
        fh.write(b"\xff" * 8)
    fetched = cache.stats().per_dataset["vol"]["bytes_fetched"]
    with pytest.warns(CacheDamagedWarning, match="page"):
        with File(uri).open("rb") as fh:
            fh.seek(1 << 20)
            assert fh.read(1 << 20) == data[1 << 20:2 << 20]
    assert cache.stats().per_dataset["vol"]["bytes_fetched"] - fetched == blocks.PAGE_SIZE


def test_completing_an_object_checks_the_pages_other_readers_wrote(store: str, put: Put,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import ferry.datasets as datasets
    from ferry.datasets.blocks import PAGE_SIZE

    monkeypatch.setattr(datasets, "BLOCK_READ_THRESHOLD", 1 << 20)
    data = os.urandom(4 << 20)
    uri = put("vol/data.bin", data)
    with File(uri).open("rb") as fh:  # the first half, by one reader
        assert fh.read(2 << 20) == data[:2 << 20]
    cache = node_cache()
    key = cache.identify(uri, active_settings().options_for(uri)).key
    with open(cache.pages_path(key), "r+b") as fh:
        fh.seek(100)
        fh.write(b"\0\0\0\0")
    with File(uri).open("rb") as fh:  # the second half, by another: every page is then present
        fh.seek(2 << 20)
        assert fh.read() == data[2 << 20:]
    assert not cache.object_path(key).exists()  # the damaged page kept it from becoming the whole object
    fetched = cache.stats().per_dataset["vol"]["bytes_fetched"]
    with File(uri).open("rb") as fh:
        assert fh.read() == data
    assert cache.stats().per_dataset["vol"]["bytes_fetched"] - fetched == PAGE_SIZE  # only that page again
    assert cache.object_path(key).read_bytes() == data
