"""Progress for long transfers: a rich bar on a terminal once a large transfer has taken a few seconds, else nothing."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

SHOW_AFTER_SECONDS = 2.0
MIN_BYTES = 64 * 1024 * 1024


class TransferProgress:
    """Called with the bytes just moved, from any thread; draws the bar only when it is worth it."""

    def __init__(self, description: str, size: int | None) -> None:
        self.description, self.size = description, size
        self.done = 0
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._progress: Any = None
        self._task: Any = None

    def __call__(self, moved: int) -> None:
        with self._lock:
            self.done += moved
            if self._progress is None:
                if self.done < MIN_BYTES or time.monotonic() - self.started < SHOW_AFTER_SECONDS:
                    return
                self._start()
            self._progress.update(self._task, completed=self.done)

    def _start(self) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                  TransferSpeedColumn(), TimeRemainingColumn(), transient=True)
        self._progress.start()
        self._task = self._progress.add_task(self.description, total=self.size)

    def close(self) -> None:
        with self._lock:
            if self._progress is not None:
                self._progress.stop()
                self._progress = None


def transfer_progress(description: str, size: int | None = None) -> TransferProgress | None:
    """A progress counter for one transfer (of ``size`` bytes, if known); None unless stderr is a terminal."""
    if not sys.stderr.isatty() or (size is not None and size < MIN_BYTES):
        return None
    return TransferProgress(description, size)
