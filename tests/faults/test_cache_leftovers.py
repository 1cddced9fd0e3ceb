"""Fills killed mid-way (SIGKILL at named points) are never hits, and what they left is reclaimed
when the cache starts, on prune and on clear; never what a live filler is still writing."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
from cachekit import cache_files, finish, temporaries
from click.testing import CliRunner

from ferry import File
from ferry.cli.main import cli
from ferry.config import active_settings
from ferry.datasets import node_cache
from ferry.datasets.blocks import PAGE_SIZE, RECORD, reclaim_pages
from ferry.datasets.cache import NodeCache
from ferry.faults import fault_environment, release, wait_for

Put = Callable[[str, bytes], str]
KILLED = -signal.SIGKILL


def present_bytes(map_path: Path, size: int, page: int) -> int:
    """Bytes of the pages a map marks present, counted here from its records (not by the code under test)."""
    flags = [flag for _, flag in RECORD.iter_unpack(map_path.read_bytes())]
    return sum(min(page, size - i * page) for i, flag in enumerate(flags) if flag and i * page < size)


def _cache_root() -> Path:
    return active_settings().cache_dir


def _fresh_start() -> NodeCache:
    """The cache as a newly started process sees it (``node_cache()`` is one instance per process)."""
    s = active_settings()
    return NodeCache(s.cache_dir, s.cache_max_bytes, s.cache_ttl)


def test_a_whole_fill_killed_before_publishing_is_reclaimed_on_start(store: str, put: Put, reader: Callable[..., object]) -> None:
    data = os.urandom(3 << 20)
    uri = put("fragile/x.bin", data)
    code, _, _ = finish(reader(uri, "download", fault_environment(kill_at="cache.fill.staged")))  # type: ignore[arg-type]
    assert code == KILLED
    left = temporaries(_cache_root())
    assert left and sum(cache_files(_cache_root()).values()) >= len(data)  # a full-size temporary, as reported
    cache = _fresh_start()
    assert temporaries(cache.root) == [] and cache_files(cache.root) == {}
    assert cache.used_bytes() == 0 and cache.stats().entries == 0
    assert Path(File(uri).download()).read_bytes() == data


def test_a_download_killed_midway_is_reclaimed_by_prune(store: str, put: Put) -> None:
    crasher = """
import os, sys
import fsspec.implementations.local as local
from ferry import File

def crash(self, rpath, lpath, *args, **kwargs):
    with open(lpath, "wb") as fh:
        fh.write(b"partial" * 100000)
        fh.flush()
    os.kill(os.getpid(), 9)

