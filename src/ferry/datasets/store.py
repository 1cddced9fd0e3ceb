"""Managing the persistent store: upload once, list, and warm a node's cache ahead of time.

Uploads skip files whose content is unchanged, using a manifest of content
hashes kept beside the datasets (``.ferry-manifests/<dataset>.json``); each
object is published atomically, several at once, large ones in concurrent
multipart parts (s3fs).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ferry.config import Settings, active_settings
from ferry.datasets.names import check_name
from ferry.errors import FerryError, ObjectNotFoundError
from ferry.storage import filesystem, join, read_bytes, store_errors, upload_file, write_bytes
from ferry.storage.transfer import TransferConfig

MANIFESTS = ".ferry-manifests"
Progress = Callable[[int], None]  # bytes done since the last call


@dataclass
class UploadReport:
    uri: str
    uploaded: list[str]
    skipped: list[str]
    bytes_uploaded: int


def sha256_of(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _local_files(local: Path) -> dict[str, Path]:
    if local.is_file():
        return {"": local}
    if not local.is_dir():
        raise FerryError(f"{local} does not exist; give a file or folder to upload.")
    return {p.relative_to(local).as_posix(): p for p in sorted(local.rglob("*")) if p.is_file()}


def upload(local: str | os.PathLike[str], name: str | None = None, *, settings: Settings | None = None,
           parallel: int = 8, progress: Progress | None = None) -> UploadReport:
    """Upload a file or folder to the persistent store as dataset ``name`` (default: its base name)."""
    s = settings or active_settings()
    source = Path(local).expanduser()
    rel = check_name(name or source.name, s)
    files = _local_files(source)
    root = join(s.persistent_url, rel)
    options = s.options_for(root)
    manifest_uri = join(s.persistent_url, MANIFESTS, rel.replace("/", "%2F") + ".json")
    try:
        manifest: dict[str, dict[str, Any]] = json.loads(read_bytes(manifest_uri, options, "persistent"))
    except ObjectNotFoundError:
        manifest = {}
    fs, _ = filesystem(root, options)
    # a large file is a multipart upload holding chunk_size x concurrency in flight: one such at a time
    chunk = TransferConfig.from_options(options).chunk_size
    one_large = threading.Semaphore(1)

    def one(item: tuple[str, Path]) -> tuple[str, int, dict[str, Any]]:
        member, path = item
        uri = join(root, member) if member else root
        size = path.stat().st_size
        digest = sha256_of(path)
        known = manifest.get(member)
        if known and known.get("sha256") == digest and known.get("size") == size:
            _, remote = filesystem(uri, options)
            with store_errors("check", uri, "persistent"):
                if fs.exists(remote) and fs.size(remote) == size:
                    if progress:
                        progress(size)
                    return member, 0, known
        with one_large if size > chunk else contextlib.nullcontext():
            upload_file(path, uri, options, "persistent")
        if progress:
            progress(size)
        return member, size, {"sha256": digest, "size": size}

    uploaded: list[str] = []
    skipped: list[str] = []
    total = 0
    with ThreadPoolExecutor(max(1, parallel)) as pool:
        for member, sent, entry in pool.map(one, files.items()):
            manifest[member] = entry
            (uploaded if sent else skipped).append(member or rel)
            total += sent
    write_bytes(manifest_uri, json.dumps(manifest, sort_keys=True).encode(), options, "persistent")
    return UploadReport(root, uploaded, skipped, total)


def local_size(local: str | os.PathLike[str]) -> int:
    return sum(p.stat().st_size for p in _local_files(Path(local)).values())


@dataclass
class Entry:
    name: str
    kind: str  # "file" or "folder"
    size: int
    modified: str


def ls(prefix: str = "", settings: Settings | None = None) -> list[Entry]:
    """The datasets (or members) under ``prefix``, with sizes (folders summed) and modification times."""
    s = settings or active_settings()
    uri = join(s.persistent_url, check_name(prefix, s)) if prefix else s.persistent_url
    with store_errors("list", uri, "persistent"):
        fs, path = filesystem(uri, s.options_for(uri))
        if not fs.exists(path):
            return []
        if fs.isfile(path):
            infos = [fs.info(path)]
        else:
            infos = fs.ls(path, detail=True)
        out = []
        for info in infos:
            name = info["name"].rstrip("/").rsplit("/", 1)[-1]
            if name == MANIFESTS:
                continue
            folder = info.get("type") == "directory"
            size = sum(int(v.get("size") or 0) for v in fs.find(info["name"], detail=True).values()) if folder else int(info.get("size") or 0)
            modified = info.get("mtime") or info.get("LastModified") or info.get("updated") or ""
            if isinstance(modified, (int, float)):
                import datetime as dt

                modified = dt.datetime.fromtimestamp(modified).isoformat(timespec="seconds")
            out.append(Entry(name, "folder" if folder else "file", size, str(modified)))
    return sorted(out, key=lambda e: e.name)


def warm(names: list[str], settings: Settings | None = None, progress: Progress | None = None) -> dict[str, int]:
    """Fill this node's cache with the named datasets; returns bytes cached per name."""
    from ferry.datasets import find, local_copy, node_cache

    s = settings or active_settings()
    done: dict[str, int] = {}
    for name in names:
        root, is_folder = find(name, s)
        members = [join(root, m) for m in sorted(node_cache(s).listing(root, s.options_for(root)))] if is_folder \
            else [root]
        total = 0
        for uri in members:
            copy = local_copy(uri, s)
            if copy is not None:
                path, pin = copy
                pin.close()
                size = os.path.getsize(path)
                total += size
                if progress:
                    progress(size)
        done[name] = total
    return done
