"""Attempt folders: handed out empty, taken back, and never left behind by a process that died."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from ferry.workdirs import OWNER, PREFIX, sweep

CHILD = """
import sys
from ferry.workdirs import empty_folder, release_folder
used = empty_folder()
(used / "partial.bin").write_bytes(b"x" * 1000)  # an attempt at work
spare = empty_folder()
release_folder(spare)  # an attempt that ended, its folder kept for the next
print(used, flush=True)
if sys.stdin.readline().strip() == "release":
    (used / "partial.bin").unlink()
    release_folder(used)
"""


def _child(tmp: Path) -> tuple[subprocess.Popen[str], Path]:
    proc = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(tmp)})
    assert proc.stdout is not None
    used = Path(proc.stdout.readline().strip())  # the child is at work now
    return proc, used


def test_a_killed_processs_folders_are_removed_by_the_next_and_a_live_ones_are_not(tmp_path: Path) -> None:
    dead, dead_used = _child(tmp_path)
    live, live_used = _child(tmp_path)  # its first folder swept nothing: the other child is alive
    assert dead_used.parent.name.startswith(PREFIX) and (dead_used.parent / OWNER).exists()
    assert dead_used.parent != live_used.parent and dead_used.exists()
    dead.send_signal(signal.SIGKILL)
    dead.communicate()  # reaped, its pipes closed
    assert sweep(str(tmp_path)) == 1  # the killed one's folder, with what its attempt wrote
    assert not dead_used.parent.exists()
    assert live_used.exists() and (live_used / "partial.bin").exists()  # the live one's: untouched
    assert sweep(str(tmp_path)) == 0
    live.communicate("release\n")
    assert live.returncode == 0
    assert not live_used.parent.exists()  # at exit it removed its spares and its folder
    assert [p.name for p in tmp_path.iterdir()] == []


def test_at_exit_a_folder_an_attempt_still_uses_is_left_to_the_next_sweep(tmp_path: Path) -> None:
    proc, used = _child(tmp_path)
    proc.communicate("keep\n")  # exits while "an attempt" still has its folder
    assert used.exists()  # not pulled from under it
    assert sweep(str(tmp_path)) == 1 and not used.parent.exists()  # its process is gone: swept
