"""Task memoization keys, computed from meta values only.

The key covers the task template's name, cache version and interface, and each input
literal: primitives by value, offloaded data by the content hash its producer
recorded (``Literal.hash``) or, failing that, by its immutable URI.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from flyteidl.core import tasks_pb2

from ferry.literals import Literal, LiteralMap, serialize
from ferry.storage import join

if TYPE_CHECKING:
    from ferry.config import Settings

CACHE_FOLDER = "task-cache"


def _fingerprint(lit: Literal, digest: "hashlib._Hash") -> None:
    if lit.hash:
        digest.update(b"h" + lit.hash.encode())
        return
    kind = lit.WhichOneof("value")
    if kind == "collection":
        digest.update(b"[%d" % len(lit.collection.literals))
        for item in lit.collection.literals:
            _fingerprint(item, digest)
        return
    if kind == "map":
        digest.update(b"{%d" % len(lit.map.literals))
        for key in sorted(lit.map.literals):
            digest.update(key.encode() + b"\0")
            _fingerprint(lit.map.literals[key], digest)
        return
    plain = Literal()
    plain.CopyFrom(lit)
    plain.ClearField("metadata")  # sizes and row counts don't change what the value is
    if plain.HasField("scalar") and plain.scalar.HasField("union"):
        digest.update(b"u" + plain.scalar.union.type.structure.tag.encode())
        _fingerprint(plain.scalar.union.value, digest)
        return
    digest.update(b"v" + serialize(plain))


def cache_key(task: tasks_pb2.TaskTemplate, inputs: LiteralMap) -> str:
    """What makes two runs of a task the same: its name, cache version, interface and inputs."""
    digest = hashlib.sha256()
    digest.update(f"{task.id.name}\0{task.metadata.discovery_version}\0".encode())
    digest.update(serialize(task.interface))
    for name in sorted(inputs.literals):
        digest.update(name.encode() + b"\0")
        _fingerprint(inputs.literals[name], digest)
    return digest.hexdigest()


def cache_uri(settings: "Settings", key: str) -> str:
    """Content-addressed: ``{metadata}/task-cache/{key[:2]}/{key}/outputs.pb``."""
    return join(settings.metadata_url, CACHE_FOLDER, key[:2], key, "outputs.pb")


def clear(settings: "Settings") -> int:
    """Remove every memoized entry; returns how many there were."""
    from ferry.storage import filesystem, list_files, store_errors

    root = join(settings.metadata_url, CACHE_FOLDER)
    options = settings.options_for(settings.metadata_url)
    entries = list_files(root, options, "metadata")
    if entries:
        with store_errors("clear", root, "metadata"):
            fs, path = filesystem(root, options)
            fs.rm(path, recursive=True)
    return len(entries)
