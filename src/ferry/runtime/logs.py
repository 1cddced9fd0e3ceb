"""An attempt's stdout and stderr, captured while it runs and kept next to its outputs (``logs.txt``).

Two ways to capture, one per kind of process:

- ``fd``: the attempt has the process to itself (a warm worker, a fresh process): file
  descriptors 1 and 2 go to a file, so C libraries and child processes are captured too.
- ``thread``: the attempt shares its process (inline executor, a Dask worker): ``sys.stdout`` and
  ``sys.stderr`` are routed per thread, so each attempt gets what its own thread prints.

Only the last ``LOG_LIMIT`` bytes are kept, with a line saying how much was cut.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import threading
from typing import Any, Iterator, TextIO

LOG_LIMIT = 1 << 20  # bytes of an attempt's output kept (the tail)


class _Router(io.TextIOBase):
    """Stands in for sys.stdout / sys.stderr: a thread capturing an attempt writes to its buffer, others pass."""

    def __init__(self, original: TextIO) -> None:
        self.original = original
        self.local = threading.local()

    def write(self, text: str) -> int:
        target = getattr(self.local, "buffer", None)
        return (target or self.original).write(text)

    def flush(self) -> None:
        target = getattr(self.local, "buffer", None)
        (target or self.original).flush()

    def isatty(self) -> bool:
        return getattr(self.local, "buffer", None) is None and self.original.isatty()

    def fileno(self) -> int:
        return self.original.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.original, "encoding", "utf-8")


_routers: dict[str, _Router] = {}
_install_lock = threading.Lock()


def _routed() -> tuple[_Router, _Router]:
    with _install_lock:
        for name in ("stdout", "stderr"):
            if not isinstance(getattr(sys, name), _Router):
                _routers[name] = _Router(getattr(sys, name))
                setattr(sys, name, _routers[name])
        return _routers["stdout"], _routers["stderr"]


class Captured:
    """What an attempt printed, once it is done."""

    def __init__(self) -> None:
        self.text = ""

    def tail(self) -> bytes:
        data = self.text.encode(errors="replace")
        if len(data) <= LOG_LIMIT:
            return data
        cut = len(data) - LOG_LIMIT
        return f"[... {cut:,} earlier bytes not kept ...]\n".encode() + data[cut:]


@contextlib.contextmanager
def capture(mode: str) -> Iterator[Captured]:
    """Capture what the attempt prints, by file descriptor (``fd``) or by thread (``thread``)."""
    captured = Captured()
    if mode == "fd":
        with _fd_capture(captured):
            yield captured
        return
    out, err = _routed()
    buffer = io.StringIO()
    out.local.buffer = err.local.buffer = buffer
    try:
        yield captured
    finally:
        out.local.buffer = err.local.buffer = None
        captured.text = buffer.getvalue()


@contextlib.contextmanager
def _fd_capture(captured: Captured) -> Iterator[None]:
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    with tempfile.TemporaryFile() as log:
        for fd in (1, 2):
            os.dup2(log.fileno(), fd)
        try:
            yield
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            size = log.seek(0, os.SEEK_END)
            log.seek(max(0, size - LOG_LIMIT))
            text = log.read().decode(errors="replace")
            captured.text = (f"[... {size - LOG_LIMIT:,} earlier bytes not kept ...]\n" if size > LOG_LIMIT else "") + text


def write_logs(output_prefix: str, captured: Captured, options: dict[str, Any]) -> None:
    """Keep what the attempt printed next to its outputs (nothing is written when it printed nothing)."""
    from ferry.layout import LOGS
    from ferry.storage import join, write_bytes

    data = captured.tail()
    if data:
        write_bytes(join(output_prefix, LOGS), data, options, "metadata")
