"""``ferry datasets mount``: the persistent store as a read-only folder, backed by the node cache.

Non-Python tools (samtools, a shell, SQLite, HDF5) can then read datasets as
plain files. Small objects are filled into the node cache whole on open; large
ones (``BLOCK_READ_THRESHOLD`` and up) are read through the block reader, so
opening a 100 GiB file and reading a header fetches only the pages touched.
File locks (``fcntl.lockf``, ``flock``) work: the filesystem implements no
``lock`` operation, so the kernel keeps them, as for a local file.
Needs FUSE (``/dev/fuse``, libfuse 2 or 3) and the ``mfusepy`` package.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ferry.config import Settings, active_settings
from ferry.errors import FerryError, install_line


def fuse_available() -> tuple[bool, str]:
    """Whether a mount can work here, and if not, why."""
    if not os.path.exists("/dev/fuse"):
        return False, "/dev/fuse does not exist (FUSE is not available in this kernel or container)"
    try:
        import mfusepy  # noqa: F401  (loads libfuse)
    except (ImportError, OSError, AttributeError) as exc:
        return False, (f"mfusepy / libfuse unavailable ({exc}); {install_line('fuse')} "
                       "and apt-get install fuse3 (or libfuse2)")
    return True, ""


class _Tree:
    """The store's files as a tree of folders, refreshed after the cache TTL."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.refreshing = threading.Lock()
        self.loaded = 0.0
        self.files: dict[str, int] = {}
        self.dirs: dict[str, set[str]] = {}

    def refresh(self) -> None:
        from ferry.datasets import node_cache
        from ferry.datasets.store import MANIFESTS

        with self.refreshing:
            if time.time() - self.loaded < self.settings.cache_ttl:
                return
            url = self.settings.persistent_url
            listing = node_cache(self.settings).listing(url, self.settings.options_for(url))
            self.files = {"/" + k: v for k, v in listing.items() if not k.startswith(MANIFESTS + "/")}
            self.dirs = {"/": set()}
            for path in self.files:
                parts = path.strip("/").split("/")
                for depth in range(len(parts)):
                    parent = "/" + "/".join(parts[:depth])
                    self.dirs.setdefault(parent.rstrip("/") or "/", set()).add(parts[depth])
            self.loaded = time.time()


@dataclass
class _Handle:
    """An open file on the mount: a pinned local copy (``fd``), or a block reader."""

    pin: Any = None
    fd: int = -1
    reader: Any = None
    reading: threading.Lock = field(default_factory=threading.Lock)  # a reader's position is its state

    def read(self, size: int, offset: int) -> bytes:
        if self.reader is None:
            return os.pread(self.fd, size, offset)
        with self.reading:
            self.reader.seek(offset)
            chunks = []
            while size > 0 and (chunk := self.reader.read(size)):
                chunks.append(chunk)
                size -= len(chunk)
            return b"".join(chunks)

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
        if self.fd >= 0:
            os.close(self.fd)
        if self.pin is not None:
            self.pin.close()


def _open_object(uri: str, settings: Settings) -> _Handle:
    import ferry.datasets as datasets
    from ferry.datasets import dataset_of, node_cache
    from ferry.datasets.blocks import BlockReader

    cache = node_cache(settings)
    options = settings.options_for(uri)
    obj = cache.identify(uri, options)
    if obj.size < datasets.BLOCK_READ_THRESHOLD or cache.object_path(obj.key).exists():
        copy = cache.local_copy(uri, dataset_of(uri, settings), options)
        if copy is not None:
            local, pin = copy
            return _Handle(pin=pin, fd=os.open(local, os.O_RDONLY))
    # Large, or no room to cache it whole: pages on demand (streamed if the cache is full).
    return _Handle(reader=BlockReader(cache, obj, dataset_of(uri, settings), options))


def build_operations(settings: Settings) -> Any:
    from mfusepy import FuseOSError, Operations

    tree = _Tree(settings)
    started = time.time_ns()

    class ReadOnlyStore(Operations):  # type: ignore[misc]
        use_ns = True  # times in nanoseconds

        def __init__(self) -> None:
            self.handles: dict[int, _Handle] = {}
            self.next_handle = 1
            # Not named ``lock``: that is the FUSE operation for POSIX locks, which the kernel keeps for us.
            self.handles_lock = threading.Lock()

        def getattr(self, path: str, fh: Any = None) -> dict[str, Any]:
            tree.refresh()
            times = {"st_mtime": started, "st_ctime": started, "st_atime": started}
            if path in tree.dirs:
                return {"st_mode": stat.S_IFDIR | 0o555, "st_nlink": 2, **times}
            if path in tree.files:
                return {"st_mode": stat.S_IFREG | 0o444, "st_nlink": 1, "st_size": tree.files[path], **times}
            raise FuseOSError(errno.ENOENT)

        def readdir(self, path: str, fh: Any) -> list[str]:
            tree.refresh()
            if path not in tree.dirs:
                raise FuseOSError(errno.ENOENT)
            return [".", "..", *sorted(tree.dirs[path])]

        def open(self, path: str, flags: int) -> int:
            if flags & (os.O_WRONLY | os.O_RDWR):
                raise FuseOSError(errno.EROFS)
            tree.refresh()
            if path not in tree.files:
                raise FuseOSError(errno.ENOENT)
            try:
                handle = _open_object(settings.persistent_url.rstrip("/") + path, settings)
            except FileNotFoundError as exc:
                raise FuseOSError(errno.ENOENT) from exc
            except FerryError as exc:
                raise FuseOSError(errno.EIO) from exc
            with self.handles_lock:
                number = self.next_handle
                self.next_handle += 1
                self.handles[number] = handle
            return number

        def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
            try:
                return self.handles[fh].read(size, offset)
            except FerryError as exc:
                raise FuseOSError(errno.EIO) from exc

        def release(self, path: str, fh: int) -> int:
            with self.handles_lock:
                handle = self.handles.pop(fh)
            handle.close()
            return 0

    return ReadOnlyStore()


def mount(mountpoint: str, *, foreground: bool = True, settings: Settings | None = None) -> None:
    """Mount the persistent store read-only at ``mountpoint`` until it is unmounted (fusermount -u)."""
    ok, why = fuse_available()
    if not ok:
        raise FerryError(f"Can't mount: {why}.")
    from mfusepy import FUSE

    os.makedirs(mountpoint, exist_ok=True)
    s = settings or active_settings()
    FUSE(build_operations(s), mountpoint, foreground=foreground, ro=True, nothreads=False, fsname="ferry")
