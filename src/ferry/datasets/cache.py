"""The node cache: persistent-store objects kept on this machine after their first read.

It belongs to the node, not to a process: every task and process on the
machine shares it, and it survives restarts. Properties it keeps:

- **One download per object**, however many processes ask at once: the filler
  holds an exclusive lock on the object's key; the others wait, then hit.
- **No false hits**: a fill is written to a temporary file and renamed into
  place; a crash mid-download leaves only a temporary that is never read.
- **Freshness**: entries are keyed by the object's identity (ETag, version,
  or size and modification time), re-checked after a short TTL; a replaced
  object gets a new key and is fetched anew.
- **Bounded size**: least-recently-used entries are evicted to make room,
  never one that a running task holds (a shared lock on its pin file). An
  object that can't fit, or a full disk, means streaming from the store.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import sqlite3
import threading
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ferry.errors import FerryError
from ferry.storage import filesystem, store_errors

DEFAULT_TTL = 5.0
_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY, uri TEXT NOT NULL, dataset TEXT NOT NULL, identity TEXT NOT NULL,
    size INTEGER NOT NULL, complete INTEGER NOT NULL, last_access REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS identities (
    uri TEXT PRIMARY KEY, identity TEXT NOT NULL, size INTEGER NOT NULL, checked REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS stats (
    dataset TEXT PRIMARY KEY, hits INTEGER NOT NULL DEFAULT 0, misses INTEGER NOT NULL DEFAULT 0,
    bytes_fetched INTEGER NOT NULL DEFAULT 0, evictions INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS listings (
    uri TEXT PRIMARY KEY, files TEXT NOT NULL, checked REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_lru ON entries (last_access);
"""


class CacheMissWarning(UserWarning):
    """A dataset object is read straight from the store instead of through the node cache."""


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
    """The strongest identity a protocol offers: ETag or version, else size and mtime."""
    for field in ("ETag", "etag", "VersionId", "version_id", "generation", "md5Hash", "md5"):
        value = info.get(field)
        if value:
            return f"{field}:{str(value).strip(chr(34))}"
    mtime = info.get("mtime") or info.get("LastModified") or info.get("updated") or info.get("created") or ""
    return f"size:{info.get('size')}:mtime:{mtime}"


