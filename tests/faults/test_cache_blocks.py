"""Block reads: each page fetched once per node however many readers overlap, an index that counts
bytes on disk once, the size limit kept, and random reads that fetch little more than they ask."""

from __future__ import annotations

import hashlib
import os
import random
import threading
from pathlib import Path
from typing import Callable

import pytest
from cachekit import cache_files, finish

from ferry import File
from ferry.config import reset_settings
from ferry.datasets import node_cache
from ferry.datasets.cache import CacheMissWarning
from ferry.faults import fault_environment, release, wait_for

Put = Callable[[str, bytes], str]


def test_sixteen_overlapping_readers_fetch_each_page_once(store: str, put: Put, reader: Callable[..., object],
                                                         barrier: Path) -> None:
    data = os.urandom(16 << 20)
    uri = put("shared/blob.bin", data)
    env = fault_environment(barrier, pause_at=("reader.ready", "blocks.fetched"), mark_at=("blocks.fetch.wait",))
    procs = [reader(uri, "open", env, threshold=1 << 20) for _ in range(16)]
    wait_for(barrier, "reader.ready", 16, alive=procs)  # all imported: start together
    release(barrier, "reader.ready")
    # One reader holds the first pages' lock with their bytes in hand; all 16 asked for them.
    wait_for(barrier, "blocks.fetched", 1, alive=procs)
    wait_for(barrier, "blocks.fetch.wait", 16, alive=procs)
    release(barrier, "blocks.fetched")
    results = [finish(p) for p in procs]  # type: ignore[arg-type]
    assert all(code == 0 for code, _, _ in results), [err for _, _, err in results]
    assert {out for _, out, _ in results} == {hashlib.sha256(data).hexdigest()}
    cache = node_cache()
    assert cache.stats().per_dataset["shared"]["bytes_fetched"] == len(data)  # not 16x
    assert cache.used_bytes() == len(data)  # counted once...
    assert sum(cache_files(cache.root).values()) == len(data)  # ...as on disk: one file, the whole object
    assert cache.stats().entries == 1


def test_opening_an_object_never_waits_for_another_readers_fetch(store: str, put: Put, reader: Callable[..., object],
                                                                  barrier: Path) -> None:
    data = os.urandom(4 << 20)
    uri = put("shared/blob.bin", data)
    late = reader(uri, "open", fault_environment(barrier, pause_at=("cache.pages.wait",), mark_at=("blocks.fetch.wait",)),
                  threshold=1 << 20)
    wait_for(barrier, "cache.pages.wait", 1, alive=[late])  # found no pages: about to create them
    first = reader(uri, "open", fault_environment(barrier, pause_at=("blocks.fetched",), mark_at=("blocks.fetch.wait",)),
                   threshold=1 << 20)
    wait_for(barrier, "blocks.fetched", 1, alive=[first])  # created them, and is mid-fetch
    release(barrier, "cache.pages.wait")
    wait_for(barrier, "blocks.fetch.wait", 2, alive=[late], timeout=30)  # the late one got past opening anyway
    release(barrier, "blocks.fetched")
    results = [finish(p) for p in (first, late)]  # type: ignore[arg-type]
    assert [(code, out) for code, out, _ in results] == [(0, hashlib.sha256(data).hexdigest())] * 2
    assert node_cache().stats().per_dataset["shared"]["bytes_fetched"] == len(data)


