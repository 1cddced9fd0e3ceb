"""A first large read of a cold persistent object on S3 downloads it whole into the node cache and reads behind
that download (``blocks._Follow``); a whole download that fails over a partial entry."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any, Callable

import pytest

from ferry import File
from ferry.config import active_settings, reset_settings
from ferry.datasets import blocks, node_cache
from ferry.storage import write_bytes

MIB = 1 << 20


@pytest.fixture
def s3_store(s3_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    import ferry.datasets as datasets

    monkeypatch.setenv("FERRY_PERSISTENT_URL", f"s3://persistent/{tmp_path.name}")
    monkeypatch.setenv("FERRY_PERSISTENT_OPTIONS", json.dumps(s3_server.options()))
    monkeypatch.setattr(datasets, "BLOCK_READ_THRESHOLD", MIB)
    reset_settings()
    return active_settings().persistent_url


def put(name: str, data: bytes) -> str:
    uri = f"{active_settings().persistent_url}/{name}"
    write_bytes(uri, data, active_settings().options_for(uri), "persistent")
    return uri


def hold_ranges(monkeypatch: pytest.MonkeyPatch, before: Callable[[blocks._Follow, int, int], None]) -> None:
    """Run ``before(follow, start, end)`` in the download's thread each time a range reports progress."""
    original = blocks._Follow.wrote

    def wrote(self: blocks._Follow, start: int, end: int) -> None:
        before(self, start, end)
        original(self, start, end)

    monkeypatch.setattr(blocks._Follow, "wrote", wrote)


def held_download(monkeypatch: pytest.MonkeyPatch) -> tuple[bytes, str, threading.Event]:
    """A 40 MiB object whose download, once a reader follows it, writes its first 8 MiB (the first GET) and then
    holds every other range before its first bytes until the returned gate is set."""
    data = os.urandom(40 * MIB)
    uri = put("vol/data.bin", data)
    gate = threading.Event()

    def hold(follow: blocks._Follow, start: int, end: int) -> None:
        if start:
            assert gate.wait(timeout=120)

    hold_ranges(monkeypatch, hold)
    return data, uri, gate


def entry(uri: str) -> tuple[Any, str]:
    cache = node_cache()
    return cache, cache.identify(uri, active_settings().options_for(uri)).key


