"""Attempt folders: handed out empty, taken back, and never left behind by a process that died (nor pulled from
under a program task still running after its engine died)."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from ferry.faults import release, wait_for
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


SCRATCH = """
import os, sys
from ferry.config import active_settings
from ferry.executors.process import _Worker
from ferry.storage import publishing
from ferry.types import TransferContext

settings = active_settings()
downloaded = TransferContext(settings, settings.raw_output_prefix).local_path("input.bin")  # a File fetched outside tasks
downloaded.write_bytes(b"d" * 1000)
worker = _Worker(dict(os.environ))  # a process executor's worker, its stderr in a log file
with publishing("memory://bucket/out.bin") as staged:  # an upload being staged
    open(staged, "wb").write(b"u" * 1000)
    print(downloaded, worker.log_path, staged, flush=True)
    sys.stdin.readline()  # killed here
"""


def test_a_killed_process_leaves_no_downloads_worker_logs_or_staged_uploads(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc = subprocess.Popen([sys.executable, "-c", SCRATCH], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(tmp_path), "FERRY_HOME": str(home)})
    assert proc.stdout is not None
    paths = [Path(p) for p in proc.stdout.readline().split()]
    assert len(paths) == 3 and all(p.exists() for p in paths)
    own = {p.relative_to(tmp_path).parts[0] for p in paths}
    assert len(own) == 1 and next(iter(own)).startswith(PREFIX)  # all in the process's own folder
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert sweep(str(tmp_path)) == 1
    assert not any(p.exists() for p in paths)
    assert [p.name for p in tmp_path.iterdir() if p != home] == []  # nothing else was made in the temp folder


def test_a_file_fetched_outside_tasks_is_removed_with_the_folder_at_a_normal_exit(tmp_path: Path) -> None:
    code = """
from ferry.types.context import current_context
path = current_context().local_path("copy.txt")  # where a File fetched outside any task lands
path.write_text("hello")
print(path)
"""
    env = {**os.environ, "TMPDIR": str(tmp_path / "t"), "FERRY_HOME": str(tmp_path / "home")}
    (tmp_path / "t").mkdir()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).name == "copy.txt"
    assert list((tmp_path / "t").iterdir()) == []  # the copy, its folder and the process's folder: all gone


def test_a_forked_child_never_gets_its_parents_spare_folders() -> None:
    from ferry.workdirs import empty_folder, release_folder

    spare = empty_folder()
    release_folder(spare)  # kept for this process's next attempt
    pid = os.fork()
    if pid == 0:  # the child: a folder of its own, in a process folder of its own
        mine = empty_folder()
        os._exit(0 if mine != spare and mine.parent != spare.parent else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert sweep() >= 1  # the child's folder: it ended without removing it (os._exit)
    assert empty_folder() == spare  # the parent's spare is still the parent's
    release_folder(spare)


FORKS = """
import os, sys
from ferry.workdirs import empty_folder
mine = empty_folder()
ready_r, ready_w = os.pipe()
if os.fork() == 0:
    empty_folder()  # the child's own folder
    os.write(ready_w, b"x")
    sys.stdin.read()  # lives on after its parent is killed
    os._exit(0)
os.read(ready_r, 1)
print(mine, flush=True)
sys.stdin.read()
"""


def test_a_forked_child_does_not_keep_its_killed_parents_folder(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", FORKS], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(tmp_path)})
    assert proc.stdout is not None and proc.stdin is not None
    parents = Path(proc.stdout.readline().strip()).parent
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert sweep(str(tmp_path)) == 1 and not parents.exists()  # the live child held no lock of its parent's
    proc.stdin.close()  # the child ends
    proc.stdout.close()


ENGINE = """
import sys
from flyteidl.core import tasks_pb2
from ferry.executors.base import TaskRequest
from ferry.executors.command import ChildProcesses
template = tasks_pb2.TaskTemplate()  # a program task (no ferry flavor): it gets a folder of its own
template.container.args.extend(["sh", "-c", sys.argv[1]])
ChildProcesses().run(TaskRequest(template, "file:///nowhere/inputs.pb", "file:///nowhere/out", "file:///nowhere/raw"))
"""


def test_a_program_tasks_folder_stays_while_it_runs_after_its_engine_is_killed_and_goes_after(tmp_path: Path) -> None:
    tmp, barrier = tmp_path / "t", tmp_path / "barrier"
    tmp.mkdir()
    barrier.mkdir()
    script = (f'pwd > {barrier}/cwd; ls -A > {barrier}/seen; touch "$TMPDIR/scratch"; '
              f'touch {barrier}/program.started.$$; while [ ! -e {barrier}/program.started.go ]; do sleep 0.01; done')
    engine = subprocess.Popen([sys.executable, "-c", ENGINE, script], env={**os.environ, "TMPDIR": str(tmp)})
    try:
        wait_for(barrier, "program.started", 1, alive=[engine])
        work = Path((barrier / "cwd").read_text().strip())
        folder = work.parent.parent  # the killed engine's process folder; the program's is one of its attempts'
        assert folder.name.startswith(PREFIX) and work.name == "work"
        assert (barrier / "seen").read_text() == ""  # the program's working folder is empty when it starts
        assert (work.parent / "tmp" / "scratch").exists()  # its temporary folder is in there too
        engine.send_signal(signal.SIGKILL)
        engine.wait()
        sweep(str(tmp))
        assert folder.is_dir()  # the program still works in it: not swept
        lock = os.open(folder / OWNER, os.O_RDWR)
        try:
            waiter = threading.Thread(target=fcntl.flock, args=(lock, fcntl.LOCK_EX))
            waiter.start()  # granted once no one holds the folder's lock: the program inherited it
            release(barrier, "program.started")  # the program ends
            waiter.join(timeout=60)  # only turns a hang into a failure
            assert not waiter.is_alive(), "the program's end did not free its folder's lock"
        finally:
            os.close(lock)
        assert sweep(str(tmp)) == 1  # swept now that the program has ended (before: a ferry-task-* folder kept for good)
        assert not folder.exists()
        assert os.listdir(tmp) == []
    finally:
        release(barrier, "program.started")  # whatever failed, the program ends
        if engine.poll() is None:
            engine.kill()
        engine.wait()
