"""Content fingerprints for offloaded values, set as ``Literal.hash`` by the data plane.

The engine keys task memoization on them without ever reading raw data.
Objects larger than ``HASH_LIMIT`` are not hashed (it would cost a second
pass over the bytes); their key falls back to the URI, which is immutable,
so the cache stays correct and only misses more often.
"""

from __future__ import annotations

import hashlib
import os

HASH_LIMIT = 128 * 1024 * 1024


def file_hash(path: str | os.PathLike[str], size: int | None = None) -> str:
    """``sha256:<hex>`` of a local file, or "" when it is over the limit."""
    size = os.path.getsize(path) if size is None else size
    if size > HASH_LIMIT:
        return ""
    with open(path, "rb", buffering=0) as fh:
        return "sha256:" + hashlib.file_digest(fh, "sha256").hexdigest()  # one small buffer, reused


def folder_hash(root: str | os.PathLike[str]) -> str:
    """A hash over every file's relative path and content, or "" when the folder is over the limit."""
    files = sorted(
        os.path.relpath(os.path.join(d, f), root) for d, _, names in os.walk(root) for f in names
    )
    if sum(os.path.getsize(os.path.join(root, f)) for f in files) > HASH_LIMIT:
        return ""
    digest = hashlib.sha256()
    for rel in files:
        digest.update(rel.replace(os.sep, "/").encode() + b"\0" + file_hash(os.path.join(root, rel)).encode() + b"\0")
    return "sha256:" + digest.hexdigest()