local.LocalFileSystem.get_file = crash
File(sys.argv[1]).download()
"""
    uri = put("fragile/x.bin", os.urandom(1 << 20))
    cache = node_cache()  # started before the kill: only prune can find the leftover
    crashed = subprocess.run([sys.executable, "-c", crasher, uri], capture_output=True)
    assert crashed.returncode == KILLED
    assert temporaries(cache.root)
    result = CliRunner().invoke(cli, ["cache", "prune"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("freed") and not result.output.startswith("freed 0")
    assert temporaries(cache.root) == [] and cache.used_bytes() == 0


def test_clear_reclaims_leftovers_of_killed_page_fetches(store: str, put: Put, reader: Callable[..., object]) -> None:
    data = os.urandom(4 << 20)
    uri = put("pages/x.bin", data)
    cache = node_cache()
    env = fault_environment(kill_at="blocks.written")  # pages and map written, index not updated
    code, _, _ = finish(reader(uri, "open", env, threshold=1 << 20))  # type: ignore[arg-type]
    assert code == KILLED
    assert cache.used_bytes() == 0 and cache_files(cache.root)  # pages on disk the index doesn't count yet
    result = CliRunner().invoke(cli, ["cache", "clear", "--datasets"])
    assert result.exit_code == 0, result.output
    assert cache_files(cache.root) == {} and cache.used_bytes() == 0 and cache.stats().entries == 0


def test_start_recounts_pages_a_killed_reader_wrote(store: str, put: Put, reader: Callable[..., object]) -> None:
    # a fetch is written (the read's 8 MiB, or one of its read-ahead's two GETs of 4 MiB), then the reader is killed
    data = os.urandom(16 << 20)
    uri = put("pages/x.bin", data)
    code, _, _ = finish(reader(uri, "open", fault_environment(kill_at="blocks.written"), threshold=1 << 20))  # type: ignore[arg-type]
    assert code == KILLED
    cache = _fresh_start()
    written = sum(cache_files(cache.root).values())
    (key,), = cache._sql("SELECT key FROM entries")
    shown = present_bytes(cache.map_path(key), len(data), PAGE_SIZE)  # that fetch's, and what the other one marked
    assert cache.used_bytes() == shown <= written  # the pages the map shows, counted once
    # and the disk holds only those: what the killed fetches allocated or wrote without marking was given back
    assert cache.pages_path(key).stat().st_blocks * 512 < shown + (1 << 20)
    assert shown >= 4 << 20
    assert cache._sql("SELECT SUM(reserved) FROM entries")[0][0] == 0
    fetched_before = cache.stats().per_dataset["pages"]["bytes_fetched"]
    cache.close()
    import ferry.datasets as datasets

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(datasets, "BLOCK_READ_THRESHOLD", 1 << 20)
        with File(uri).open("rb") as fh:
            assert fh.read() == data
    fetched = node_cache().stats().per_dataset["pages"]["bytes_fetched"] - fetched_before
    assert fetched == len(data) - shown  # the kept pages weren't fetched again


def test_the_blocks_of_pages_not_marked_present_are_given_back(tmp_path: Path) -> None:
    """A fetch allocates its pages' blocks before its GET and is killed before marking them: the start-up
    reclaim punches them out, and leaves the marked pages as they were."""
    pages, count = tmp_path / "x.pages", 64
    written = os.urandom(count * PAGE_SIZE)
    pages.write_bytes(written)
    marked = [i < 16 or i >= 48 for i in range(count)]
    (tmp_path / "x.map").write_bytes(b"".join(RECORD.pack(7, int(p)) for p in marked))
    os.sync()
    assert pages.stat().st_blocks * 512 == count * PAGE_SIZE
    present, freed = reclaim_pages(pages, tmp_path / "x.map", count * PAGE_SIZE, PAGE_SIZE)
    assert present == freed == 32 * PAGE_SIZE and pages.stat().st_blocks * 512 == 32 * PAGE_SIZE
    back = pages.read_bytes()
    for i, kept in enumerate(marked):
        assert back[i * PAGE_SIZE:(i + 1) * PAGE_SIZE] == (written[i * PAGE_SIZE:(i + 1) * PAGE_SIZE] if kept
                                                           else bytes(PAGE_SIZE)), f"page {i}"


@pytest.mark.parametrize("how, point", [("download", "cache.fill.staged"), ("open", "blocks.fetched")],
                         ids=["whole-fill", "page-fetch"])
def test_a_live_fillers_files_are_never_reclaimed(store: str, put: Put, reader: Callable[..., object],
                                                  barrier: Path, how: str, point: str) -> None:
    data = os.urandom(4 << 20)
    uri = put("live/x.bin", data)
    proc = reader(uri, how, fault_environment(barrier, pause_at=(point,)), threshold=1 << 20)
    wait_for(barrier, point, 1, alive=[proc])  # it holds the key's fill lock, mid-fill
    before = cache_files(_cache_root())
    cache = _fresh_start()  # start, prune, clear: none may touch the filler's files
    cache.prune(0)
    cache.clear()
    assert cache_files(cache.root) == before
    release(barrier, point)
    code, out, err = finish(proc)  # type: ignore[arg-type]
    assert code == 0, err
    assert out == hashlib.sha256(data).hexdigest()
    assert cache.reclaim() == 0 and temporaries(cache.root) == []
    assert Path(File(uri).download()).read_bytes() == data


def test_kill_points_fire_at_the_nth_pass_only_when_armed() -> None:
    code = "from ferry.faults import kill_point\nfor i in range(3):\n    kill_point('x')\n    print(i, flush=True)"
    armed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env={**os.environ, **fault_environment(kill_at="x@2")})
    assert (armed.returncode, armed.stdout.split()) == (KILLED, ["0"])
    unarmed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (unarmed.returncode, unarmed.stdout.split()) == (0, ["0", "1", "2"])


def test_an_index_of_an_older_layout_is_dropped_not_crashed_on(store: str, put: Put) -> None:
    import sqlite3

    root = _cache_root()
    (root / "blocks" / ("ab" * 32)).mkdir(parents=True)  # the old layout: a folder of blocks per object
    (root / "blocks" / ("ab" * 32) / "0").write_bytes(b"old block")
    old = sqlite3.connect(root / "index.db")
    old.execute("CREATE TABLE entries (key TEXT PRIMARY KEY, uri TEXT, dataset TEXT, identity TEXT, size INTEGER, "
                "complete INTEGER, last_access REAL)")
    old.execute("INSERT INTO entries VALUES ('k', 'u', 'd', 'i', 5, 1, 0)")
    old.commit()
    old.close()
    cache = node_cache()
    assert cache.used_bytes() == 0 and cache_files(root) == {}
    uri = put("d/x.bin", b"new")
    assert Path(File(uri).download()).read_bytes() == b"new"
