"""Run each task attempt in a separate OS process that is given only URIs, like a pod.

By default a pool of warm worker processes runs ferry tasks, so that the
per-task cost is not Python's start-up; ``warm=False`` starts a fresh process
per attempt, and a task that isn't a ferry task always gets one. A worker that
dies mid-task is replaced; one that outlives its task's timeout is killed. The
engine sees either as a system error. Resource requests are honoured: an
attempt waits until the CPUs (worker slots), memory and GPUs it asks for are free.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
from typing import IO, Any

from ferry.executors.base import ResourcePool, TaskRequest, TaskResult, is_program, machine_capacity
from ferry.executors.command import ChildProcesses
from ferry.workdirs import scratch_file


def apply_env(base: dict[str, str], changes: dict[str, str | None]) -> dict[str, str]:
    """``base`` with ``changes`` applied; a None value removes the variable."""
    for key, value in changes.items():
        if value is None:
            base.pop(key, None)
        else:
            base[key] = value
    return base


def _tail(path: str, limit: int = 4000) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - limit))
            return fh.read().decode(errors="replace")
    except OSError:
        return ""


class _Worker:
    def __init__(self, env: dict[str, str]) -> None:
        from ferry.runtime.execute import process_cwd

        fd, self.log_path = scratch_file("worker-", ".log")  # swept with this process's folder if it is killed
        with os.fdopen(fd, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ferry.executors.worker"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env, text=True, bufsize=1,
                cwd=process_cwd(),
            )
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self.stdin: IO[str] = self.proc.stdin
        self.stdout: IO[str] = self.proc.stdout
        self.ready = False
        self.expired = False  # killed because its task outlived its timeout

    def _expire(self) -> None:
        self.expired = True
        self.proc.kill()

    def call(self, request: dict[str, Any], timeout: float | None) -> dict[str, Any] | None:
        """Send one request; the reply, or None if the process died (or was killed at ``timeout``)."""
        timer = threading.Timer(timeout, self._expire) if timeout else None
        try:
            if not self.ready:
                if not self.stdout.readline():
                    return None
                self.ready = True
            self.stdin.write(json.dumps(request) + "\n")
            self.stdin.flush()
            if timer is not None:
                timer.start()
            line = self.stdout.readline()
        except (BrokenPipeError, OSError):
            return None
        finally:
            if timer is not None:
                timer.cancel()
        return json.loads(line) if line else None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for pipe in (self.stdin, self.stdout):
            try:
                pipe.close()
            except OSError:
                pass
        with contextlib.suppress(FileNotFoundError):  # Ctrl-C / abort and the attempt's own thread may both kill it
            os.unlink(self.log_path)


class ProcessExecutor:
    name = "process"

    def __init__(self, workers: int | None = None, warm: bool = True, env: dict[str, str | None] | None = None) -> None:
        self.max_workers = workers or os.cpu_count() or 2
        self.warm = warm
        self.env = apply_env(dict(os.environ), {**(env or {}), "FERRY_IN_TASK": "1"})
        self.pool = ResourcePool({**machine_capacity(), "CPU": float(self.max_workers)}, self.name)
        self.children = ChildProcesses()
        self._idle: queue.LifoQueue[_Worker] = queue.LifoQueue()
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()

    def run(self, request: TaskRequest) -> TaskResult:
        wanted = {"CPU": 1.0, **request.resources}
        self.pool.check(request.task.id.name, wanted)
        self.pool.acquire(wanted)
        request.started()
        try:
            if self.warm and (request.reference is not None or is_program(request.task)):
                return self._run_warm(request)
            return self.children.run(request, self.env)
        finally:
            self.pool.release(wanted)

    def _take_worker(self) -> _Worker:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            worker = _Worker(self.env)
            with self._lock:
                self._all.add(worker)
            return worker

    def _run_warm(self, request: TaskRequest) -> TaskResult:
        from ferry.layout import Status

        worker = self._take_worker()
        message = {"inputs": request.inputs_uri, "output_prefix": request.output_prefix,
                   "raw_output_prefix": request.raw_output_prefix, "cache_uri": request.cache_uri}
        if request.reference is not None:
            message["task"] = request.reference
        else:  # a ContainerTask: the worker runs the program its spec names
            message["program"] = base64.b64encode(request.task.SerializeToString()).decode()
        reply = worker.call(message, request.timeout)
        where = f"pid {worker.proc.pid}"
        if reply is None:  # the worker died mid-task, or was killed at the timeout: replace it
            code = worker.proc.wait()
            detail = _tail(worker.log_path)
            with self._lock:
                self._all.discard(worker)
            worker.kill()
            return TaskResult(None, f"worker process {worker.proc.pid} exited with {code}: {detail}", worker=where,
                              exit_code=code, timed_out=worker.expired)
        self._idle.put(worker)
        return TaskResult(Status(reply["status"]), worker=where)

    def cancel_all(self) -> None:
        with self._lock:
            workers = list(self._all)
            self._all.clear()
        for worker in workers:
            worker.kill()
        self.children.kill_all()

    def close(self) -> None:
        with self._lock:
            workers = list(self._all)
            self._all.clear()
        for worker in workers:
            try:
                worker.stdin.close()
                worker.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass
            worker.kill()
