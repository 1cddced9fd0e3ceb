"""Run task attempts in the engine's own process: the quickest loop, with the same store writes."""

from __future__ import annotations

import os

from ferry.executors.base import TaskRequest, TaskResult
from ferry.runtime.execute import run_task


class InlineExecutor:
    name = "inline"

    def run(self, request: TaskRequest) -> TaskResult:
        status = run_task(request.task, request.inputs_uri, request.output_prefix, request.raw_output_prefix,
                          scope=request.scope, cache_uri=request.cache_uri)
        return TaskResult(1 if status == "failed" else 0, worker=f"pid {os.getpid()}", cached=status == "cached")

    def cancel_all(self) -> None:
        pass  # attempts run on the engine's threads; Ctrl-C reaches them directly

    def close(self) -> None:
        pass