def test_threads_of_one_process_share_page_fetches(store: str, put: Put, monkeypatch: pytest.MonkeyPatch) -> None:
    import ferry.datasets as datasets

    monkeypatch.setattr(datasets, "BLOCK_READ_THRESHOLD", 1 << 20)
    data = os.urandom(8 << 20)
    uri = put("shared/blob.bin", data)
    start = threading.Barrier(4, timeout=120)  # a reader that fails to open breaks the barrier, not the suite
    digests: list[str] = []
    failures: list[BaseException] = []

    def read() -> None:
        try:
            with File(uri).open("rb") as fh:
                start.wait()
                digests.append(hashlib.sha256(fh.read()).hexdigest())
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            failures.append(exc)
            start.abort()

    threads = [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [f for f in failures if not isinstance(f, threading.BrokenBarrierError)] == []
    assert digests == [hashlib.sha256(data).hexdigest()] * 4
    assert node_cache().stats().per_dataset["shared"]["bytes_fetched"] == len(data)


def test_block_reads_keep_the_size_limit(store: str, put: Put, monkeypatch: pytest.MonkeyPatch) -> None:
    import ferry.datasets as datasets

    monkeypatch.setattr(datasets, "BLOCK_READ_THRESHOLD", 1 << 20)
    monkeypatch.setenv("FERRY_CACHE_MAX_BYTES", str(4 << 20))
    reset_settings()
    old = put("old/a.bin", os.urandom(2 << 20))
    node_cache().local_copy(old, "old")[1].close()  # cached whole, then released: evictable
    data = os.urandom(16 << 20)
    uri = put("big/data.bin", data)
    cache = node_cache()
    with pytest.warns(CacheMissWarning, match="full"):
        with File(uri).open("rb") as fh:
            assert fh.read() == data
    assert cache.used_bytes() <= 4 << 20
    assert sum(cache_files(cache.root).values()) <= (4 << 20) + 4096  # the disk agrees (plus the page map)
    assert cache.stats().per_dataset["old"]["evictions"] == 1  # room was made before streaming
    assert cache.stats().per_dataset["big"]["bytes_fetched"] == len(data)  # streamed pages fetched once too


def test_random_64k_reads_fetch_at_most_twice_what_they_ask(store: str, put: Put) -> None:
    size = 64 << 20  # the default block-read threshold
    data = os.urandom(size)
    uri = put("vol/data.bin", data)
    rng = random.Random(7)
    asked = 0
    with File(uri).open("rb") as fh:
        for _ in range(200):
            offset = rng.randrange(0, size - (64 << 10))
            fh.seek(offset)
            assert fh.read(64 << 10) == data[offset:offset + (64 << 10)]
            asked += 64 << 10
    fetched = node_cache().stats().per_dataset["vol"]["bytes_fetched"]
    assert fetched <= 2 * asked, f"fetched {fetched / asked:.2f}x the bytes asked"


def _gated_ranges(monkeypatch: pytest.MonkeyPatch, hold: Callable[[int, int, int], None]) -> list[tuple[int, int]]:
    """Every ranged read of a block reader, in 1 MiB pieces; ``hold(start, stop, offset)`` runs before each piece."""
    from ferry.storage import transfer

    real, calls = transfer.get_range, []

    def get_range(uri: str, options: object) -> Callable[[int, int], object]:
        read = real(uri, options)  # type: ignore[arg-type]

        def pieces(start: int, stop: int) -> object:
            calls.append((start, stop))
            offset = start
            for piece in read(start, stop):
                view = memoryview(piece)
                for i in range(0, len(view), 1 << 20):
                    hold(start, stop, offset)
                    offset += len(view[i:i + (1 << 20)])
                    yield view[i:i + (1 << 20)]
        return pieces

    monkeypatch.setattr(transfer, "get_range", get_range)
    return calls


def test_a_read_takes_what_read_ahead_brought_in_without_waiting_for_its_whole_get(
        store: str, put: Put, monkeypatch: pytest.MonkeyPatch) -> None:
    import ferry.datasets as datasets

    monkeypatch.setattr(datasets, "BLOCK_READ_THRESHOLD", 1 << 20)
    data = os.urandom(16 << 20)
    uri = put("vol/data.bin", data)
    at_gate, gate = threading.Event(), threading.Event()

    def hold(start: int, stop: int, offset: int) -> None:
        if offset >= 10 << 20:  # read-ahead past 10 MiB waits at the gate
            at_gate.set()
            assert gate.wait(timeout=120)

    _gated_ranges(monkeypatch, hold)
    got: list[bytes] = []
    with File(uri).open("rb") as fh:
        assert fh.read(8 << 20) == data[:8 << 20]  # fetched by the read itself; read-ahead starts at 8 MiB
        assert at_gate.wait(timeout=120)  # read-ahead has brought in 8-10 MiB and waits mid-GET
        reader = threading.Thread(target=lambda: got.append(fh.read(2 << 20)))
        reader.start()
        reader.join(timeout=60)  # only a safety net: the read needs nothing from the gated GETs
        finished = not reader.is_alive()
        gate.set()
        reader.join()
        assert finished, "a read of pages read-ahead had marked present waited for the rest of its GET"
        assert got == [data[8 << 20:10 << 20]]
        assert fh.read() == data[10 << 20:]
    assert node_cache().stats().per_dataset["vol"]["bytes_fetched"] == len(data)  # waited for, not fetched again


def test_a_large_first_read_sends_every_fetcher_a_share_of_the_rest_at_once(store: str, put: Put,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A read of 8 MiB or more streams: the rest of the object (up to a whole GET per fetcher) is on its way from the
    first read, as a download starts, instead of only four reads' worth, grown as the reader moves on."""
    import ferry.datasets as datasets
    from ferry.storage.transfer import TransferConfig

    monkeypatch.setattr(datasets, "BLOCK_READ_THRESHOLD", 1 << 20)
    data = os.urandom(64 << 20)
    uri = put("vol/data.bin", data)
    calls = _gated_ranges(monkeypatch, lambda start, stop, offset: None)
    with File(uri).open("rb") as fh:
        got = b"".join(iter(lambda: fh.read(8 << 20), b""))
    assert got == data
    fetchers = TransferConfig().concurrency
    share = (56 << 20) // fetchers  # the 56 MiB after the first read, split over the fetchers
    assert sorted(calls) == [(0, 8 << 20), *[((8 << 20) + i * share, (8 << 20) + (i + 1) * share) for i in range(fetchers)]]
    assert node_cache().stats().per_dataset["vol"]["bytes_fetched"] == len(data)


def test_closing_a_reader_stops_its_read_ahead_and_keeps_what_arrived(store: str, put: Put,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import ferry.datasets as datasets

    monkeypatch.setattr(datasets, "BLOCK_READ_THRESHOLD", 1 << 20)
    data = os.urandom(40 << 20)
    uri = put("vol/data.bin", data)
    at_gate, gate = threading.Event(), threading.Event()

    def hold(start: int, stop: int, offset: int) -> None:
        if offset >= 12 << 20:  # every read-ahead GET waits at the gate from 12 MiB on
            at_gate.set()
            assert gate.wait(timeout=120)

    _gated_ranges(monkeypatch, hold)
    fh = File(uri).open("rb")
    assert fh.read(8 << 20) == data[:8 << 20]  # read-ahead: four GETs of 8 MiB, 8-40 MiB
    assert at_gate.wait(timeout=120)
    closing = fh.raw._closing  # type: ignore[attr-defined]
    closer = threading.Thread(target=fh.close)
    closer.start()
    assert closing.wait(timeout=60)  # the close has begun: let the held GETs go on
    gate.set()
    closer.join()
    fetched = node_cache().stats().per_dataset["vol"]["bytes_fetched"]
    # The read's 8 MiB, 8-12 MiB, and at most the one 1 MiB piece each of the four GETs had in hand: not 40 MiB.
    assert 12 << 20 <= fetched <= 16 << 20, f"fetched {fetched >> 20} MiB"
    # each stopped GET had allocated its 8 MiB of blocks up front: the part that didn't arrive was given back
    cache = node_cache()
    (key,), = cache._sql("SELECT key FROM entries")
    assert cache.pages_path(key).stat().st_blocks * 512 < cache.used_bytes() + (1 << 20)
    with File(uri).open("rb") as again:
        assert again.read() == data
    # What arrived before the close was kept: the second reader fetched only the rest.
    assert node_cache().stats().per_dataset["vol"]["bytes_fetched"] == len(data)


def test_a_get_failing_mid_way_resumes_after_the_pages_it_marked(store: str, put: Put,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import ferry.datasets as datasets
    from ferry.storage import io as storage_io

    monkeypatch.setattr(datasets, "BLOCK_READ_THRESHOLD", 1 << 20)
    monkeypatch.setattr(storage_io, "RETRY_DELAYS", (0.0,))
    data = os.urandom(8 << 20)
    uri = put("vol/data.bin", data)
    failed: list[int] = []

    def hold(start: int, stop: int, offset: int) -> None:
        if offset == 3 << 20 and not failed:
            failed.append(offset)
            raise ConnectionError("connection reset by peer")

    calls = _gated_ranges(monkeypatch, hold)
    with File(uri).open("rb") as fh:
        assert fh.read(len(data)) == data
    assert failed and calls == [(0, 8 << 20), (3 << 20, 8 << 20)]  # the retry asked only for what was missing
    assert node_cache().stats().per_dataset["vol"]["bytes_fetched"] == len(data)
