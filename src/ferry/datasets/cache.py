"""The node cache: persistent-store objects kept on this machine after their first read.

It belongs to the node, not to a process: every task and process on the
machine shares it, and it survives restarts. Properties it keeps:

- **One download per object**, however many processes ask at once: the filler
  holds an exclusive lock on the object's key; the others wait, then hit.
  Block reads (``blocks.py``) fetch each page once per node the same way.
- **No false hits**: a fill is written to a temporary file and renamed into
  place; a crash mid-download leaves only a temporary, which is reclaimed
  (when the cache starts, on prune and on clear) once no live filler holds
  the key's lock.
- **No silent corruption**: cached files are read-only (0400, in 0700
  folders: only the cache's owner can read them), and a hit is checked
  against what was recorded at fill time: size, mode, inode and change time,
  and a fingerprint of sampled ranges. A damaged entry is fetched again.
- **Freshness**: entries are keyed by the object's identity (ETag, version,
  for local files inode and change time), re-checked after a short TTL; a
  replaced object gets a new key and is fetched anew.
- **Bounded size, honest index**: the index counts the bytes on disk once.
  Least-recently-used entries are evicted to make room, never one that a
  running task holds (a shared lock on its pin file). An object that can't
  fit, or a disk too full for it, is streamed from the store with a warning,
  and the disk is left as it was.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import sqlite3
import stat
import threading
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from ferry.errors import FerryError
from ferry.faults import kill_point
from ferry.storage import filesystem, local_path_of, store_errors

if TYPE_CHECKING:
    from ferry.storage.io import Follower

DEFAULT_TTL = 5.0
SCHEMA_VERSION = 2
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
# The disk's last 2% (at most 1 GiB) is never filled by the cache, so other writers on it keep room.
DISK_RESERVE_FRACTION, DISK_RESERVE_MAX = 50, 1 << 30
# A hit's fingerprint: the first and last 64 KiB and 16 ranges of 4 KiB spread between them.
EDGE, SAMPLE, SAMPLES = 64 << 10, 4 << 10, 16
_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY, uri TEXT NOT NULL, dataset TEXT NOT NULL, identity TEXT NOT NULL,
    size INTEGER NOT NULL DEFAULT 0,       -- bytes of this entry on disk, counted once
    reserved INTEGER NOT NULL DEFAULT 0,   -- bytes a running fill is about to write
    complete INTEGER NOT NULL DEFAULT 0,   -- 1: the whole object, verified, at its final path
    page_size INTEGER NOT NULL DEFAULT 0,  -- > 0: a partial object read page by page (blocks.py)
    fingerprint TEXT, stamp TEXT, last_access REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS identities (
    uri TEXT PRIMARY KEY, identity TEXT NOT NULL, size INTEGER NOT NULL, checked REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS stats (
    dataset TEXT PRIMARY KEY, hits INTEGER NOT NULL DEFAULT 0, misses INTEGER NOT NULL DEFAULT 0,
    bytes_fetched INTEGER NOT NULL DEFAULT 0, evictions INTEGER NOT NULL DEFAULT 0,
    damaged INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS listings (
    uri TEXT PRIMARY KEY, files TEXT NOT NULL, checked REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_lru ON entries (last_access);
"""
_SUBFOLDERS = ("objects", "blocks", "locks", "pins")


def _quiet(obj: "ObjectIdentity", why: str) -> None:
    pass


class CacheMissWarning(UserWarning):
    """A dataset object is read straight from the store instead of through the node cache."""


class CacheDamagedWarning(UserWarning):
    """A cached copy no longer matched what was recorded when it was filled; it is fetched again."""


@dataclass(frozen=True)
class ObjectIdentity:
    uri: str
    identity: str
    size: int

    @property
    def key(self) -> str:
        return hashlib.sha256(f"{self.uri}\0{self.identity}".encode()).hexdigest()


@dataclass
class CacheStats:
    used_bytes: int
    max_bytes: int
    entries: int
    per_dataset: dict[str, dict[str, int]]


