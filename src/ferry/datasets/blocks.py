"""Random access to a large persistent object without downloading all of it.

``BlockReader`` is a seekable, read-only raw file: a read fetches only the
pages it touches (32 KiB each, so a random 64 KiB read fetches at most
96 KiB). While reads stay sequential, read-ahead threads (as many as the
store's transfer concurrency) fetch twice as far ahead as the run has read
so far, or four of its reads if that is more, in ranged GETs of 4 to 32 MiB
(a share of that distance per thread, or of what is left of the object),
topped up a GET at a time as the reader moves on and issued before the
read's own fetch, so that every thread stays busy; a jump starts over. A
read of 8 MiB or more streams: from that first read, each thread gets a
whole GET (as a download starts), not a quarter of four reads' worth. A
reader that had to stream without caching still reads the pages its
read-ahead stored, and fetches only the others. Closing the reader stops
its read-ahead GETs where they are (the pages that arrived are kept), so a
reader that stops early neither waits for nor pays for the rest. A GET
writes each piece into place as it arrives, computes the pages' CRCs on the way, and marks every 1 MiB of pages
present as it completes, so a read waits for the pages it needs, not for the
rest of the GET (a read of pages its own read-ahead is fetching waits for
that, rather than fetching them again), and a GET that fails mid-way resumes
after what it marked. Large reads of whole pages go from disk straight into
the caller's buffer.

Pages live in the node cache, in one sparse file per object beside a map
holding, per page, whether it is present and its CRC-32. A fetch allocates its
pages' blocks before its GET and gives back those it did not mark present (a
GET that failed or stopped early; a killed one's are given back when the
cache next starts), so the disk holds what the index counts. Every page is
fetched once per node: a fetch holds a lock on its pages' bytes of the map
(an open-file-description lock, so threads and processes exclude each
other), re-reads the map, and fetches only what is still missing. A page
read is checked against its CRC, except the first read of a page this reader
wrote itself moments before (trusted as a download trusts the file it just
wrote); a damaged page is reported (once per reader, caching or streaming)
and fetched again. The index counts each page once,
and a fetch first reserves room under the cache's limit (or streams without
caching when there is none). Once every page is there, the sparse file is
renamed into place as the whole object, after checking the pages this reader
did not write.

A reader whose first read is 8 MiB or more from the start of an object the
cache holds no page of, and has room for, reads behind a whole-object fill
instead (``_Follow``), where the store reports how far each range of a download
has reached the file (S3 through obstore): the cache downloads the object as
``File.download`` does, on a thread, and each read waits for its bytes to be in
the file being written, then reads them from there. A download that starts over
(a retry truncates the file) makes a read that raced it read again. A jump of
8 MiB or more ahead, to bytes not in the file yet, is a GET of its own. Closing the
reader before the download is done stops it, and nothing of it is kept (it was
not in pages); the bytes that arrived are counted as fetched.

Measured on a 512 MiB object beside SeaweedFS on 2 cores (`benchmarks/run.py
transfer` for the numbers): both cores are busy during a cold read (the server
shares them), so the reader's CPU beyond a whole-object download's is what
keeps a cold stream below the download's speed. Through pages, that was a CRC
per page, a map write and a wake-up per MiB, and the copy out of the page cache.
Read behind the download, only the copy is left: 0.98x the download's median
speed against 0.86x through pages, in 8 rounds alternating the two (0.85-1.10x
in five A/B runs of 3-8 rounds). Pages are checked with ISA-L's CRC-32
(4x zlib's), and a read of pages not all there yet reads none of them until
they are (it used to copy the holes, then the pages again).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import functools
import io
import os
import struct
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator

from isal.isal_zlib import crc32  # zlib's CRC-32, computed 4x faster

from ferry.datasets.cache import DISK_FULL, CacheDamagedWarning, CacheMissWarning, NodeCache, ObjectIdentity
from ferry.errors import FerryError
from ferry.faults import kill_point
from ferry.storage import retrying, store_errors, transfer

PAGE_SIZE = 32 << 10
MIN_READAHEAD = 32 << 20
MAX_FETCH = 8 << 20  # the most one raw read returns, and the longest GET a read makes itself
AHEAD_FETCH = 32 << 20  # the longest read-ahead GET (long GETs wait for the first byte less often)
MIN_AHEAD_FETCH = 4 << 20  # the shortest, unless less is left
PUBLISH = 1 << 20  # a GET marks its pages present this much at a time, so reads need not wait for all of it
SEQUENTIAL_LOAD = 1 << 20  # in a sequential run, present pages are read from disk this much at a time
DIRECT_READ = 1 << 20  # a read of whole pages this large goes from disk straight into the caller's buffer
GROWTH = 2  # a sequential run keeps this many times what it has read fetched ahead...
RAMP = 4  # ...or this many of its reads, if more
RECORD = struct.Struct("<IB3x")  # per page in the map: CRC-32, 1 when present
_FLOCK = struct.Struct("hh4xqqi4x")  # Linux's struct flock (x86-64, arm64)
_PUNCH_HOLE = 0x01 | 0x02  # FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE


def page_count(size: int, page: int) -> int:
    return max(1, -(-size // page))


def _runs(indices: list[int]) -> Iterator[tuple[int, int]]:
    """Consecutive stretches (first, last) of sorted page numbers."""
    start = prev = indices[0]
    for i in indices[1:]:
        if i != prev + 1:
            yield start, prev
            start = i
        prev = i
    yield start, prev


def _unpack(raw: bytes, count: int) -> list[tuple[int, int]]:
    """``count`` pages' (CRC-32, present) from their bytes of a map; past its end, absent."""
    whole = min(count, len(raw) // RECORD.size)
    return [*RECORD.iter_unpack(raw[:whole * RECORD.size]), *[(0, 0)] * (count - whole)]


def _records(map_path: Path, size: int, page: int) -> list[tuple[int, int]]:
    return _unpack(map_path.read_bytes(), page_count(size, page))


def reclaim_pages(data_path: Path, map_path: Path, size: int, page: int) -> tuple[int, int]:
    """Punch out the blocks of the pages the map doesn't mark present (what a killed fetch allocated or half
    wrote); returns (bytes of the pages present, bytes given back)."""
    records = _records(map_path, size, page)
    absent = [i for i, (_, flag) in enumerate(records) if not flag]
    with open(data_path, "r+b", buffering=0) as data:
        before = os.fstat(data.fileno()).st_blocks
        for first, last in _runs(absent) if absent else ():
            _punch_hole(data.fileno(), first * page, (last - first + 1) * page)
        freed = max(0, before - os.fstat(data.fileno()).st_blocks) * 512
    return _present(records, size, page), freed


def _present(records: list[tuple[int, int]], size: int, page: int) -> int:
    return sum(min(page, size - i * page) for i, (_, flag) in enumerate(records) if flag)


def verify_pages(data_path: Path, map_path: Path, size: int, page: int, trusted: bytes = b"") -> int:
    """Check every page against its CRC; marks damaged or missing ones absent and returns their bytes.
    Present pages nonzero in ``trusted`` (written by the caller itself) are taken as they are."""
    lost = 0
    records = _records(map_path, size, page)
    per_read = max(1, MAX_FETCH // page)  # pages read from disk at a time
    with open(data_path, "rb", buffering=0) as data, open(map_path, "r+b") as pages:
        for first in range(0, len(records), per_read):
            if all(records[i][1] and i < len(trusted) and trusted[i] for i in range(first, min(len(records), first + per_read))):
                continue  # nothing to check here: not even read from disk
            block = memoryview(os.pread(data.fileno(), per_read * page, first * page))
            for k, (crc, flag) in enumerate(records[first:first + per_read]):
                if flag and first + k < len(trusted) and trusted[first + k]:
                    continue
                chunk = block[k * page:(k + 1) * page]
                if not flag or crc32(chunk) != crc:
                    lost += len(chunk)
                    pages.seek((first + k) * RECORD.size)
                    pages.write(RECORD.pack(0, 0))
    return lost


def _page_crcs(piece: memoryview, page: int, crc: int, in_page: int, crcs: list[int]) -> tuple[int, int]:
    """Go on with the CRC-32s of a stream's pages: ``crc`` of the ``in_page`` bytes of the page begun before this
    piece; appends those of the pages this piece completes to ``crcs``; returns the new (crc, in_page)."""
    at = 0
    if in_page:
        at = min(len(piece), page - in_page)
        crc, in_page = crc32(piece[:at], crc), in_page + at
        if in_page < page:
            return crc, in_page
        crcs.append(crc)
    whole = at + (len(piece) - at) // page * page
    crcs.extend([crc32(piece[i:i + page]) for i in range(at, whole, page)])
    return (crc32(piece[whole:]), len(piece) - whole) if whole < len(piece) else (0, 0)


@contextlib.contextmanager
def _locked_pages(map_path: Path, first: int, last: int) -> Iterator[int]:
    """Exclusive, across threads and processes, over pages first..last (their bytes of the map)."""
    fd = os.open(map_path, os.O_RDWR)
    try:
        if hasattr(fcntl, "F_OFD_SETLKW"):
            fcntl.fcntl(fd, fcntl.F_OFD_SETLKW,
                        _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, first * RECORD.size, (last - first + 1) * RECORD.size, 0))
        else:  # no per-range locks here: one fetch per object at a time
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)  # drops the lock


