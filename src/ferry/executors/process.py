"""Run each task attempt in a separate OS process that is given only URIs, like a pod.

By default a pool of warm worker processes is reused, so that the per-task
cost is not Python's start-up; ``warm=False`` starts a fresh process per task.
A worker that dies mid-task is replaced; the engine sees a system error.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
from typing import IO, Any

from ferry.executors.base import TaskRequest, TaskResult


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
        fd, self.log_path = tempfile.mkstemp(prefix="ferry-worker-", suffix=".log")
        with os.fdopen(fd, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ferry.executors.worker"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env, text=True, bufsize=1,
            )
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self.stdin: IO[str] = self.proc.stdin
        self.stdout: IO[str] = self.proc.stdout
        self.ready = False

    def call(self, request: dict[str, Any]) -> dict[str, Any] | None:
        """Send one request; the reply, or None if the process died."""
        try:
            if not self.ready:
                if not self.stdout.readline():
                    return None
                self.ready = True
            self.stdin.write(json.dumps(request) + "\n")
            self.stdin.flush()
            line = self.stdout.readline()
        except (BrokenPipeError, OSError):
            return None
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
        if os.path.exists(self.log_path):
            os.unlink(self.log_path)


class ProcessExecutor:
    name = "process"

    def __init__(self, workers: int | None = None, warm: bool = True, env: dict[str, str | None] | None = None) -> None:
        self.max_workers = workers or os.cpu_count() or 2
        self.warm = warm
        self.env = apply_env(dict(os.environ), {**(env or {}), "FERRY_IN_TASK": "1"})
        self._idle: queue.LifoQueue[_Worker] = queue.LifoQueue()
        self._all: set[_Worker] = set()
        self._fresh: set[subprocess.Popen[str]] = set()
        self._lock = threading.Lock()
        self._slots = threading.Semaphore(self.max_workers)

    def run(self, request: TaskRequest) -> TaskResult:
        with self._slots:
            return self._run_warm(request) if self.warm else self._run_fresh(request)

    def _take_worker(self) -> _Worker:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            worker = _Worker(self.env)
            with self._lock:
                self._all.add(worker)
            return worker

    def _run_warm(self, request: TaskRequest) -> TaskResult:
        worker = self._take_worker()
        reply = worker.call({
            "task": request.task_ref, "inputs": request.inputs_uri, "output_prefix": request.output_prefix,
            "raw_output_prefix": request.raw_output_prefix, "scope": request.scope, "cache_uri": request.cache_uri,
        })
        if reply is None:  # the worker died mid-task: replace it, report a system failure
            code = worker.proc.wait()
            detail = _tail(worker.log_path)
            with self._lock:
                self._all.discard(worker)
            worker.kill()
            return TaskResult(code if code else -1, f"worker process {worker.proc.pid} exited with {code}: {detail}",
                              worker=f"pid {worker.proc.pid}")
        self._idle.put(worker)
        return TaskResult(int(reply["exit"]), worker=f"pid {worker.proc.pid}", cached=bool(reply.get("cached")))

    def _run_fresh(self, request: TaskRequest) -> TaskResult:
        args = [sys.executable, "-m", "ferry.runtime", "--task", request.task_ref, "--inputs", request.inputs_uri,
                "--output-prefix", request.output_prefix, "--raw-output-prefix", request.raw_output_prefix,
                "--scope", request.scope, "--cache-uri", request.cache_uri]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=self.env, text=True)
        with self._lock:
            self._fresh.add(proc)
        _, err = proc.communicate()
        with self._lock:
            self._fresh.discard(proc)
        cached = proc.returncode == 3
        return TaskResult(0 if cached else proc.returncode, err[-4000:], worker=f"pid {proc.pid}", cached=cached)

    def cancel_all(self) -> None:
        with self._lock:
            workers, fresh = list(self._all), list(self._fresh)
            self._all.clear()
        for worker in workers:
            worker.kill()
        for proc in fresh:
            proc.kill()

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