class NodeCache:
    """A size-bounded, shared, crash-safe cache of persistent-store objects on local disk."""

    def __init__(self, root: str | os.PathLike[str], max_bytes: int, ttl: float = DEFAULT_TTL) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.ttl = ttl
        for sub in ("objects", "blocks", "locks", "pins"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._db_lock = threading.Lock()
        self._db = sqlite3.connect(self.root / "index.db", check_same_thread=False, isolation_level=None, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self.session_hits = self.session_misses = 0  # this process's share, cheap to read

    # ---- index -------------------------------------------------------------------------------

    def _sql(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._db_lock:
            return self._db.execute(sql, args).fetchall()

    def _count(self, dataset: str, hits: int = 0, misses: int = 0, fetched: int = 0, evictions: int = 0) -> None:
        self.session_hits += hits
        self.session_misses += misses
        self._sql(
            "INSERT INTO stats VALUES (?,?,?,?,?) ON CONFLICT (dataset) DO UPDATE SET hits=hits+excluded.hits, "
            "misses=misses+excluded.misses, bytes_fetched=bytes_fetched+excluded.bytes_fetched, "
            "evictions=evictions+excluded.evictions",
            (dataset, hits, misses, fetched, evictions),
        )

    def identify(self, uri: str, options: dict[str, Any] | None = None) -> ObjectIdentity:
        """The object's identity, from the index while it is younger than the TTL."""
        rows = self._sql("SELECT identity, size, checked FROM identities WHERE uri=?", (uri,))
        if rows and time.time() - rows[0][2] < self.ttl:
            return ObjectIdentity(uri, rows[0][0], rows[0][1])
        with store_errors("stat", uri, "persistent"):
            fs, path = filesystem(uri, options)
            info = fs.info(path)
        if info.get("type") == "directory":
            raise FerryError(f"{uri} is a folder; read it as a Directory, or name a file inside it.")
        found = ObjectIdentity(uri, identity_of(info), int(info.get("size") or 0))
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

    def blocks_dir(self, key: str) -> Path:
        return self.root / "blocks" / key

    def touch(self, key: str) -> None:
        self._sql("UPDATE entries SET last_access=? WHERE key=?", (time.time(), key))

    def record(self, obj: ObjectIdentity, dataset: str, size: int, complete: bool) -> None:
        self._sql(
            "INSERT INTO entries VALUES (?,?,?,?,?,?,?) ON CONFLICT (key) DO UPDATE SET size=excluded.size, "
            "complete=excluded.complete, last_access=excluded.last_access",
            (obj.key, obj.uri, dataset, obj.identity, size, int(complete), time.time()),
        )

    def add_partial(self, obj: ObjectIdentity, dataset: str, size: int) -> None:
        """Account for blocks of an object that is only partly cached."""
        self._sql(
            "INSERT INTO entries VALUES (?,?,?,?,?,0,?) ON CONFLICT (key) DO UPDATE SET size=size+excluded.size, "
            "last_access=excluded.last_access",
            (obj.key, obj.uri, dataset, obj.identity, size, time.time()),
        )

    def used_bytes(self) -> int:
        return int(self._sql("SELECT COALESCE(SUM(size), 0) FROM entries")[0][0])

    # ---- locks and pins ----------------------------------------------------------------------

    @contextlib.contextmanager
    def _exclusive(self, key: str) -> Iterator[None]:
        """Serialize fills of one object across every process on this node."""
        with open(self.root / "locks" / key, "a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def pin(self, key: str) -> Any:
        """A shared lock that keeps the entry from eviction until the returned handle is closed."""
        fh = open(self.root / "pins" / key, "a+b")
        fcntl.flock(fh, fcntl.LOCK_SH)
        return fh

    # ---- reads -------------------------------------------------------------------------------

    def local_copy(self, uri: str, dataset: str, options: dict[str, Any] | None = None) -> tuple[str, Any] | None:
        """A pinned, complete local copy of ``uri``: (path, pin). None means: stream it from the store."""
        obj = self.identify(uri, options)
        path = self.object_path(obj.key)
        pin = self.pin(obj.key)
        if path.exists():
            self.touch(obj.key)
            self._count(dataset, hits=1)
            return str(path), pin
        if obj.size > self.max_bytes:
            pin.close()
            warnings.warn(f"ferry: {uri} ({obj.size:,} bytes) is larger than the node cache "
                          f"({self.max_bytes:,} bytes); reading it from the store.", CacheMissWarning, stacklevel=3)
            return None
        with self._exclusive(obj.key):
            if path.exists():  # another process filled it while we waited: exactly one download
                self.touch(obj.key)
                self._count(dataset, hits=1)
                return str(path), pin
            self.make_room(obj.size, keep=obj.key)
            if self.used_bytes() + obj.size > self.max_bytes:  # the rest is in use: don't overfill
                pin.close()
                warnings.warn(f"ferry: the node cache is full of entries in use; reading {uri} from the store.",
                              CacheMissWarning, stacklevel=3)
                return None
            try:
                downloaded = self._fill(obj, path, options)
            except BaseException as exc:
                pin.close()
                if not (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)):
                    raise
                warnings.warn(f"ferry: the node cache's disk is full; reading {uri} from the store.",
                              CacheMissWarning, stacklevel=3)
                return None
            self.record(obj, dataset, obj.size, complete=True)
            self._count(dataset, misses=1, fetched=obj.size if downloaded else 0)
            shutil.rmtree(self.blocks_dir(obj.key), ignore_errors=True)
        return str(path), pin

    def _fill(self, obj: ObjectIdentity, path: Path, options: dict[str, Any] | None) -> bool:
        """Put the whole object at ``path``: joined from cached blocks if all are there (returns
        False), else downloaded (True)."""
        from ferry.storage import download_file

        path.parent.mkdir(parents=True, exist_ok=True)
        blocks = self.blocks_dir(obj.key)
        if blocks.is_dir() and self._assemble_blocks(obj, path):
            return False
        download_file(obj.uri, path, options, "persistent")  # temp file + rename: no partial hit
        if os.path.getsize(path) != obj.size:
            os.unlink(path)
            raise FerryError(f"{obj.uri} changed while it was being read; read it again.")
        return True

    def _assemble_blocks(self, obj: ObjectIdentity, path: Path) -> bool:
        """If every block of the object is cached, join them into the whole file."""
        from ferry.datasets.blocks import block_count, block_size_of

        folder = self.blocks_dir(obj.key)
        size = block_size_of(folder)
        if size is None:
            return False
        count = block_count(obj.size, size)
        names = [folder / str(i) for i in range(count)]
        if not all(p.exists() for p in names):
            return False
        tmp = path.with_name(f".{path.name}.part-{uuid.uuid4().hex[:8]}")
        with open(tmp, "wb") as out:
            for p in names:
                with open(p, "rb") as src:
                    shutil.copyfileobj(src, out, 8 << 20)
        os.replace(tmp, path)
        return True

    # ---- eviction ----------------------------------------------------------------------------

    def make_room(self, needed: int, keep: str = "") -> int:
        """Evict least-recently-used, unpinned entries until ``needed`` more bytes fit. Returns bytes freed."""
        freed = 0
        excess = self.used_bytes() + needed - self.max_bytes
        if excess <= 0:
            return 0
        for key, dataset, size in self._sql("SELECT key, dataset, size FROM entries ORDER BY last_access"):
            if freed >= excess:
                break
            if key != keep and self._evict(key, dataset):
                freed += size
        return freed

    def _evict(self, key: str, dataset: str) -> bool:
        with open(self.root / "pins" / key, "a+b") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # a running task holds it
            try:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.object_path(key))
                shutil.rmtree(self.blocks_dir(key), ignore_errors=True)
                self._sql("DELETE FROM entries WHERE key=?", (key,))
                self._count(dataset, evictions=1)
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return True

    def prune(self, to_bytes: int | None = None) -> int:
        """Evict unpinned entries until the cache holds at most ``to_bytes`` (default: its limit)."""
        target = self.max_bytes if to_bytes is None else to_bytes
        saved, self.max_bytes = self.max_bytes, target
        try:
            return self.make_room(0)
        finally:
            self.max_bytes = saved

    def clear(self) -> int:
        """Evict everything not pinned; forget identities. Returns bytes freed."""
        freed = self.prune(0)
        self._sql("DELETE FROM identities")
        self._sql("DELETE FROM listings")
        return freed

    def stats(self) -> CacheStats:
        per = {
            row[0]: {"hits": row[1], "misses": row[2], "bytes_fetched": row[3], "evictions": row[4], "bytes": 0, "entries": 0}
            for row in self._sql("SELECT dataset, hits, misses, bytes_fetched, evictions FROM stats")
        }
        for dataset, count, size in self._sql("SELECT dataset, COUNT(*), SUM(size) FROM entries GROUP BY dataset"):
            per.setdefault(dataset, {"hits": 0, "misses": 0, "bytes_fetched": 0, "evictions": 0})
            per[dataset].update(entries=count, bytes=size)
        entries = int(self._sql("SELECT COUNT(*) FROM entries")[0][0])
        return CacheStats(self.used_bytes(), self.max_bytes, entries, per)

    def count_fetch(self, dataset: str, fetched: int) -> None:
        self._count(dataset, fetched=fetched)

    def close(self) -> None:
        with self._db_lock:
            self._db.close()