def test_a_large_first_read_reads_behind_a_whole_download(s3_store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data, uri, gate = held_download(monkeypatch)
    with File(uri).open("rb") as fh:
        assert fh.read(8 * MIB) == data[:8 * MIB]  # the rest of the download is held: read behind it
        gate.set()
        assert fh.read() == data[8 * MIB:]
    cache, key = entry(uri)
    assert cache.object_path(key).exists() and not cache.pages_path(key).exists()
    stats = cache.stats().per_dataset["vol"]
    assert stats["misses"] == 1 and stats["bytes_fetched"] == len(data)
    with File(uri).open("rb") as again:  # a plain local file from now on
        assert isinstance(again.raw, __import__("io").FileIO)  # type: ignore[attr-defined]
        assert hashlib.sha256(again.read()).digest() == hashlib.sha256(data).digest()


def test_closing_early_stops_the_download_and_leaves_nothing_behind(s3_store: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    data, uri, gate = held_download(monkeypatch)
    fh = File(uri).open("rb")
    assert fh.read(8 * MIB) == data[:8 * MIB]
    follow = fh.raw._follow  # type: ignore[attr-defined]
    closer = threading.Thread(target=fh.close)
    closer.start()
    with follow._changed:  # the close has begun: let the held ranges go on, into the closed reader
        assert follow._changed.wait_for(lambda: follow._closing, timeout=60)
    gate.set()
    closer.join()
    assert follow.done and isinstance(follow.error, blocks._ReaderClosed)
    cache, key = entry(uri)
    assert not cache.object_path(key).exists()
    assert [p.name for p in cache.object_path(key).parent.iterdir()] == []  # no temporaries either
    assert cache._sql("SELECT size, reserved FROM entries WHERE key=?", (key,)) in ([], [(0, 0)])
    assert cache.used_bytes() == 0
    fetched = cache.stats().per_dataset["vol"]["bytes_fetched"]
    assert 8 * MIB <= fetched < len(data)  # what arrived is counted, though not kept
    with File(uri).open("rb") as again:
        assert again.read() == data


def test_a_read_racing_a_download_that_starts_over_is_made_again(s3_store: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The reader finds bytes 8-16 MiB written, and before it reads them the download fails, starts over and
    truncates the file (preallocated again: zeros). What it read then is not kept; it waits and reads again."""
    from ferry.storage import io as storage_io

    monkeypatch.setattr(storage_io, "RETRY_DELAYS", (0.0,))
    data = os.urandom(32 * MIB)  # ranges 0-8 (the first GET), 8-16, 16-24, 24-32 MiB
    uri = put("vol/data.bin", data)
    checked, restarted, asked_again = threading.Event(), threading.Event(), threading.Event()
    failed: list[int] = []
    waits: list[int] = []
    original_wait = blocks._Follow.wait

    def wait(self: blocks._Follow, pos: int, end: int) -> int | None:
        waits.append(pos)
        if pos == 8 * MIB and waits.count(pos) == 2:
            asked_again.set()
        generation = original_wait(self, pos, end)
        if pos == 8 * MIB and waits.count(pos) == 1:  # found written: now the download starts over
            checked.set()
            assert restarted.wait(timeout=120)
        return generation

    def race(follow: blocks._Follow, start: int, end: int) -> None:
        if start == 24 * MIB and not failed:
            assert checked.wait(timeout=120)
            failed.append(start)
            raise ConnectionError("connection reset by peer")
        if follow.generation == 2 and start == 0:  # the file was truncated and preallocated again
            restarted.set()
        if follow.generation == 2 and start == 8 * MIB:  # not rewritten before the reader has read the zeros
            asked_again.wait(timeout=120)  # (only a safety net: with the check, the reader asks again at once)

    monkeypatch.setattr(blocks._Follow, "wait", wait)
    hold_ranges(monkeypatch, race)
    with File(uri).open("rb") as fh:
        assert fh.read(8 * MIB) == data[:8 * MIB]
        second = fh.read(8 * MIB)
        rest = fh.read()
    assert failed and asked_again.is_set()
    assert second == data[8 * MIB:16 * MIB] and rest == data[16 * MIB:]
    cache, key = entry(uri)
    assert cache.object_path(key).read_bytes() == data
    assert cache.stats().per_dataset["vol"]["misses"] == 1


def test_a_jump_ahead_of_the_download_reads_from_the_store_at_once(s3_store: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    data, uri, gate = held_download(monkeypatch)
    with File(uri).open("rb") as fh:
        assert fh.read(8 * MIB) == data[:8 * MIB]
        fh.seek(30 * MIB)
        assert fh.read(MIB) == data[30 * MIB:31 * MIB]  # the download is still held: this is a GET of its own
        gate.set()
        fh.seek(8 * MIB)
        assert fh.read() == data[8 * MIB:]
    cache, key = entry(uri)
    assert cache.object_path(key).read_bytes() == data
    assert cache.stats().per_dataset["vol"]["bytes_fetched"] == len(data) + MIB


def test_a_small_first_read_or_pages_already_there_mean_pages(s3_store: str) -> None:
    data = os.urandom(24 * MIB)
    uri = put("vol/data.bin", data)
    with File(uri).open("rb") as fh:
        assert fh.read(64 << 10) == data[:64 << 10]  # a small first read: pages, fetched as asked
        assert fh.raw._follow is None  # type: ignore[attr-defined]
    with File(uri).open("rb") as fh:  # some pages are there: they are used, and only the rest fetched
        assert fh.read() == data
        assert fh.raw._follow is None  # type: ignore[attr-defined]
    assert node_cache().stats().per_dataset["vol"]["bytes_fetched"] == len(data)



def test_no_room_for_the_whole_object_warns_once_from_the_readers_code(s3_store: str,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The cache is full of an entry in use: the followed download doesn't fit, and neither do the pages the
    reader falls back to. One warning, pointing at the code that read (not into the download's thread)."""
    import warnings

    from ferry.datasets.cache import CacheMissWarning

    monkeypatch.setenv("FERRY_CACHE_MAX_BYTES", str(24 * MIB))
    reset_settings()
    held = put("vol/held.bin", os.urandom(20 * MIB))
    data = os.urandom(16 * MIB)
    uri = put("vol/data.bin", data)
    cache = node_cache()
    _, pin = cache.local_copy(held, "vol", active_settings().options_for(held))
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            with File(uri).open("rb") as fh:
                assert fh.read(8 * MIB) == data[:8 * MIB]
                assert fh.raw._follow is None  # type: ignore[attr-defined]  # it was tried, and gave way to pages
                assert fh.read() == data[8 * MIB:]
    finally:
        pin.close()
    missed = [w for w in seen if issubclass(w.category, CacheMissWarning)]
    assert len(missed) == 1, [str(w.message) for w in missed]
    assert "full of entries in use" in str(missed[0].message)
    assert missed[0].filename == __file__

# ---- a whole download over a partial entry (any store) --------------------------------------------

@pytest.fixture
def file_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    import ferry.datasets as datasets

    monkeypatch.setenv("FERRY_PERSISTENT_URL", f"file://{tmp_path}/persistent")
    monkeypatch.setattr(datasets, "BLOCK_READ_THRESHOLD", MIB)
    reset_settings()
    return active_settings().persistent_url


def test_a_failed_whole_download_gives_back_its_reservation(file_store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import ferry.storage
    from ferry.errors import StorageError

    uri = put("vol/data.bin", os.urandom(16 * MIB))
    with File(uri).open("rb") as fh:  # a pages entry: the download below is its second kind of fill
        fh.read(MIB)

    def broken(*args: Any, **kwargs: Any) -> str:
        raise StorageError("the store went away")

    monkeypatch.setattr(ferry.storage, "download_file", broken)
    with pytest.raises(StorageError, match="went away"):
        File(uri).download()
    cache, key = entry(uri)
    assert cache._sql("SELECT size, reserved FROM entries WHERE key=?", (key,)) == [(MIB, 0)]
