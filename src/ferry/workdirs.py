"""The folders task attempts work in (and the process's other scratch files): handed out and taken back,
never left behind for long.

A process's attempt folders live in one folder of its own in the system's temporary folder,
``ferry-tasks-*``, holding a lock file the process keeps locked while it lives (``flock``: the
kernel drops the lock when the process ends, however it ends). An empty folder an attempt gave back
is kept for the next attempt (no mkdir / rmdir per attempt); at exit the process removes its spares
and, if nothing else is left, its folder. A process killed with ``kill -9`` can't, so the first
attempt of every later process removes the folders whose lock nobody holds. A program task, which may
outlive the process, inherits the lock (``folder_lock``).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import shutil
import tempfile
import threading
from pathlib import Path

PREFIX = "ferry-tasks-"
OWNER = ".owner"  # the lock file: locked while the owning process lives

_lock = threading.Lock()
_spare: list[Path] = []  # empty folders of finished attempts, handed to the next
_home: tuple[int, Path, int] | None = None  # (pid, this process's folder, the open lock file)


def empty_folder() -> Path:
    """An empty folder of this process's own, for one attempt to work in."""
    with _lock:
        home = _process_folder()  # first: in a forked child, the parent's spares are the parent's
        if _spare:
            return _spare.pop()
    return Path(tempfile.mkdtemp(prefix="a-", dir=home))


def scratch_file(prefix: str, suffix: str = "") -> tuple[int, str]:
    """A new file of this process's own, open: (fd, path). Kept in the process's folder, so that a process killed
    before it removes the file (a worker's log, a staged upload) leaves nothing behind for long either."""
    with _lock:
        home = _process_folder()
    return tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=home)


def release_folder(folder: Path) -> None:
    """Give an attempt's folder back: kept for the next attempt if the task left it empty, else removed."""
    try:
        with os.scandir(folder) as entries:
            empty = next(entries, None) is None
    except OSError:
        return
    if empty:
        with _lock:
            _spare.append(folder)
    else:
        shutil.rmtree(folder, ignore_errors=True)


def sweep(root: str | None = None) -> int:
    """Remove the attempt folders of processes that ended without doing so; returns how many."""
    removed = 0
    base = root or tempfile.gettempdir()
    try:
        candidates = [e.path for e in os.scandir(base) if e.name.startswith(PREFIX) and e.is_dir(follow_symlinks=False)]
    except OSError:
        return 0
    for path in candidates:
        try:
            fd = os.open(os.path.join(path, OWNER), os.O_RDWR)
        except OSError:
            continue  # not one of ours, or already gone
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # its process lives
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
        finally:
            os.close(fd)
    return removed


def _process_folder() -> Path:
    """This process's folder (made, and the dead processes' swept, on first use; again in a forked child)."""
    global _home
    if _home is not None and _home[0] == os.getpid():
        return _home[1]
    if _home is not None:  # a forked child: the parent's folder, spares and lock are the parent's
        _spare.clear()
        os.close(_home[2])  # the lock stays the parent's; held here too, it would outlive the parent
    sweep()
    # made under a name the sweep ignores, locked, then renamed: no sweep ever sees it unlocked
    staging = Path(tempfile.mkdtemp(prefix="." + PREFIX))
    fd = os.open(staging / OWNER, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    home = staging.with_name(PREFIX + staging.name[len("." + PREFIX):])
    os.rename(staging, home)
    _home = (os.getpid(), home, fd)
    return home


def folder_lock() -> int:
    """The fd of this process's folder's lock, for a child that may outlive this process (a program task runs in
    a session of its own) to inherit (``pass_fds``): the lock is then held while either lives, so a killed
    engine's folder is not swept from under a program still working in it, and goes once the program has ended."""
    with _lock:
        _process_folder()
        assert _home is not None
        return _home[2]


def _at_exit() -> None:
    with _lock:
        if _home is None or _home[0] != os.getpid():
            return
        for folder in _spare:
            shutil.rmtree(folder, ignore_errors=True)
        _spare.clear()
        home = _home[1]
        with contextlib.suppress(OSError):
            if [entry.name for entry in os.scandir(home)] == [OWNER]:  # no attempt still at work in it
                shutil.rmtree(home)


# Registered on import, before any module that hands its files back at exit (the File downloads made outside
# tasks, types.context): exit handlers run last-registered first, so theirs run before this looks at the folder.
atexit.register(_at_exit)
