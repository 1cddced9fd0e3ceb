"""Where progress goes: the process's one live display, when a command has opened one.

A terminal has room for one live display. The CLI opens it (``ferry.cli.progress.Display``) and
registers it here while it runs; code below the CLI (store transfers, dataset uploads) reports to
``transfer(...)``, which draws into that display, or does nothing when none is open (in task
processes, in libraries, when stderr is not a terminal). Nothing here imports anything heavy.
"""

from __future__ import annotations

import threading
from typing import Protocol


class Transfer(Protocol):
    """One transfer's progress: bytes done so far, then closed."""

    def advance(self, nbytes: int) -> None: ...

    def set_total(self, nbytes: int) -> None: ...

    def close(self) -> None: ...


class Sink(Protocol):
    """A live display that shows transfers (``ferry.cli.progress.Display``)."""

    def transfer(self, description: str, total: int) -> Transfer: ...


class Nothing:
    """A transfer nobody watches."""

    def advance(self, nbytes: int) -> None:
        pass

    def set_total(self, nbytes: int) -> None:
        pass

    def close(self) -> None:
        pass


_sink: Sink | None = None
_lock = threading.Lock()


def set_sink(sink: Sink | None) -> Sink | None:
    """Make ``sink`` the display transfers report to (None: none); returns the one it replaces."""
    global _sink
    with _lock:
        previous, _sink = _sink, sink
    return previous


def active() -> bool:
    """Whether a display is open (a transfer's bar would be seen)."""
    return _sink is not None


def transfer(description: str, total: int) -> Transfer:
    """Report a transfer of ``total`` bytes (0: not known yet) to the open display, if any."""
    sink = _sink
    return sink.transfer(description, total) if sink is not None else Nothing()