def identity_of(info: dict[str, Any]) -> str:
    """The strongest identity a protocol offers: ETag or version, else inode and change time, else size and mtime."""
    for field in ("ETag", "etag", "VersionId", "version_id", "generation", "md5Hash", "md5"):
        value = info.get(field)
        if value:
            return f"{field}:{str(value).strip(chr(34))}"
    mtime = info.get("mtime") or info.get("LastModified") or info.get("updated") or info.get("created") or ""
    if info.get("ino"):  # a local file: a same-size, same-mtime replacement still has a new inode or ctime
        return f"ino:{info['ino']}:size:{info.get('size')}:mtime:{mtime}:ctime:{info.get('created')}"
    return f"size:{info.get('size')}:mtime:{mtime}"


def local_identity(st: os.stat_result) -> str:
    """A local file's identity. ``cp -p`` over it changes its ctime; ``rsync -t`` gives a new inode."""
    return f"stat:{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def stamp_of(st: os.stat_result) -> str:
    """What any write, truncation or chmod of a cached file changes (ctime can't be set back)."""
    return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def fingerprint(fd: int, size: int) -> str:
    """A cheap content fingerprint: size, the first and last 64 KiB, and 16 spread 4 KiB ranges."""
    digest = hashlib.blake2b(str(size).encode(), digest_size=16)
    if size <= 2 * EDGE + SAMPLES * SAMPLE:
        ranges = [(0, size)]
    else:
        step = (size - 2 * EDGE - SAMPLE) // (SAMPLES - 1)
        ranges = [(0, EDGE), *((EDGE + i * step, SAMPLE) for i in range(SAMPLES)), (size - EDGE, EDGE)]
    for offset, length in ranges:
        digest.update(os.pread(fd, length, offset))
    return digest.hexdigest()


def fingerprint_of(path: str | os.PathLike[str]) -> str:
    fd = os.open(path, os.O_RDONLY)
    try:
        return fingerprint(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def _private_file(path: Path) -> int:
    """Open (creating it 0600 if needed) a file only the cache's owner may read."""
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)


