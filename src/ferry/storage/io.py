"""Atomic, streaming, retried reads and writes on any fsspec store.

A reader never sees a partial object: object stores publish a PUT (and a
multipart upload) only when it completes, so ferry writes there directly;
everywhere else it writes a temporary sibling and renames it into place.
The bytes themselves move through ``storage.transfer`` (concurrent, in
bounded memory). Errors from fsspec and the protocol libraries become ferry
errors that name the store and the URI; retryable ones (a store that is down
or stalled, for reads and writes alike) are retried with growing pauses.

Paths are confined: a store key that would land outside the folder it is
downloaded to (``../x``) is refused, and on ``file://`` a symlink that leads
out of its store root (``roots``) is not followed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol, TypeVar

from ferry.errors import (
    AccessDeniedError,
    DiskFullError,
    FerryError,
    ObjectNotFoundError,
    StorageError,
    StoreUnavailableError,
    UnsafePathError,
)
from ferry.storage import transfer
from ferry.storage.registry import filesystem, import_module, protocol_of

T = TypeVar("T")
Options = dict[str, Any] | None

# Protocols whose single write is published whole or not at all.
ATOMIC_PUT_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "oci", "memory"})
RETRY_DELAYS = (0.2, 0.8, 2.0, 4.0)
_UNAVAILABLE_NAMES = {
    "EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError",
    "ClientConnectorError", "ServerDisconnectedError", "ClientOSError", "ServerTimeoutError",
}
_DENIED_NAMES = {"NoCredentialsError", "PartialCredentialsError", "InvalidAccessKeyId", "SignatureDoesNotMatch"}

# Watchers of store traffic (tests, diagnostics), called as fn(event, detail): "read" / "write" (detail: the
# URI) before read_bytes / write_bytes, "retry" (detail: the error) before a retryable failure is retried.
observers: list[Callable[[str, str], None]] = []


def _notify(event: str, detail: str) -> None:
    for observer in observers:
        observer(event, detail)


def join(base: str, *parts: str) -> str:
    """Join URI parts with '/', whatever the protocol."""
    out = base.rstrip("/")
    for part in parts:
        if part:
            out += "/" + part.strip("/")
    return out


@contextlib.contextmanager
def store_errors(action: str, uri: str, store: str = "store") -> Iterator[None]:
    """Map what fsspec and protocol libraries raise into ferry's StorageError tree (ferry's own errors pass)."""
    try:
        yield
    except FerryError:
        raise
    except Exception as exc:  # noqa: BLE001 - mapped and re-raised below
        raise map_store_error(exc, action, uri, store) from exc


def map_store_error(exc: BaseException, action: str, uri: str, store: str) -> StorageError:
    names = {cls.__name__ for cls in type(exc).__mro__}
    detail = str(exc) or type(exc).__name__
    where = f"{action} {uri} ({store} store)"
    code = getattr(exc, "errno", None)
    if code in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(code, f"Could not {where}: the local disk is full ({detail}). Free some space, "
                                   "or point the download somewhere with room (FERRY_CACHE_DIR for the node cache).")
    if isinstance(exc, FileNotFoundError) or "NoSuchKey" in detail or "NoSuchBucket" in detail:
        return ObjectNotFoundError(f"Could not {where}: it does not exist ({detail}). Check the URI and that the bucket exists.")
    if isinstance(exc, PermissionError) or names & _DENIED_NAMES or "AccessDenied" in detail or "Forbidden" in detail:
        return AccessDeniedError(
            f"Could not {where}: access denied ({detail}). Check this store's credentials "
            f"(FERRY_{store.upper()}_OPTIONS or [stores.{store}] in ferry.toml)."
        )
    if (isinstance(exc, (TimeoutError, ConnectionError)) or names & _UNAVAILABLE_NAMES
            or code in (errno.ECONNREFUSED, errno.ETIMEDOUT, errno.EHOSTUNREACH)):
        return StoreUnavailableError(
            f"Could not {where}: the store is unreachable ({detail}). Check that the server is up "
            "and the endpoint is right; ferry retried with backoff."
        )
    return StorageError(f"Could not {where}: {type(exc).__name__}: {detail}")


def retrying(fn: Callable[[], T], delays: tuple[float, ...] | None = None) -> T:
    """Run ``fn``, retrying retryable storage errors with growing pauses."""
    for delay in RETRY_DELAYS if delays is None else delays:
        try:
            return fn()
        except StorageError as exc:
            if not exc.retryable:
                raise
            _notify("retry", str(exc))
            time.sleep(delay)
    return fn()


def _tmp_sibling(path: str) -> str:
    parent, _, name = path.rpartition("/")
    return f"{parent}/.{name}.tmp-{os.urandom(6).hex()}"


def local_path_of(uri: str, roots: Iterable[str] = ()) -> str | None:
    """The path behind a file:// URI (or a bare path), None for other protocols; lets hot paths skip fsspec.

    With ``roots`` (store URLs), a path inside one of them must stay inside it with its symlinks followed.
    """
    if uri.startswith("file://"):
        path = uri[len("file://"):]
    elif "://" in uri:
        return None
    else:
        path = uri
    base = _holding_root(path, roots)
    if base is not None:
        _check_links(path, base, uri)
    return path


def outside_stores(uri: str, roots: Iterable[str]) -> bool:
    """Whether ``uri`` is a local path (file:// or bare) in none of the stores ``roots``; one that is inside a
    store by its text but leads out of it (a symlink, '..') raises, as ``local_path_of`` does."""
    path = local_path_of(uri, roots)
    return path is not None and _holding_root(path, roots) is None


def _holding_root(path: str, roots: Iterable[str]) -> str | None:
    """The innermost local folder among ``roots`` that ``path`` is inside, if any."""
    bases = [b for b in map(local_path_of, roots) if b is not None and _inside(path, b)]
    return max(bases, key=len, default=None)


def _inside(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or below it, comparing the text (so ``folder/../x`` counts as inside)."""
    folder = folder.rstrip("/") or "/"
    return path == folder or path.startswith(folder if folder == "/" else folder + "/")


def _check_links(path: str, base: str, uri: str) -> None:
    real = os.path.realpath(path)
    if not _inside(real, os.path.realpath(base)):
        raise UnsafePathError(
            f"{uri} leads outside its store {base} (it resolves to {real}, through a symlink or '..'). "
            "ferry does not follow links out of a store: they would let a store hand out any file on this "
            "machine. Replace the link with the data itself, or pass the target's own URI."
        )


def member_path(folder: str | os.PathLike[str], rel: str, uri: str) -> str:
    """The local path for ``rel``, a name listed under ``uri``, inside ``folder``; refuses names that escape it."""
    parts = rel.split("/")
    if rel.startswith("/") or ".." in parts or "\0" in rel:
        raise UnsafePathError(
            f"{uri} holds an object named {rel!r}, which would land outside the folder it is fetched to "
            "(an absolute name or a '..' part). ferry never writes such names and refuses to read them. "
            "Rename or delete that object in the store."
        )
    return os.path.join(folder, *(p for p in parts if p not in ("", ".")))


def write_bytes(uri: str, data: bytes, options: Options = None, store: str = "metadata") -> None:
    """Write ``data`` at ``uri`` atomically."""
    _notify("write", uri)
    path = local_path_of(uri)
    if path is not None:
        with store_errors("write", uri, store):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = _tmp_sibling(path)
            with open(tmp, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        return

    def attempt() -> None:
        with store_errors("write", uri, store):
            if protocol_of(uri) in ATOMIC_PUT_PROTOCOLS:
                transfer.put_bytes(uri, data, options)
                return
            fs, path = filesystem(uri, options)
            parent = path.rpartition("/")[0]
            if parent:
                fs.makedirs(parent, exist_ok=True)
            tmp = _tmp_sibling(path)
            fs.pipe_file(tmp, data)
            fs.mv(tmp, path)

    retrying(attempt)


def read_bytes(uri: str, options: Options = None, store: str = "metadata", *, roots: Iterable[str] = ()) -> bytes:
    """The whole object; on file://, ``roots`` confine symlinks (see ``local_path_of``)."""
    _notify("read", uri)
    path = local_path_of(uri, roots)
    if path is not None:
        with store_errors("read", uri, store):
            with open(path, "rb") as fh:
                return fh.read()

    def attempt() -> bytes:
        with store_errors("read", uri, store):
            return transfer.get_bytes(uri, options)

    return retrying(attempt)


def exists(uri: str, options: Options = None, store: str = "store", *, roots: Iterable[str] = ()) -> bool:
    path = local_path_of(uri, roots)
    if path is not None:
        return os.path.exists(path)

    def attempt() -> bool:
        with store_errors("check", uri, store):
            fs, path = filesystem(uri, options)
            return bool(fs.exists(path))

    return retrying(attempt)


def modified(uri: str, options: Options = None, store: str = "store") -> float | None:
    """When the object at ``uri`` was last written (seconds since the epoch), None if it isn't there."""
    path = local_path_of(uri)
    if path is not None:
        try:
            return os.stat(path).st_mtime
        except FileNotFoundError:
            return None

    def attempt() -> float | None:
        with store_errors("check", uri, store):
            fs, path = filesystem(uri, options)
            try:
                info = fs.info(path)
            except FileNotFoundError:
                return None
        stamp = info.get("mtime") or info.get("LastModified") or info.get("updated") or info.get("created")
        if hasattr(stamp, "timestamp"):
            return float(stamp.timestamp())
        return float(stamp) if stamp else None

    return retrying(attempt)


@contextlib.contextmanager
def _progress(description: str, size: int | None = None) -> Iterator[Any]:
    shown = import_module("ferry.storage.progress").transfer_progress(description, size)
    try:
        yield shown
    finally:
        if shown is not None:
            shown.close()


def upload_file(local: str | os.PathLike[str], uri: str, options: Options = None, store: str = "raw") -> int:
    """Stream a local file to ``uri`` atomically; returns its size."""
    local = os.fspath(local)
    size = os.path.getsize(local)

    def attempt() -> None:
        with store_errors("upload to", uri, store), _progress(f"upload {Path(local).name}", size) as progress:
            if protocol_of(uri) in ATOMIC_PUT_PROTOCOLS:
                transfer.upload(local, uri, options, progress)
                return
            fs, path = filesystem(uri, options)
            parent = path.rpartition("/")[0]
            if parent:
                fs.makedirs(parent, exist_ok=True)
            tmp_name = _tmp_sibling(path).rpartition("/")[2]
            transfer.upload(local, f"{uri.rpartition('/')[0]}/{tmp_name}", options, progress)
            fs.mv(f"{parent}/{tmp_name}", path)

    retrying(attempt)
    return size


class Follower(Protocol):
    """Told where a download writes and how far each of its ranges got, so that it can read behind it."""

    def begin(self, path: str) -> None:
        """An attempt starts writing ``path`` from empty (a retry starts over)."""

    def wrote(self, start: int, end: int) -> None:
        """Bytes start..end (of the range that starts at ``start``) are in the file."""


def download_file(uri: str, local: str | os.PathLike[str], options: Options = None, store: str = "raw", *,
                  roots: Iterable[str] = (), follower: Follower | None = None) -> str:
    """Stream ``uri`` to a local path atomically (temp file + rename); ``roots`` as for ``local_path_of``;
    ``follower`` as ``transfer.reports_writes`` allows."""
    local_path_of(uri, roots)
    local = os.fspath(local)
    os.makedirs(os.path.dirname(local) or ".", exist_ok=True)
    tmp = f"{local}.part-{os.urandom(4).hex()}"

    def attempt() -> None:
        with store_errors("download", uri, store), _progress(f"download {uri.rpartition('/')[2]}") as progress:
            if follower is not None:
                follower.begin(tmp)
            transfer.download(uri, tmp, options, progress, follower.wrote if follower is not None else None)

    try:
        retrying(attempt)
        os.replace(tmp, local)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return local


def upload_directory(local: str | os.PathLike[str], uri: str, options: Options = None, store: str = "raw") -> int:
    """Upload a folder's files under ``uri``; returns the total size.

    The folder becomes visible under its final name only once complete on
    rename-capable stores; on object stores its URI is unreferenced until the
    task's outputs.pb (written last) names it.
    """
    root = Path(local)
    files = [p for p in sorted(root.rglob("*")) if p.is_file()]
    total = 0
    local_target = protocol_of(uri) == "file"
    staging = _tmp_sibling(uri.rstrip("/")) if local_target else uri
    for path in files:
        rel = path.relative_to(root).as_posix()
        total += upload_file(path, join(staging, rel), options, store)
    if local_target:
        fs, final = filesystem(uri, options)
        _, staged = filesystem(staging, options)
        fs.makedirs(staged, exist_ok=True)  # an empty folder is still a folder
        with store_errors("publish", uri, store):
            fs.mv(staged, final, recursive=True)
    return total


def list_files(uri: str, options: Options = None, store: str = "raw", *, roots: Iterable[str] = ()) -> dict[str, int]:
    """Relative names (posix) of every file under ``uri`` and their sizes.

    A name that would escape the folder (``../x``) is refused. On file://, symlinks must stay inside the
    store root in ``roots`` that holds ``uri`` (or inside ``uri`` itself); linked folders are not descended.
    """
    confinement = _confinement(uri, roots)
    local = local_path_of(uri, confinement)
    if local is not None:
        with store_errors("list", uri, store):
            found = _local_files(local, uri, confinement)
    else:
        with store_errors("list", uri, store):
            fs, root = filesystem(uri, options)
            listed = fs.find(root, detail=True)
        prefix = root.rstrip("/") + "/"
        found = {p[len(prefix):]: int(meta.get("size") or 0) for p, meta in listed.items() if p.startswith(prefix)}
    for rel in found:
        member_path("", rel, uri)
    return found


def _confinement(uri: str, roots: Iterable[str]) -> list[str]:
    """The store root that holds ``uri``, or else ``uri`` itself: where a folder's symlinks must lead."""
    path = local_path_of(uri)
    base = None if path is None else _holding_root(path, roots)
    return [base if base is not None else uri]


def _local_files(folder: str, uri: str, roots: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    todo = [("", folder)] if os.path.isdir(folder) else []  # a missing folder lists as empty, as in fsspec
    while todo:
        prefix, parent = todo.pop()
        with os.scandir(parent) as entries:
            for entry in entries:
                rel = prefix + entry.name
                if entry.is_symlink():
                    local_path_of(join(uri, rel), roots)  # refuses a link out of the root
                    if not entry.is_dir():  # linked folders are not descended
                        found[rel] = entry.stat().st_size
                elif entry.is_dir(follow_symlinks=False):
                    todo.append((rel + "/", entry.path))
                else:
                    found[rel] = entry.stat(follow_symlinks=False).st_size
    return found


def download_directory(uri: str, local: str | os.PathLike[str], options: Options = None, store: str = "raw", *,
                       roots: Iterable[str] = ()) -> str:
    """Fetch every file under ``uri`` into ``local`` (each atomically), then return ``local``.

    Names and symlinks are confined as in ``list_files``, before anything is fetched."""
    local = os.fspath(local)
    confinement = _confinement(uri, roots)
    members = list_files(uri, options, store, roots=confinement)
    staging = f"{local}.part-{os.urandom(4).hex()}"
    os.makedirs(staging, exist_ok=True)
    try:
        for rel in members:
            download_file(join(uri, rel), member_path(staging, rel, uri), options, store, roots=confinement)
        if os.path.exists(local):
            shutil.rmtree(local)
        os.replace(staging, local)
    finally:
        if os.path.exists(staging):
            shutil.rmtree(staging, ignore_errors=True)
    return local


@contextlib.contextmanager
def publishing(uri: str, options: Options = None, store: str = "raw") -> Iterator[str]:
    """Yield a local path to write; on success it is published whole at ``uri``.

    On ``file://`` the path is a temporary sibling renamed into place (no
    copy); elsewhere it is a local temporary file streamed up, then removed.
    On error nothing is published.
    """
    if protocol_of(uri) == "file":
        _, final = filesystem(uri, options)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        tmp = _tmp_sibling(final)
        try:
            yield tmp
            os.replace(tmp, final)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return
    from ferry.workdirs import scratch_file

    fd, tmp = scratch_file("upload-")  # a killed process's staged upload is swept by the next process
    os.close(fd)
    try:
        yield tmp
        upload_file(tmp, uri, options, store)
    finally:
        os.unlink(tmp)



@contextlib.contextmanager
def open_read(uri: str, options: Options = None, store: str = "raw", *, roots: Iterable[str] = ()) -> Iterator[Any]:
    """A streaming, read-only file object for ``uri`` (no local copy); ``roots`` as for ``local_path_of``."""
    local_path_of(uri, roots)
    with store_errors("read", uri, store):
        fs, path = filesystem(uri, options)
        fh = fs.open(path, "rb", block_size=transfer.TransferConfig.from_options(options).chunk_size)
    try:
        yield fh
    finally:
        fh.close()