def _allocate(fd: int, offset: int, length: int) -> None:
    """Give pages their disk blocks before a GET writes them, as a download preallocates its file: ext4 then
    skips its delayed allocation on every write (0.02-0.04 s less system CPU per 512 MiB streamed). A full disk
    fails here, before anything is fetched; a filesystem that can't allocate stays sparse."""
    failed = _fallocate(fd, 0, offset, length)
    if failed in DISK_FULL:
        raise OSError(failed, os.strerror(failed))


def _punch_hole(fd: int, offset: int, length: int) -> None:
    """Give back the disk blocks of pages not marked present (where the platform can)."""
    _fallocate(fd, _PUNCH_HOLE, offset, length)


def _fallocate(fd: int, mode: int, offset: int, length: int) -> int:
    """Linux's fallocate(2) (never glibc's emulation, which writes zeros): 0, or the errno it failed with."""
    try:
        call = _libc().fallocate
    except (OSError, AttributeError):  # no such call on this platform
        return errno.ENOSYS
    return 0 if call(fd, mode, ctypes.c_int64(offset), ctypes.c_int64(length)) == 0 else ctypes.get_errno()


@functools.cache
def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


class _ReaderClosed(FerryError):
    """Raised into a followed fill when its reader closes first: the download stops (and keeps nothing)."""


