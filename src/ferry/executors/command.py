"""Run one attempt as a child process, killed at the task's timeout.

A ferry task runs as ``python -m ferry.runtime``; any other task runs its
container command with the attempt's URIs filled in (``TaskRequest.command``).
This is how every executor runs a task that must be stoppable (a timeout) or
that isn't Python: the same code on the engine's machine and on a Dask worker.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from typing import Any

from ferry.executors.base import TaskRequest, TaskResult
from ferry.workdirs import empty_folder, folder_lock

STDERR_TAIL = 4000  # characters of a failed process's stderr kept for the records


def command_for(request: TaskRequest) -> list[str]:
    reference = request.reference
    if reference is None:
        command = request.command()
        if command[:1] == ["python"] and request.task.metadata.runtime.flavor.startswith("ferry"):
            command[0] = sys.executable  # ferry's own runners run in this Python, which has ferry
        return command
    return [sys.executable, "-m", "ferry.runtime", "--task", reference, "--inputs", request.inputs_uri,
            "--output-prefix", request.output_prefix, "--raw-output-prefix", request.raw_output_prefix,
            "--cache-uri", request.cache_uri]


class ChildProcesses:
    """The attempts running as child processes of this executor, so that Ctrl-C can stop them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[bytes]] = set()

    def run(self, request: TaskRequest, env: dict[str, str] | None = None, worker: str = "") -> TaskResult:
        """Start the attempt's process, wait for it (up to the task's timeout), and say how it ended."""
        from ferry.runtime.execute import process_cwd

        # ferry's runners make their own working folder; any other program gets a fresh one (work/), removed
        # after, and its temporary folder beside it (tmp/), as a pod's /tmp goes with the pod (pyflyte-execute
        # makes two folders in the temporary folder each time and removes neither). The program inherits the
        # process folder's lock: if this process is killed, the folder stays while the program runs, and goes after.
        own = None if request.task.metadata.runtime.flavor.startswith("ferry") else empty_folder()
        keep: tuple[int, ...] = ()
        if own:
            (own / "work").mkdir()
            (own / "tmp").mkdir()
            env = {**(os.environ if env is None else env), "TMPDIR": str(own / "tmp")}
            cwd, keep = str(own / "work"), (folder_lock(),)
        else:
            cwd = process_cwd()
        try:
            proc = subprocess.Popen(command_for(request), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    env=env, start_new_session=True, cwd=cwd, pass_fds=keep)
        except OSError as exc:
            if own:
                shutil.rmtree(own, ignore_errors=True)
            return TaskResult(None, f"could not start {command_for(request)[0]!r}: {exc}", worker=worker)
        with self._lock:
            self._running.add(proc)
        timed_out = False
        try:
            try:
                _, err = proc.communicate(timeout=request.timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill(proc)
                _, err = proc.communicate()
        finally:
            with self._lock:
                self._running.discard(proc)
            if own:
                shutil.rmtree(own, ignore_errors=True)
        where = worker or f"pid {proc.pid}"
        text = err.decode(errors="replace")[-STDERR_TAIL:]
        if timed_out:
            return TaskResult(None, text, worker=where, exit_code=proc.returncode, timed_out=True)
        return TaskResult.from_exit(proc.returncode, detail=text, worker=where)

    def kill_all(self) -> None:
        with self._lock:
            running = list(self._running)
        for proc in running:
            _kill(proc)


def _kill(proc: subprocess.Popen[Any]) -> None:
    """Kill the attempt's whole process group (a task's own children too)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
