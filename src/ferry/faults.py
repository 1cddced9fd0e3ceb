"""Named fault points, so tests can kill or hold a process at an exact step instead of racing a timer.

Production code calls ``kill_point("cache.fill.staged")`` at steps worth testing. A test
starts a subprocess with:

- ``FERRY_TEST_KILL_AT=NAME`` (or ``NAME@N``): the process kills itself with SIGKILL the
  first (or N-th) time it reaches point NAME: no cleanup, no ``finally``, no atexit, exactly
  as ``kill -9`` from outside would leave things.
- ``FERRY_TEST_BARRIER_DIR=DIR`` with ``FERRY_TEST_PAUSE_AT=NAME[,NAME...]``: on reaching a
  listed point the process creates ``DIR/NAME.PID`` and waits until ``DIR/NAME.go`` exists.
- ``FERRY_TEST_MARK_AT=NAME[,NAME...]`` (with the barrier dir): only creates ``DIR/NAME.PID``,
  to tell the test a process got that far (e.g. it is about to wait for a lock).

The variables are read when this module is first imported (so an unarmed call costs one
global lookup); :func:`fault_environment` builds them for a subprocess, and :func:`rearm`
reads them again in a process that changed its own environment.

The test side waits with :func:`wait_for` (how many processes reached a point) and lets
paused ones go with :func:`release`.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

_VARIABLES = ("FERRY_TEST_KILL_AT", "FERRY_TEST_PAUSE_AT", "FERRY_TEST_MARK_AT")
_reached: dict[str, int] = {}
_armed = any(name in os.environ for name in _VARIABLES)  # read once: a process is armed from its start


def kill_point(name: str) -> None:
    """A named step: kills, pauses or marks this process when a test asked for it; else nothing."""
    if _armed:
        _act(name, os.environ)


def rearm() -> None:
    """Read the ``FERRY_TEST_*`` variables again (after a test changed ``os.environ`` in-process)."""
    global _armed
    _armed = any(name in os.environ for name in _VARIABLES)
    _reached.clear()


def _act(name: str, environ: "os._Environ[str]") -> None:
    kill = environ.get("FERRY_TEST_KILL_AT", "")
    if kill:
        point, _, nth = kill.partition("@")
        if point == name:
            _reached[name] = _reached.get(name, 0) + 1
            if _reached[name] == int(nth or 1):
                os.kill(os.getpid(), signal.SIGKILL)
    pause = name in environ.get("FERRY_TEST_PAUSE_AT", "").split(",")
    if pause or name in environ.get("FERRY_TEST_MARK_AT", "").split(","):
        folder = Path(environ["FERRY_TEST_BARRIER_DIR"])
        (folder / f"{name}.{os.getpid()}").touch()
        while pause and not (folder / f"{name}.go").exists():
            time.sleep(0.002)


def fault_environment(barrier: str | os.PathLike[str] | None = None, *, kill_at: str = "",
                     pause_at: tuple[str, ...] = (), mark_at: tuple[str, ...] = ()) -> dict[str, str]:
    """The variables that arm the points, to merge into a subprocess's environment."""
    env = {"FERRY_TEST_BARRIER_DIR": os.fspath(barrier)} if barrier is not None else {}
    if kill_at:
        env["FERRY_TEST_KILL_AT"] = kill_at
    if pause_at:
        env["FERRY_TEST_PAUSE_AT"] = ",".join(pause_at)
    if mark_at:
        env["FERRY_TEST_MARK_AT"] = ",".join(mark_at)
    return env


def reached(barrier: str | os.PathLike[str], name: str) -> list[int]:
    """Pids of the processes that reached point ``name`` so far."""
    tails = (p.name[len(name) + 1:] for p in Path(barrier).glob(f"{name}.*"))
    return sorted(int(tail) for tail in tails if tail.isdigit())


def wait_for(barrier: str | os.PathLike[str], name: str, count: int = 1, *, timeout: float = 120.0,
             alive: "list[object] | None" = None) -> list[int]:
    """Block until ``count`` processes reached point ``name``; returns their pids.

    ``timeout`` only turns a hang into a failure; nothing depends on it. With ``alive`` (a list
    of ``subprocess.Popen``), fails at once when one of them has exited unexpectedly.
    """
    deadline = time.monotonic() + timeout
    while len(found := reached(barrier, name)) < count:
        for proc in alive or ():
            code = proc.poll()  # type: ignore[attr-defined]
            if code is not None:
                raise AssertionError(f"a process exited with {code} before {count} reached {name!r}")
        if time.monotonic() > deadline:
            raise AssertionError(f"only {len(found)} of {count} processes reached {name!r}")
        time.sleep(0.005)
    return found

def release(barrier: str | os.PathLike[str], name: str) -> None:
    """Let every process paused at ``name`` (now or later) go on."""
    (Path(barrier) / f"{name}.go").touch()
