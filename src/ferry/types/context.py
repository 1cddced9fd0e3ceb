"""Where a conversion reads and writes: the raw-output prefix, a local scratch folder, the settings.

The runtime sets one per task attempt; ``File`` and friends find it through a
context variable when they fetch their bytes lazily inside the task, and
``ferry.current_context()`` reads the attempt's identity from it.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from ferry.config import Settings, active_settings
from ferry.workdirs import empty_folder, release_folder

if TYPE_CHECKING:
    from flyteidl.core.literals_pb2 import Literal


@dataclass
class TransferContext:
    settings: Settings
    raw_prefix: str  # this attempt's own raw folder (``ferry.layout.raw_attempt_prefix``)
    work_dir: Path | None = None  # created on first download
    pins: list[Any] = field(default_factory=list)  # node-cache entries this task holds open
    datasets: set[str] = field(default_factory=set)  # persistent objects this task read
    task: str = ""  # the running task's name (set by the runtime)
    execution_id: str = ""  # the attempt's place in the metadata layout, when the runtime knows it
    node: str = ""
    attempt: int = 0  # as in the layout: 0 for the first
    # Where literals over the metadata limit are offloaded (with offloading on): this attempt's metadata folder,
    # which the engine reads (a map over an offloaded list fans out); empty: under the raw prefix.
    meta_prefix: str = ""
    _names: set[str] = field(default_factory=set)

    def new_raw_uri(self, name: str) -> str:
        """``{raw_prefix}/{name}``, with a number added when this attempt already used the name."""
        from ferry.storage import join

        stem, dot, ext = name.partition(".")
        unique, n = name, 1
        while unique in self._names:
            unique, n = f"{stem}-{n}{dot}{ext}", n + 1
        self._names.add(unique)
        return join(self.raw_prefix, unique)

    def local_path(self, name: str) -> Path:
        """A fresh local path in the scratch folder for a downloaded object."""
        if self.work_dir is None:
            self.work_dir = empty_folder()  # in this process's folder: swept even if the process is killed
        folder = self.work_dir / uuid.uuid4().hex[:12]
        folder.mkdir(parents=True, exist_ok=True)
        return folder / (name or "data")

    def offload(self, data: bytes, name: str) -> "Literal":
        """Store ``data``, a serialized Literal, as a file of its own; returns the Literal referring to it
        (``offloaded_metadata``, with the content's hash, so memoization sees the value, not the place)."""
        import hashlib

        from flyteidl.core import literals_pb2

        from ferry.storage import join, write_bytes

        if self.meta_prefix:
            uri = join(self.meta_prefix, "offloaded", f"{name}-{uuid.uuid4().hex[:8]}.pb")
            write_bytes(uri, data, self.settings.options_for(uri), "metadata")
        else:
            uri = self.new_raw_uri(f"{name}.literal.pb")
            write_bytes(uri, data, self.options(uri), "raw")
        ref = literals_pb2.Literal(hash=f"sha256:{hashlib.sha256(data).hexdigest()}")
        ref.offloaded_metadata.uri = uri
        ref.offloaded_metadata.size_bytes = len(data)
        return ref

    def options(self, uri: str) -> dict[str, Any]:
        """The store options for ``uri``; a bucket ferry doesn't know is reached as the raw store."""
        return self.settings.options_for(uri, fallback="raw")

    def hold(self, pin: Any, uri: str) -> None:
        """Keep a node-cache entry from eviction until this task is done (and remember it was read)."""
        self.pins.append(pin)
        self.datasets.add(uri)

    def cleanup(self) -> None:
        """Drop the scratch folder (downloaded inputs) and release cache pins once the task is done."""
        for pin in self.pins:
            pin.close()
        self.pins.clear()
        if self.work_dir is not None:
            release_folder(self.work_dir)
            self.work_dir = None


_current: contextvars.ContextVar[TransferContext | None] = contextvars.ContextVar("ferry_transfer_context", default=None)


_outside_tasks: TransferContext | None = None


def current_context() -> TransferContext:
    """The context of the running task, or, outside tasks, one built from the current settings."""
    global _outside_tasks
    ctx = _current.get()
    if ctx is not None:
        return ctx
    settings = active_settings()
    if _outside_tasks is None or _outside_tasks.settings is not settings:
        if _outside_tasks is None:
            atexit.register(_release_outside_tasks)
        else:
            _outside_tasks.cleanup()
        from ferry.layout import raw_attempt_prefix

        _outside_tasks = TransferContext(settings, raw_attempt_prefix(settings.raw_output_prefix, "local", "client", 0))
    return _outside_tasks


def _release_outside_tasks() -> None:
    if _outside_tasks is not None:
        _outside_tasks.cleanup()


def running_context() -> TransferContext | None:
    """The context of the task running on this thread, or None outside tasks."""
    return _current.get()


@contextlib.contextmanager
def using_context(ctx: TransferContext) -> Iterator[TransferContext]:
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


class Deferred(Exception):
    """A value can't become a literal without writing to a store; it is converted later, at launch."""


class _DeferringContext(TransferContext):
    """What a workflow body's constants are converted with at compile time: any store access defers them."""

    def __init__(self) -> None:
        super().__init__(settings=None, raw_prefix="")  # type: ignore[arg-type]

    def new_raw_uri(self, name: str) -> str:
        raise Deferred(name)

    def options(self, uri: str) -> dict[str, Any]:
        raise Deferred(uri)

    def local_path(self, name: str) -> Path:
        raise Deferred(name)


def deferring_context() -> TransferContext:
    return _DeferringContext()