class _Follow:
    """A whole-object fill of the cache, on a thread of its own, that a reader reads behind: the download tells
    where it writes and how far each of its ranges has reached the file (``storage.io.Follower``)."""

    def __init__(self, cache: NodeCache, obj: ObjectIdentity, dataset: str, options: dict[str, Any] | None) -> None:
        self.cache, self.obj, self.dataset = cache, obj, dataset
        self._changed = threading.Condition()
        self.fd, self._path = -1, ""
        self._reached: dict[int, int] = {}  # a range's start -> the end of its bytes in the file
        self.generation = 0  # +1 as each attempt starts over (the file is truncated after that)
        self.done = False
        self.result: str | None = None  # the complete copy's path, once done (None: it did not fit)
        self.error: BaseException | None = None
        self._closing = False
        self._thread = threading.Thread(target=self._run, args=(options,), name="ferry-follow")
        self._thread.start()

    def _run(self, options: dict[str, Any] | None) -> None:
        result: str | None = None
        error: BaseException | None = None
        try:
            result = self.cache.fill(self.obj, self.dataset, options, follower=self)
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, which raises it
            error = exc
        with self._changed:
            self.done, self.result, self.error = True, result, error
            self._changed.notify_all()

    def begin(self, path: str) -> None:
        with self._changed:
            if self._closing:
                raise _ReaderClosed("the reader closed")
            assert self.fd < 0 or path == self._path, "a retry writes the file it began (fd stays valid)"
            self._path, self.generation = path, self.generation + 1
            self._reached.clear()
            self._changed.notify_all()

    def wrote(self, start: int, end: int) -> None:
        with self._changed:
            if self._closing:
                raise _ReaderClosed("the reader closed")
            self._reached[start] = end
            self._changed.notify_all()

    def wait(self, pos: int, end: int) -> int | None:
        """Wait until bytes pos..end are in the file (opened as ``fd``): the generation they belong to (a read
        is good if that is still the generation after it), or None once the fill has ended (see ``result``)."""
        with self._changed:
            while not self.done:
                if self._covers(pos, end):
                    if self.fd < 0:
                        self.fd = os.open(self._path, os.O_RDONLY)
                    return self.generation
                self._changed.wait()
            return None

    def ready(self, pos: int, end: int) -> bool:
        """Whether bytes pos..end are in the file, or the fill has ended (neither waits)."""
        with self._changed:
            return self.done or self._covers(pos, end)

    def _covers(self, pos: int, end: int) -> bool:
        for start in sorted(self._reached):
            if start <= pos < self._reached[start]:
                pos = self._reached[start]
                if pos >= end:
                    return True
        return False

    def close(self) -> None:
        """Stop the download if it is still going (what it fetched is counted, not kept), and wait for it."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
            fetched = 0 if self.done else sum(end - start for start, end in self._reached.items())
        self._thread.join()
        if fetched and self.error is not None:
            self.cache.count_fetch(self.dataset, fetched)
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class BlockReader(io.RawIOBase):
    """Reads ``obj`` through the node cache's pages, fetching missing ones on demand."""

    def __init__(self, cache: NodeCache, obj: ObjectIdentity, dataset: str, options: dict[str, Any] | None,
                 page_size: int | None = None) -> None:
        super().__init__()
        self.cache, self.obj, self.dataset, self.options = cache, obj, dataset, options
        self.pos = self._next = self._run_start = self._ahead_end = 0
        self._mem_start, self._mem = 0, memoryview(b"")  # the verified bytes read last
        self.bytes_fetched = 0
        self._counting = threading.Lock()
        self.streaming = False  # no room in the cache: read straight from the store
        self._disk_full = False  # a page write met a full disk: this reader writes no more pages
        self._whole: int | None = None  # fd of the complete object, once it is one
        self._data = self._map = -1
        # Per page: 1 when this reader fetched it and has not read it yet (that read is trusted), 2 once read.
        self._mine = bytearray()
        self._damaged: set[int] = set()  # pages found modified in the cache (reported once)
        self._progress = threading.Condition()  # notified as fetches mark pages present or end
        self._closing = threading.Event()  # read-ahead GETs stop where they are
        self._ahead: set[tuple[int, int]] = set()  # page ranges read-ahead is fetching or about to
        self._pool: ThreadPoolExecutor | None = None
        self._follow: _Follow | None = None  # a whole-object fill this reader reads behind
        self._started = False  # a read was made
        self._pin = cache.pin(obj.key)
        try:
            with store_errors("read", obj.uri, "persistent"):
                self._read_range = transfer.get_range(obj.uri, options)
                self._fetchers = transfer.TransferConfig.from_options(options).concurrency
            self._window = max(MIN_READAHEAD, 2 * self._fetchers * AHEAD_FETCH)
            opened = cache.open_pages(obj, dataset, page_size or PAGE_SIZE)
            if opened is None:
                self.page = page_size or PAGE_SIZE
                self._open_whole()
            else:
                self.page, self._data, self._map = opened
                self._mine = bytearray(page_count(obj.size, self.page))
                if hasattr(os, "posix_fadvise"):  # the kernel's read-ahead would read holes not yet fetched
                    os.posix_fadvise(self._data, 0, 0, os.POSIX_FADV_RANDOM)
        except BaseException:
            self.close()
            raise

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.obj.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readall(self) -> bytes:
        out = bytearray()
        while chunk := self.read(MAX_FETCH):
            out += chunk
        return bytes(out)

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        pos = self.pos
        want = min(len(view), self.obj.size - pos, MAX_FETCH)
        if want <= 0:
            return 0
        end = pos + want
        first, self._started = not self._started, True
        if first and not pos and len(view) >= MAX_FETCH and self._may_follow():
            self._follow = _Follow(self.cache, self.obj, self.dataset, self.options)
        if self._follow is not None and self._read_following(pos, view[:want]):
            self.pos = self._next = end
            return want
        if pos != self._next:  # a jump: a new run
            self._run_start = self._ahead_end = pos
        run = pos - self._run_start  # bytes this run read before this read
        if run or want >= MAX_FETCH:  # a run, or a large first read: likely more to come, so read ahead first
            ahead = max(GROWTH * run, RAMP * want)
            if want >= MAX_FETCH:  # reads this large stream: every fetcher a whole GET from the start, as a download
                ahead = max(ahead, self._fetchers * AHEAD_FETCH)
            self._read_ahead(end, min(self._window, ahead))  # (its GETs overlap this read's)
        if want >= DIRECT_READ and not pos % self.page and (not end % self.page or end == self.obj.size):
            self._load(pos, end, 0, into=view[:want])  # whole pages: straight into the caller's buffer
        else:
            if not (self._mem_start <= pos and end <= self._mem_start + len(self._mem)):
                self._load(pos, end, run)
            view[:want] = self._mem[pos - self._mem_start:end - self._mem_start]
        self.pos = self._next = end
        return want

    # ---- reading behind a whole-object fill -----------------------------------------------------

    def _may_follow(self) -> bool:
        """Whether a first large read from the start should download the object whole and read behind it:
        the cache has no page of it yet and room for all of it, and the store says where each range has got.
        (Pages cost a CRC each, a lock and a map write per MiB, and reading back; a download costs none.)"""
        if self._data < 0 or self.streaming or self.obj.size > self.cache.max_bytes:
            return False
        return not self.cache.entry_bytes(self.obj.key) and transfer.reports_writes(self.obj.uri, self.options)

    def _read_following(self, pos: int, into: memoryview) -> bool:
        """Read pos.. into ``into`` from the file the fill is writing, once it has those bytes; False when the
        fill has ended first (the object is then whole, or it did not fit: read as if there were no fill)."""
        follow = self._follow
        assert follow is not None
        if pos >= self._next + MAX_FETCH and not follow.ready(pos, pos + len(into)):  # a jump far ahead: from
            into[:] = self._get(pos, pos + len(into))  # the store now, not after the download (which brings it too)
            return True
        while (generation := follow.wait(pos, pos + len(into))) is not None:
            read = os.preadv(follow.fd, [into], pos)
            if read == len(into) and follow.generation == generation:  # (else a retry began over: wait again)
                return True
        self._follow = None
        follow.close()
        if follow.error is not None:
            raise follow.error
        if follow.result is not None:
            self._whole = os.open(follow.result, os.O_RDONLY)
        return False

    # ---- reading pages -----------------------------------------------------------------------

    def _load(self, pos: int, end: int, run: int, into: memoryview | None = None) -> None:
        """Make ``self._mem`` hold (at least) bytes pos..end, fetching pages that are missing; with ``into``
        (whole pages, pos..end exactly), read them into that instead."""
        if run:  # sequential: read on, from what the read-ahead brought in
            end = min(self.obj.size, max(end, pos + min(run, SEQUENTIAL_LOAD)))
        for _ in range(3):
            if self._whole is not None:
                if into is None:
                    self._mem_start, self._mem = pos, memoryview(os.pread(self._whole, end - pos, pos))
                elif os.preadv(self._whole, [into], pos) != len(into):
                    raise FerryError(f"The node cache's copy of {self.obj.uri} is shorter than the object; "
                                     f"clear the cache (`ferry cache clear --datasets`).")
                return
            first, last = pos // self.page, (end - 1) // self.page
            start = first * self.page
            damaged: list[int] = []
            if self._data >= 0:  # pages here (even when streaming: read-ahead may have stored them before it began)
                data, missing, damaged = self._read_pages(first, last, into)
                if missing and self._await_ahead(missing):  # read-ahead was bringing them in
                    data, missing, damaged = self._read_pages(first, last, into)
                if not missing and not damaged:
                    if into is None:
                        self._mem_start, self._mem = start, data
                    return
            if self.streaming:
                data = self._stream_pages(first, last, into)
                if into is None:
                    self._mem_start, self._mem = start, data
                return
            self._report_damaged(damaged, stacklevel=4)
            if self._fetch(first, last, set(damaged)) == "gone":
                self._open_whole()
        raise FerryError(f"The node cache's pages of {self.obj.uri} keep failing their checksum; "
                         f"clear the cache (`ferry cache clear --datasets`) and check the disk under {self.cache.root}.")

    def _read_pages(self, first: int, last: int, into: memoryview | None = None) -> tuple[memoryview, list[int], list[int]]:
        """Pages first..last from disk (into ``into``, if given), with the ones missing and the ones failing their
        CRC. While any is missing, none is read (the caller waits or fetches, then reads them all)."""
        count = last - first + 1
        flags = self._map_records(first, last)
        missing = [first + k for k, (_, flag) in enumerate(flags) if not flag]
        if missing:
            return memoryview(b""), missing, []
        start = first * self.page
        length = min(self.obj.size, start + count * self.page) - start
        if into is None:
            data = memoryview(os.pread(self._data, length, start))
        else:
            data = into[:os.preadv(self._data, [into[:length]], start)]
        damaged = []
        mine = self._mine
        for k, (crc, _) in enumerate(flags):
            if mine[first + k] == 1:  # this reader wrote it moments ago, as a download writes its file
                mine[first + k] = 2
            elif crc32(data[k * self.page:(k + 1) * self.page]) != crc:
                damaged.append(first + k)
        return data, missing, damaged

    def _stream_pages(self, first: int, last: int, into: memoryview | None) -> memoryview:
        """Pages first..last without storing any (into ``into``, if given): those the cache lacks (or holds
        damaged) by GET, the others from the cache, where read-ahead may have stored them before the reader began
        to stream."""
        start, stop = first * self.page, min(self.obj.size, (last + 1) * self.page)
        out = into if into is not None else memoryview(bytearray(stop - start))
        present = [] if self._data < 0 else [i for i, (_, flag) in enumerate(self._map_records(first, last), first) if flag]
        absent = set(range(first, last + 1)) - set(present)
        for a, b in _runs(present) if present else ():
            _, gone, bad = self._read_pages(a, b, out[(a - first) * self.page:(b + 1 - first) * self.page])
            absent.update(range(a, b + 1) if gone else bad)
            self._report_damaged(bad, stacklevel=5)
        for a, b in _runs(sorted(absent)) if absent else ():
            at, end = a * self.page, min(self.obj.size, (b + 1) * self.page)
            out[at - start:end - start] = self._get(at, end)
        return out

    def _report_damaged(self, pages: list[int], stacklevel: int) -> None:
        """Warn of cached pages found modified (each once per reader), which are about to be fetched again;
        ``stacklevel`` points the warning at the code that read."""
        new = [i for i in pages if i not in self._damaged]
        if new:
            self._damaged.update(new)
            self.cache.count_fetch(self.dataset, damaged=1)
            warnings.warn(f"ferry: {len(new)} cached page(s) of {self.obj.uri} were modified after they were cached; "
                          "fetching them again.", CacheDamagedWarning, stacklevel=stacklevel)

    def _map_records(self, first: int, last: int) -> list[tuple[int, int]]:
        """(CRC-32, present) of pages first..last, from the map."""
        count = last - first + 1
        return _unpack(os.pread(self._map, RECORD.size * count, RECORD.size * first), count)

    def _await_ahead(self, missing: list[int]) -> bool:
        """Wait while read-ahead of this reader is fetching any of ``missing``; whether it brought any of them
        in (since they were found missing: even before this was called, so the pages must be read again)."""
        with self._progress:
            for i in missing:
                while not self._mine[i] and any(a <= i <= b for a, b in self._ahead):
                    self._progress.wait()
            return any(self._mine[i] for i in missing)

    def _open_whole(self) -> None:
        """The object became one local file (or the cache dropped it): read that, or stream."""
        path = self.cache.hit(self.obj, self.dataset)
        if path is None:
            self.streaming = True
        else:
            self._whole = os.open(path, os.O_RDONLY)

    # ---- fetching ----------------------------------------------------------------------------

    def _fetch(self, first: int, last: int, suspect: set[int], background: bool = False) -> str:
        """Bring pages first..last into the cache, each fetched once per node. Returns "stored",
        "gone" (the object is now whole: read that) or "stream" (no room: read from the store)."""
        key = self.obj.key
        with self.cache.filling(key):
            if self.cache.pages_gone(key):
                return "gone"
            kill_point("blocks.fetch.wait")
            with _locked_pages(self.cache.map_path(key), first, last):
                need, absent = [], set()
                for i, (crc, flag) in enumerate(self._map_records(first, last), first):
                    if not flag:
                        absent.add(i)
                        need.append(i)
                    elif i in suspect and not self._intact(i, crc):
                        need.append(i)
                for a, b in _runs(need) if need else ():
                    if not self._store(a, b, absent, background):
                        return "stream"
        return "stored"

    def _store(self, first: int, last: int, absent: set[int], background: bool) -> bool:
        """Fetch pages first..last and write them with their map records (their lock is held); ``absent``:
        those not yet counted in the index. False: they could not be stored (the reader streams from now
        on, unless this is read-ahead)."""
        start, stop = first * self.page, min(self.obj.size, (last + 1) * self.page)
        if self._disk_full:
            self._stream("the node cache's disk is full", background)
            return False
        if not self.cache.reserve(self.obj, self.dataset, stop - start, self.page):
            self._stream("the node cache (or its disk) is full of entries in use", background)
            return False
        done = [first]  # the pages before done[0] are marked present

        def publish(crcs: list[int]) -> None:
            os.pwrite(self._map, b"".join(RECORD.pack(crc, 1) for crc in crcs), done[0] * RECORD.size)
            with self._progress:
                self._mine[done[0]:done[0] + len(crcs)] = b"\x01" * len(crcs)
                done[0] += len(crcs)
                self._progress.notify_all()

        def added() -> int:
            return sum(self._length(i) for i in range(first, done[0]) if i in absent)

        full = False
        try:
            _allocate(self._data, start, stop - start)
            tail = self._get_pages(start, stop, done, publish, background)  # written to the pages file as they arrive
            kill_point("blocks.fetched")
            publish(tail)
            kill_point("blocks.written")
        except OSError as exc:
            if exc.errno not in DISK_FULL:
                raise
            full = self._disk_full = True  # the other fetches of this reader stop writing too, and give their room back
        finally:  # however it ended (failed, stopped early, done): the blocks of the pages not marked present go
            unmarked = done[0] * self.page  # back first, since the index may need room to be updated
            if unmarked < stop:
                _punch_hole(self._data, unmarked, stop - unmarked)
            self.cache.settle(self.obj.key, stop - start, added())
        if full:
            self._stream("the node cache's disk is full", background)
            return False
        return True

    def _intact(self, index: int, crc: int) -> bool:
        return crc32(os.pread(self._data, self._length(index), index * self.page)) == crc

    def _length(self, index: int) -> int:
        return min(self.page, self.obj.size - index * self.page)

    def _get(self, start: int, stop: int) -> bytearray:
        """One ranged GET from the store, into memory."""
        def attempt() -> bytearray:
            data, filled = bytearray(stop - start), 0
            for piece in self._pieces(start, stop):
                data[filled:filled + len(piece)] = piece
                filled += len(piece)
            return data

        data = retrying(attempt)
        self._counted(len(data))
        return data

    def _get_pages(self, start: int, stop: int, done: list[int], publish: Callable[[list[int]], None],
                   background: bool) -> list[int]:
        """One ranged GET from the store, written into the pages file as it arrives (never whole in memory).
        Once PUBLISH bytes of pages or more are on disk they are marked present (``publish`` with their CRC-32s),
        so a read of them waits no longer; returns the CRCs of the last whole pages, not yet marked. A retry
        resumes from ``done[0]``. Read-ahead (``background``) stops early once the reader is closing."""
        per_mark = max(1, PUBLISH // self.page)

        def attempt() -> tuple[list[int], int]:
            crcs: list[int] = []
            crc, in_page, offset = 0, 0, done[0] * self.page
            writer = transfer.AlignedWriter(self._data, offset)  # whole MiBs: the page cache's large folios
            for piece in self._pieces(offset, stop):
                if self._disk_full:  # another fetch of this reader met a full disk
                    raise OSError(errno.ENOSPC, "the node cache's disk is full")
                writer.add(piece)
                offset += len(piece)
                crc, in_page = _page_crcs(piece, self.page, crc, in_page, crcs)
                on_disk = writer.written // self.page - done[0]  # whole pages written, not yet marked
                if on_disk >= per_mark and offset < stop:
                    publish(crcs[:on_disk])
                    crcs = crcs[on_disk:]
                if background and self._closing.is_set():
                    break  # no one will read on: keep the whole pages that arrived
            writer.flush()
            if in_page and offset == stop:
                crcs.append(crc)
            return crcs, offset

        crcs, arrived = retrying(attempt)  # arrived: where the GET ended (stop, unless the reader closed)
        self._counted(arrived - start)
        return crcs

    def _pieces(self, start: int, stop: int) -> Iterator[memoryview]:
        """Bytes start..stop of the object, in the pieces they arrive in; exactly that many, or an error."""
        filled = 0
        with store_errors("read", self.obj.uri, "persistent"):
            for piece in self._read_range(start, stop):
                view = memoryview(piece).cast("B")
                if filled + len(view) > stop - start:
                    break
                filled += len(view)
                yield view
        if filled != stop - start:
            raise FerryError(f"{self.obj.uri} changed while it was being read; read it again.")

    def _counted(self, fetched: int) -> None:
        with self._counting:
            self.bytes_fetched += fetched
        self.cache.count_fetch(self.dataset, fetched)

    def _stream(self, why: str, background: bool) -> None:
        if not background and not self.streaming:
            self.streaming = True
            warnings.warn(f"ferry: {why}; reading {self.obj.uri} from the store.", CacheMissWarning, stacklevel=6)

    def _read_ahead(self, pos: int, ahead: int) -> None:
        """Keep up to ``ahead`` bytes past ``pos`` fetched or on their way, in the background: topped up a GET
        at a time as the reader moves on, so the fetchers never idle while the reader has room ahead (GETs
        issued in waves left them waiting for the wave's slowest)."""
        if self._whole is not None or self.streaming or self._disk_full:
            return
        start, target = max(self._ahead_end, pos), min(self.obj.size, pos + ahead)
        # each fetcher a long GET (a share of what is left, when that is less: a small object's GETs run side by side)
        get = min(AHEAD_FETCH, max(MIN_AHEAD_FETCH, -(-min(ahead, self.obj.size - pos) // self._fetchers)))
        if target < self.obj.size:
            target = start + (target - start) // get * get  # whole GETs only, but for the object's last
        if target <= start:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._fetchers, thread_name_prefix="ferry-readahead")
        first, last = start // self.page, (target - 1) // self.page
        chunk = max(1, get // self.page)
        for a in range(first, last + 1, chunk):
            pages = (a, min(last, a + chunk - 1))
            with self._progress:
                self._ahead.add(pages)  # before it can start (and end)
            try:
                self._pool.submit(self._prefetch, *pages)
            except BaseException:
                with self._progress:
                    self._ahead.discard(pages)
                raise
        self._ahead_end = (last + 1) * self.page

    def _prefetch(self, first: int, last: int) -> None:
        try:
            with contextlib.suppress(Exception):  # a failed read-ahead is simply fetched again when read
                self._fetch(first, last, set(), background=True)
        finally:
            with self._progress:
                self._ahead.discard((first, last))
                self._progress.notify_all()

    def close(self) -> None:
        if not self.closed:
            try:
                if self._follow is not None:
                    self._follow.close()
                if self._pool is not None:
                    self._closing.set()
                    self._pool.shutdown(wait=True, cancel_futures=True)
                if self._data >= 0:  # if every page is here (and no one is fetching), make it one file
                    self.cache.complete_pages(self.obj, trusted=bytes(self._mine))
            finally:
                for fd in (self._whole, self._data, self._map):
                    if fd is not None and fd >= 0:
                        os.close(fd)
                pin = getattr(self, "_pin", None)
                if pin is not None:
                    pin.close()
        super().close()
