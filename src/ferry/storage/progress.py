"""Progress for long transfers: a rich bar on a terminal, after a few seconds, else nothing."""

from __future__ import annotations

import sys
import time
from typing import Any

from ferry.storage.registry import import_module

import_module("fsspec")  # the whole package first, one thread at a time (see registry)
from fsspec.callbacks import Callback, NoOpCallback  # noqa: E402

SHOW_AFTER_SECONDS = 2.0
MIN_BYTES = 64 * 1024 * 1024


class _DelayedRichCallback(Callback):
    """Counts bytes; shows a rich progress bar once a transfer has taken a while."""

    def __init__(self, description: str, size: int) -> None:
        super().__init__(size=size)
        self.description = description
        self.started = time.monotonic()
        self._progress: Any = None
        self._task: Any = None

    def call(self, *args: Any, **kwargs: Any) -> None:
        if self._progress is None:
            if time.monotonic() - self.started < SHOW_AFTER_SECONDS:
                return
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                TransferSpeedColumn(), TimeRemainingColumn(), transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.description, total=self.size)
        self._progress.update(self._task, completed=self.value, total=self.size)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def transfer_callback(description: str, size: int) -> Callback:
    """A callback for a transfer of ``size`` bytes; silent unless stderr is a terminal."""
    if size < MIN_BYTES or not sys.stderr.isatty():
        return NoOpCallback()
    return _DelayedRichCallback(description, size)
