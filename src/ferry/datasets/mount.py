"""``ferry datasets mount``: the persistent store as a read-only folder, backed by the node cache.

Non-Python tools (samtools, a shell) can then read datasets as plain files;
the first read of an object fills the node cache, later reads are local.
Needs FUSE (``/dev/fuse``, libfuse2) and the ``fusepy`` package.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
import time
from typing import Any

from ferry.config import Settings, active_settings
from ferry.errors import FerryError


def fuse_available() -> tuple[bool, str]:
    """Whether a mount can work here, and if not, why."""
    if not os.path.exists("/dev/fuse"):
        return False, "/dev/fuse does not exist (FUSE is not available in this kernel or container)"
    try:
        import fuse  # noqa: F401  (fusepy; loads libfuse2)
    except (ImportError, OSError, EnvironmentError) as exc:
        return False, f"fusepy / libfuse2 unavailable ({exc}); pip install fusepy and apt-get install libfuse2 fuse3"
    return True, ""


class _Tree:
    """The store's files as a tree of folders, refreshed after the cache TTL."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.lock = threading.Lock()
        self.loaded = 0.0
        self.files: dict[str, int] = {}
        self.dirs: dict[str, set[str]] = {}

    def refresh(self) -> None:
        from ferry.datasets import node_cache
        from ferry.datasets.store import MANIFESTS

        with self.lock:
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


def build_operations(settings: Settings) -> Any:
    from fuse import FuseOSError, Operations

    from ferry.datasets import dataset_of, node_cache

    tree = _Tree(settings)
    started = time.time()

    class ReadOnlyStore(Operations):  # type: ignore[misc]
        def __init__(self) -> None:
            self.handles: dict[int, tuple[Any, Any]] = {}
            self.next_handle = 1
            self.lock = threading.Lock()

        def getattr(self, path: str, fh: Any = None) -> dict[str, Any]:
            tree.refresh()
            if path in tree.dirs:
                return {"st_mode": stat.S_IFDIR | 0o555, "st_nlink": 2, "st_mtime": started, "st_ctime": started, "st_atime": started}
            if path in tree.files:
                return {"st_mode": stat.S_IFREG | 0o444, "st_nlink": 1, "st_size": tree.files[path],
                        "st_mtime": started, "st_ctime": started, "st_atime": started}
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
            uri = settings.persistent_url.rstrip("/") + path
            copy = node_cache(settings).local_copy(uri, dataset_of(uri, settings), settings.options_for(uri))
            if copy is None:
                raise FuseOSError(errno.EFBIG)
            local, pin = copy
            with self.lock:
                handle = self.next_handle
                self.next_handle += 1
                self.handles[handle] = (open(local, "rb"), pin)
            return handle

        def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
            local, _ = self.handles[fh]
            return os.pread(local.fileno(), size, offset)

        def release(self, path: str, fh: int) -> int:
            with self.lock:
                local, pin = self.handles.pop(fh)
            local.close()
            pin.close()
            return 0

    return ReadOnlyStore()


def mount(mountpoint: str, *, foreground: bool = True, settings: Settings | None = None) -> None:
    """Mount the persistent store read-only at ``mountpoint`` until it is unmounted (fusermount -u)."""
    ok, why = fuse_available()
    if not ok:
        raise FerryError(f"Can't mount: {why}.")
    from fuse import FUSE

    os.makedirs(mountpoint, exist_ok=True)
    s = settings or active_settings()
    FUSE(build_operations(s), mountpoint, foreground=foreground, ro=True, nothreads=False, fsname="ferry")
