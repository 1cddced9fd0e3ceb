"""Accelerated datasets: a persistent store that every task reads like local files, via a node cache.

Inside a task, a ``File`` or ``Directory`` whose URI is under the persistent
store (``FERRY_PERSISTENT_URL``) is read through this node's cache: the
first access downloads it once, every later access on the node is local.
``ferry.dataset("refs/hg38.fa")`` (in ``ferry.types.files``) names such an object without spelling the store.
"""

from __future__ import annotations

import io
import threading
from typing import TYPE_CHECKING, Any

from ferry.config import Settings, active_settings
from ferry.datasets.names import check_name, dataset_of, relative_name
from ferry.errors import FerryError

if TYPE_CHECKING:
    from ferry.datasets.cache import NodeCache

# Objects at least this large are read page by page by ``File.open()`` (and on the mount) instead of fetched whole.
BLOCK_READ_THRESHOLD = 64 << 20

__all__ = ["find", "is_persistent", "node_cache", "open_blocks", "check_name", "dataset_of", "relative_name"]


def is_persistent(uri: str, settings: Settings | None = None) -> bool:
    root = (settings or active_settings()).persistent_url.rstrip("/") + "/"
    return uri.startswith(root)


_caches: dict[tuple[str, int, float], "NodeCache"] = {}
_caches_lock = threading.Lock()


def _cache_for(root: str, max_bytes: int, ttl: float) -> "NodeCache":
    """One NodeCache per process and place, made once even when threads ask for it at the same moment
    (two instances opening the index at once could find it locked)."""
    from ferry.datasets.cache import NodeCache

    key = (root, max_bytes, ttl)
    with _caches_lock:
        if key not in _caches:
            _caches[key] = NodeCache(root, max_bytes, ttl)
        return _caches[key]


def node_cache(settings: Settings | None = None) -> "NodeCache":
    """This node's cache, as the settings place and size it (one instance per process)."""
    s = settings or active_settings()
    return _cache_for(str(s.cache_dir), s.cache_max_bytes, s.cache_ttl)


def find(name: str, settings: Settings | None = None) -> tuple[str, bool]:
    """The URI of dataset ``name`` in the persistent store, and whether it is a folder."""
    from ferry.storage import filesystem, join, store_errors

    s = settings or active_settings()
    uri = join(s.persistent_url, check_name(name, s))
    with store_errors("find dataset", uri, "persistent"):
        fs, path = filesystem(uri, s.options_for(uri))
        if not fs.exists(path):
            raise FerryError(
                f"Dataset {name!r} does not exist in the persistent store ({s.persistent_url}). "
                "Upload it with `ferry datasets upload PATH NAME`, or list what is there with `ferry datasets ls`."
            )
        return uri, bool(fs.isdir(path))


def open_blocks(uri: str, settings: Settings | None = None) -> io.BufferedReader | None:
    """A seekable reader fetching pages on demand, or None when the object is small or already cached."""
    from ferry.datasets.blocks import BlockReader

    s = settings or active_settings()
    cache = node_cache(s)
    obj = cache.identify(uri, s.options_for(uri))
    if obj.size < BLOCK_READ_THRESHOLD or cache.object_path(obj.key).exists():
        return None
    reader = BlockReader(cache, obj, dataset_of(uri, s), s.options_for(uri))
    # A buffer of one page: small reads (readline, struct headers) don't each go to the cache's files,
    # and a read of a page or more goes straight through, so nothing is fetched that wasn't asked for.
    return io.BufferedReader(reader, buffer_size=reader.page)


def local_copy(uri: str, settings: Settings | None = None) -> tuple[str, Any] | None:
    """(path, pin) of a cached copy of a persistent object, or None when it must be streamed."""
    s = settings or active_settings()
    return node_cache(s).local_copy(uri, dataset_of(uri, s), s.options_for(uri))