class NodeCache:
    """A size-bounded, shared, crash-safe cache of persistent-store objects on local disk."""

    def __init__(self, root: str | os.PathLike[str], max_bytes: int, ttl: float = DEFAULT_TTL) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.ttl = ttl
        self.root.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(PermissionError):  # a cache someone else set up: leave its modes alone
            os.chmod(self.root, 0o700)  # nothing below is reachable by other users, old entries included
        for sub in _SUBFOLDERS:
            (self.root / sub).mkdir(mode=0o700, exist_ok=True)
        self._db_lock = threading.Lock()
        os.close(_private_file(self.root / "index.db"))  # SQLite gives its -wal and -shm files the same mode
        self._db = sqlite3.connect(self.root / "index.db", check_same_thread=False, isolation_level=None, timeout=60)
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._migrate()
        self.session_hits = self.session_misses = 0  # this process's share, cheap to read
        self.reclaim(scan=False)  # fills killed mid-way since the last start

    def _migrate(self) -> None:
        """Create the index, or drop a cache of an older layout (its entries are simply fetched again)."""
        with self._exclusive("schema"):  # processes opening a new cache at once: one switches it to WAL (racing,
            self._sql("PRAGMA journal_mode=WAL")  # some failed with "database is locked"), the others find it done
            version = self._sql("PRAGMA user_version")[0][0]
            if version == SCHEMA_VERSION:
                return
            if self._sql("SELECT name FROM sqlite_master WHERE type='table' AND name='entries'"):
                for table in ("entries", "identities", "stats", "listings"):
                    self._sql(f"DROP TABLE IF EXISTS {table}")
                for sub in ("objects", "blocks", "pins"):
                    shutil.rmtree(self.root / sub, ignore_errors=True)
                    (self.root / sub).mkdir(mode=0o700, exist_ok=True)
            with self._db_lock:
                self._db.executescript(_SCHEMA)
            self._sql(f"PRAGMA user_version={SCHEMA_VERSION}")

    # ---- index -------------------------------------------------------------------------------

    def _sql(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._db_lock:
            return self._db.execute(sql, args).fetchall()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic read-check-write across every process on the node (BEGIN IMMEDIATE)."""
        with self._db_lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _count(self, dataset: str, hits: int = 0, misses: int = 0, fetched: int = 0, evictions: int = 0,
               damaged: int = 0) -> None:
        self.session_hits += hits
        self.session_misses += misses
        self._sql(
            "INSERT INTO stats VALUES (?,?,?,?,?,?) ON CONFLICT (dataset) DO UPDATE SET hits=hits+excluded.hits, "
            "misses=misses+excluded.misses, bytes_fetched=bytes_fetched+excluded.bytes_fetched, "
            "evictions=evictions+excluded.evictions, damaged=damaged+excluded.damaged",
            (dataset, hits, misses, fetched, evictions, damaged),
        )

    def count_fetch(self, dataset: str, fetched: int = 0, damaged: int = 0) -> None:
        """Record bytes a block reader fetched, or damaged pages it found. On a full disk the count is lost
        (with a warning), not the read: a reader streaming past a full cache still counts as it can."""
        try:
            self._count(dataset, fetched=fetched, damaged=damaged)
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", None) != sqlite3.SQLITE_FULL:
                raise
            warnings.warn(f"ferry: the node cache's disk is full; what is fetched for {dataset!r} while it is "
                          "full is not counted in `ferry cache stats`.", CacheMissWarning, stacklevel=3)

    def identify(self, uri: str, options: dict[str, Any] | None = None) -> ObjectIdentity:
        """The object's identity, from the index while it is younger than the TTL."""
        rows = self._sql("SELECT identity, size, checked FROM identities WHERE uri=?", (uri,))
        if rows and time.time() - rows[0][2] < self.ttl:
            return ObjectIdentity(uri, rows[0][0], rows[0][1])
        local = local_path_of(uri)
        with store_errors("stat", uri, "persistent"):
            if local is not None:
                st = os.stat(local)
                is_dir, identity, size = stat.S_ISDIR(st.st_mode), local_identity(st), st.st_size
            else:
                fs, path = filesystem(uri, options)
                info = fs.info(path)
                is_dir, identity, size = info.get("type") == "directory", identity_of(info), int(info.get("size") or 0)
        if is_dir:
            raise FerryError(f"{uri} is a folder; read it as a Directory, or name a file inside it.")
        found = ObjectIdentity(uri, identity, size)
        self._sql("INSERT OR REPLACE INTO identities VALUES (?,?,?,?)", (uri, found.identity, found.size, time.time()))
        return found

    def listing(self, uri: str, options: dict[str, Any] | None = None) -> dict[str, int]:
        """A folder's files and sizes, from the index while younger than the TTL."""
        import json

        from ferry.storage import list_files

        rows = self._sql("SELECT files, checked FROM listings WHERE uri=?", (uri,))
        if rows and time.time() - rows[0][1] < self.ttl:
            return dict(json.loads(rows[0][0]))
        files = list_files(uri, options, "persistent")
        self._sql("INSERT OR REPLACE INTO listings VALUES (?,?,?)", (uri, json.dumps(files), time.time()))
        return files

    def object_path(self, key: str) -> Path:
        return self.root / "objects" / key[:2] / key

    def pages_path(self, key: str) -> Path:
        """The sparse file of a partly read object; complete, it is renamed to ``object_path``."""
        return self.root / "blocks" / f"{key}.data"

    def map_path(self, key: str) -> Path:
        """Per page of a partly read object: its CRC-32 and whether it is present (``blocks.py``)."""
        return self.root / "blocks" / f"{key}.map"

    def _temporaries(self, key: str) -> list[Path]:
        """Files a fill of ``key`` writes before renaming them into place (``.KEY.*``)."""
        return [*self.object_path(key).parent.glob(f".{key}.*"), *(self.root / "blocks").glob(f".{key}.*")]

    def entry_bytes(self, key: str) -> int:
        """Bytes of ``key`` the cache holds on disk (of a partial object: its pages present)."""
        rows = self._sql("SELECT size FROM entries WHERE key=?", (key,))
        return int(rows[0][0]) if rows else 0

    def used_bytes(self) -> int:
        """Bytes the cache holds on disk (each counted once)."""
        return int(self._sql("SELECT COALESCE(SUM(size), 0) FROM entries")[0][0])

    # ---- locks and pins ----------------------------------------------------------------------

    @contextlib.contextmanager
    def _exclusive(self, key: str, wait: bool = True) -> Iterator[bool]:
        """Serialize fills of one object across every process on this node (yields False if
        ``wait`` is False and another process holds it)."""
        fd = _private_file(self.root / "locks" / key)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # releases the lock

    @contextlib.contextmanager
    def filling(self, key: str) -> Iterator[None]:
        """Held (shared) while pages of ``key`` are written: whole fills and reclaim wait for it."""
        fd = _private_file(self.root / "locks" / key)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    def pin(self, key: str) -> Any:
        """A shared lock that keeps the entry from eviction until the returned handle is closed."""
        fh = os.fdopen(_private_file(self.root / "pins" / key), "r+b")
        fcntl.flock(fh, fcntl.LOCK_SH)
        return fh

    # ---- space -------------------------------------------------------------------------------

    def _shortfall(self, db: sqlite3.Connection, needed: int) -> int:
        """Bytes to free before ``needed`` more fit, under the size limit and on the disk."""
        size: int
        reserved: int
        size, reserved = db.execute("SELECT COALESCE(SUM(size), 0), COALESCE(SUM(reserved), 0) FROM entries").fetchone()
        disk = os.statvfs(self.root)
        keep_free = min(disk.f_blocks * disk.f_frsize // DISK_RESERVE_FRACTION, DISK_RESERVE_MAX)
        over_limit = size + reserved + needed - self.max_bytes
        over_disk = reserved + needed + keep_free - disk.f_bavail * disk.f_frsize
        return max(over_limit, over_disk)

    def reserve(self, obj: ObjectIdentity, dataset: str, needed: int, page_size: int = 0) -> bool:
        """Claim room for ``needed`` bytes of ``obj`` (evicting if need be); False: it can't fit.
        Creates the entry (a whole object, or pages of ``page_size``) if it is new."""
        for attempt in range(2):
            with self._transaction() as db:
                short = self._shortfall(db, needed)
                if short <= 0:
                    db.execute(
                        "INSERT INTO entries (key, uri, dataset, identity, reserved, page_size, last_access) "
                        "VALUES (?,?,?,?,?,?,?) ON CONFLICT (key) DO UPDATE SET reserved=reserved+excluded.reserved",
                        (obj.key, obj.uri, dataset, obj.identity, needed, page_size, time.time()))
                    return True
            if attempt == 0:
                self.make_room(short, keep=obj.key)
        return False

    def settle(self, key: str, reserved: int, added: int = 0) -> None:
        """Turn a reservation into ``added`` bytes on disk (the rest was not written)."""
        self._sql("UPDATE entries SET reserved=MAX(0, reserved-?), size=size+?, last_access=? WHERE key=?",
                  (reserved, added, time.time(), key))

    # ---- reads -------------------------------------------------------------------------------

    def hit(self, obj: ObjectIdentity, dataset: str) -> str | None:
        """The complete, verified local copy of ``obj``, or None. A damaged one is marked for refetch."""
        rows = self._sql("SELECT complete, fingerprint, stamp FROM entries WHERE key=?", (obj.key,))
        if not rows or not rows[0][0]:
            return None
        path = self.object_path(obj.key)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            st = os.fstat(fd)
            intact = (st.st_size == obj.size and stat.S_IMODE(st.st_mode) == 0o400 and stamp_of(st) == rows[0][2]
                      and fingerprint(fd, st.st_size) == rows[0][1])
        finally:
            os.close(fd)
        if not intact:
            # Only if no refill replaced it meanwhile (the stamp is still the one we checked against).
            self._sql("UPDATE entries SET complete=0 WHERE key=? AND stamp=?", (obj.key, rows[0][2]))
            self._count(dataset, damaged=1)
            warnings.warn(f"ferry: the node cache's copy of {obj.uri} was modified after it was cached "
                          "(by a task writing to it?); fetching it again.", CacheDamagedWarning, stacklevel=4)
            return None
        self._sql("UPDATE entries SET last_access=? WHERE key=?", (time.time(), obj.key))
        self._count(dataset, hits=1)
        return str(path)

    def local_copy(self, uri: str, dataset: str, options: dict[str, Any] | None = None) -> tuple[str, Any] | None:
        """A pinned, complete local copy of ``uri``: (path, pin). None means: stream it from the store."""
        obj = self.identify(uri, options)
        pin = self.pin(obj.key)
        try:
            found = self.hit(obj, dataset) or self.fill(obj, dataset, options)
        except BaseException:
            pin.close()
            raise
        if found is None:
            pin.close()
            return None
        return found, pin

    def fill(self, obj: ObjectIdentity, dataset: str, options: dict[str, Any] | None,
             follower: Follower | None = None) -> str | None:
        """The path of the complete cached copy of ``obj``, downloaded now (``follower`` told where and how far
        it is, where the store reports that) unless another process did; None: it does not fit, stream it.

        A followed fill says nothing when the object does not fit: its reader, on a thread of its own, then
        reads through pages, which warn for themselves, once, from the reader's code, if they don't fit either."""
        warn = self._warn_stream if follower is None else _quiet
        if obj.size > self.max_bytes:
            warn(obj, f"is larger than the node cache ({self.max_bytes:,} bytes)")
            return None
        kill_point("cache.fill.wait")
        with self._exclusive(obj.key):
            found = self.hit(obj, dataset)
            if found is not None:  # another process filled it while we waited: exactly one download
                return found
            if self.complete_pages(obj, locked=True):  # every page was already read: no download
                self._count(dataset, misses=1)
                return str(self.object_path(obj.key))
            self._sql("UPDATE entries SET reserved=0 WHERE key=?", (obj.key,))  # we hold the lock: any is stale
            if not self.reserve(obj, dataset, obj.size):
                warn(obj, "does not fit: the node cache (or its disk) is full of entries in use")
                return None
            try:
                self._fill(obj, options, follower)
            except BaseException as exc:
                # Nothing of the fill is left: its temporaries are gone, and so is its entry (or its reservation,
                # where the entry holds pages).
                self._sql("DELETE FROM entries WHERE key=? AND complete=0 AND page_size=0", (obj.key,))
                self.settle(obj.key, obj.size)
                if not (isinstance(exc, OSError) and exc.errno in DISK_FULL):
                    raise
                warn(obj, "does not fit: the node cache's disk is full")
                return None
            self._count(dataset, misses=1, fetched=obj.size)
        return str(self.object_path(obj.key))

    def _warn_stream(self, obj: ObjectIdentity, why: str) -> None:
        warnings.warn(f"ferry: {obj.uri} ({obj.size:,} bytes) {why}; reading it from the store.",
                      CacheMissWarning, stacklevel=5)

    def _fill(self, obj: ObjectIdentity, options: dict[str, Any] | None, follower: Follower | None = None) -> None:
        """Download the whole object into place (the key's lock and a reservation are held)."""
        from ferry.storage import download_file

        path = self.object_path(obj.key)
        path.parent.mkdir(mode=0o700, exist_ok=True)
        for leftover in self._temporaries(obj.key):  # of a filler killed earlier: we hold the lock
            leftover.unlink(missing_ok=True)
        staged = path.with_name(f".{obj.key}.part-{uuid.uuid4().hex[:8]}")
        try:
            download_file(obj.uri, staged, options, "persistent", follower=follower)  # removes its temporary on error
            size = os.path.getsize(staged)
            if size != obj.size:
                raise FerryError(f"{obj.uri} changed while it was being read ({size:,} bytes, not {obj.size:,}); "
                                 "read it again.")
            os.chmod(staged, 0o400)
            digest = fingerprint_of(staged)
            kill_point("cache.fill.staged")
            os.replace(staged, path)
        finally:
            staged.unlink(missing_ok=True)
        self._publish(obj, digest)

    def _publish(self, obj: ObjectIdentity, digest: str) -> None:
        """Mark the file now at ``object_path`` as the complete entry; drop any partial pages."""
        st = os.stat(self.object_path(obj.key))
        with self._transaction() as db:
            db.execute("UPDATE entries SET complete=1, page_size=0, size=?, reserved=MAX(0, reserved-?), "
                       "fingerprint=?, stamp=?, last_access=? WHERE key=?",
                       (obj.size, obj.size, digest, stamp_of(st), time.time(), obj.key))
        self.pages_path(obj.key).unlink(missing_ok=True)
        self.map_path(obj.key).unlink(missing_ok=True)

    # ---- partial objects (block reads) -------------------------------------------------------

    def open_pages(self, obj: ObjectIdentity, dataset: str, page_size: int) -> tuple[int, int, int] | None:
        """For a block reader: (page size, fd of the sparse pages file, fd of the page map), both
        writable; None when the whole object is cached (read it at ``object_path``)."""
        opened = self._existing_pages(obj.key)  # the usual case: no lock, so fetches in flight don't delay it
        if opened is not None:
            return opened
        kill_point("cache.pages.wait")
        # Shared with page fetches (a reader never waits for another's fetch), exclusive of whole fills;
        # creators take turns on a lock of their own.
        with self.filling(obj.key), self._exclusive(f"{obj.key}.new"):
            opened = self._existing_pages(obj.key)
            if opened is not None:
                return opened
            rows = self._sql("SELECT complete FROM entries WHERE key=?", (obj.key,))
            if rows and rows[0][0] and self.object_path(obj.key).exists():
                return None
            from ferry.datasets.blocks import RECORD, page_count

            data, pages_map = self.pages_path(obj.key), self.map_path(obj.key)
            for leftover in [*self._temporaries(obj.key), self.object_path(obj.key), data, pages_map]:
                leftover.unlink(missing_ok=True)  # a damaged copy, or what a killed fill left
            self._sql("INSERT OR REPLACE INTO entries (key, uri, dataset, identity, page_size, last_access) "
                      "VALUES (?,?,?,?,?,?)", (obj.key, obj.uri, dataset, obj.identity, page_size, time.time()))
            for path, length in ((data, obj.size), (pages_map, RECORD.size * page_count(obj.size, page_size))):
                tmp = path.with_name(f".{obj.key}.{path.suffix[1:]}.part-{uuid.uuid4().hex[:8]}")
                fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
                os.ftruncate(fd, length)  # sparse: takes no disk until pages are written
                os.close(fd)
                os.replace(tmp, path)
            opened = self._existing_pages(obj.key)
            assert opened is not None
            return opened

    def _existing_pages(self, key: str) -> tuple[int, int, int] | None:
        rows = self._sql("SELECT page_size FROM entries WHERE key=?", (key,))
        if not rows or not rows[0][0]:
            return None
        try:
            data = os.open(self.pages_path(key), os.O_RDWR)
        except FileNotFoundError:
            return None
        try:
            return int(rows[0][0]), data, os.open(self.map_path(key), os.O_RDWR)
        except FileNotFoundError:
            os.close(data)
            return None

    def pages_gone(self, key: str) -> bool:
        """Whether a partial object became a whole one (or was dropped): stop writing pages then."""
        rows = self._sql("SELECT page_size FROM entries WHERE key=?", (key,))
        return not rows or not rows[0][0]

    def complete_pages(self, obj: ObjectIdentity, locked: bool = False, trusted: bytes = b"") -> bool:
        """If every page of a partial object is present and intact, make it the whole entry by a
        rename (no copy). With ``locked`` the caller holds the key's lock; else it is tried, not awaited.
        Pages nonzero in ``trusted`` were written by the caller and are not checked again."""
        rows = self._sql("SELECT page_size, size FROM entries WHERE key=?", (obj.key,))
        if not rows or not rows[0][0] or rows[0][1] != obj.size:
            return False
        if not locked:
            with self._exclusive(obj.key, wait=False) as got:
                return got and self.complete_pages(obj, locked=True, trusted=trusted)
        from ferry.datasets.blocks import verify_pages

        data = self.pages_path(obj.key)
        lost = verify_pages(data, self.map_path(obj.key), obj.size, int(rows[0][0]), trusted)
        if lost:  # damaged pages: forget them, they are fetched again when read
            self._sql("UPDATE entries SET size=MAX(0, size-?) WHERE key=?", (lost, obj.key))
            return False
        os.chmod(data, 0o400)
        digest = fingerprint_of(data)
        path = self.object_path(obj.key)
        path.parent.mkdir(mode=0o700, exist_ok=True)
        os.replace(data, path)
        self._publish(obj, digest)
        return True

    # ---- leftovers ---------------------------------------------------------------------------

    def reclaim(self, scan: bool = True) -> int:
        """Remove what fills killed mid-way left (temporaries, reservations, orphan files) for every
        key no live filler holds. Without ``scan`` only keys the index shows as being filled are
        checked (cheap: done when the cache starts). Returns the bytes freed."""
        keys = {row[0] for row in self._sql("SELECT key FROM entries WHERE reserved > 0 OR "
                                            "(complete = 0 AND page_size = 0)")}
        if scan:
            known = {row[0] for row in self._sql("SELECT key FROM entries")}
            for folder in [*(self.root / "objects").iterdir(), self.root / "blocks"]:
                for path in folder.iterdir() if folder.is_dir() else ():
                    key = path.name[1:65] if path.name.startswith(".") else path.name[:64]
                    if path.name.startswith(".") or key not in known:
                        keys.add(key)
        freed = 0
        for key in sorted(keys):
            if len(key) == 64 and all(c in "0123456789abcdef" for c in key):
                freed += self._reclaim_key(key)
        return freed

    def _reclaim_key(self, key: str) -> int:
        with self._exclusive(key, wait=False) as got:
            if not got:
                return 0  # a live filler holds it: its temporaries are in use
            freed = 0
            for leftover in self._temporaries(key):
                freed += _remove(leftover)
            rows = self._sql("SELECT complete, page_size FROM entries WHERE key=?", (key,))
            whole, data, pages_map = self.object_path(key), self.pages_path(key), self.map_path(key)
            if rows and rows[0][0] and whole.exists():
                self._sql("UPDATE entries SET reserved=0 WHERE key=?", (key,))
            elif rows and rows[0][1] and data.exists() and pages_map.exists():
                from ferry.datasets.blocks import reclaim_pages

                present, given_back = reclaim_pages(data, pages_map, os.path.getsize(data), int(rows[0][1]))
                freed += given_back
                self._sql("UPDATE entries SET reserved=0, size=? WHERE key=?", (present, key))
            else:  # an interrupted whole fill, or files the index doesn't know
                for orphan in (whole, data, pages_map):
                    freed += _remove(orphan)
                self._sql("DELETE FROM entries WHERE key=?", (key,))
            return freed

    # ---- eviction ----------------------------------------------------------------------------

    def make_room(self, needed: int, keep: str = "") -> int:
        """Evict least-recently-used, unpinned entries until ``needed`` bytes are freed. Returns bytes freed."""
        freed = 0
        for key, dataset, size in self._sql("SELECT key, dataset, size FROM entries ORDER BY last_access"):
            if freed >= needed:
                break
            if key != keep and self._evict(key, dataset):
                freed += size
        return freed

    def _evict(self, key: str, dataset: str) -> bool:
        with os.fdopen(_private_file(self.root / "pins" / key), "r+b") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # a running task holds it
            try:
                if not self._sql("SELECT 1 FROM entries WHERE key=?", (key,)):
                    return False  # evicted already, by a fetch that listed it at the same time as this one
                for path in (self.object_path(key), self.pages_path(key), self.map_path(key)):
                    path.unlink(missing_ok=True)
                self._sql("DELETE FROM entries WHERE key=?", (key,))
                self._count(dataset, evictions=1)
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return True

    def prune(self, to_bytes: int | None = None) -> int:
        """Reclaim leftovers, then evict unpinned entries until the cache holds at most ``to_bytes``
        (default: its limit). Returns the bytes freed."""
        freed = self.reclaim()
        target = self.max_bytes if to_bytes is None else to_bytes
        return freed + self.make_room(self.used_bytes() - target)

    def clear(self) -> int:
        """Evict everything not pinned; forget identities. Returns bytes freed."""
        freed = self.prune(0)
        self._sql("DELETE FROM identities")
        self._sql("DELETE FROM listings")
        return freed

    def stats(self) -> CacheStats:
        per = {
            row[0]: {"hits": row[1], "misses": row[2], "bytes_fetched": row[3], "evictions": row[4],
                     "damaged": row[5], "bytes": 0, "entries": 0}
            for row in self._sql("SELECT dataset, hits, misses, bytes_fetched, evictions, damaged FROM stats")
        }
        for dataset, count, size in self._sql("SELECT dataset, COUNT(*), SUM(size) FROM entries GROUP BY dataset"):
            per.setdefault(dataset, {"hits": 0, "misses": 0, "bytes_fetched": 0, "evictions": 0, "damaged": 0})
            per[dataset].update(entries=count, bytes=size)
        entries = int(self._sql("SELECT COUNT(*) FROM entries")[0][0])
        return CacheStats(self.used_bytes(), self.max_bytes, entries, per)

    def close(self) -> None:
        with self._db_lock:
            self._db.close()


def _remove(path: Path) -> int:
    """Delete a file; returns the disk space it held."""
    try:
        size = path.lstat().st_blocks * 512
        path.unlink()
    except FileNotFoundError:
        return 0
    return size
