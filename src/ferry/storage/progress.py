"""Progress of long transfers, reported to the process's live display (``ferry.progress``) once a large
transfer has taken a few seconds; nothing when no display is open (task processes, libraries, pipes)."""

from __future__ import annotations

import threading
import time

import ferry.progress as display

SHOW_AFTER_SECONDS = 2.0
MIN_BYTES = 64 * 1024 * 1024


class TransferProgress:
    """Called with the bytes just moved, from any thread; opens a bar only when it is worth it."""

    def __init__(self, description: str, size: int | None) -> None:
        self.description, self.size = description, size
        self.done = 0
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._bar: display.Transfer | None = None

    def __call__(self, moved: int) -> None:
        with self._lock:
            self.done += moved
            if self._bar is None:
                if self.done < MIN_BYTES or time.monotonic() - self.started < SHOW_AFTER_SECONDS:
                    return
                self._bar = display.transfer(self.description, self.size or 0)
                moved = self.done  # what moved before the bar was shown
            self._bar.advance(moved)

    def close(self) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.close()
                self._bar = None


def transfer_progress(description: str, size: int | None = None) -> TransferProgress | None:
    """A progress counter for one transfer (of ``size`` bytes, if known); None when nobody would see it."""
    if not display.active() or (size is not None and size < MIN_BYTES):
        return None
    return TransferProgress(description, size)
