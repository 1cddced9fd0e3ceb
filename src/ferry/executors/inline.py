"""Run task attempts in the engine's own process: the quickest loop, with the same store writes.

Each attempt runs in its own working folder; since the working folder belongs to
the process, inline attempts take turns. A task with a timeout, or one that is
not a ferry task, runs as a child process instead, so that it can be stopped.
"""

from __future__ import annotations

import os
from typing import Any

from flyteidl.core import tasks_pb2

from ferry.executors.base import ResourcePool, TaskRequest, TaskResult, ferry_reference, machine_capacity, timeout_of
from ferry.executors.command import ChildProcesses


class InlineExecutor:
    name = "inline"

    def __init__(self) -> None:
        self.pool = ResourcePool(machine_capacity(), self.name)
        self.children = ChildProcesses()

    def run(self, request: TaskRequest) -> TaskResult:
        from ferry.layout import Outcome, Status
        from ferry.runtime.execute import run_task
        from ferry.runtime.load import load_task_or_report

        self.pool.check(request.task.id.name, request.resources)
        request.started()
        reference = request.reference
        if reference is None or request.timeout:
            return self.children.run(request)
        task = load_task_or_report(reference, request.output_prefix)
        if task is None:
            return TaskResult(Status.NOT_LOADED, worker=f"pid {os.getpid()}")
        report: dict[str, Any] = {}
        status = run_task(task, request.inputs_uri, request.output_prefix, request.raw_output_prefix,
                          cache_uri=request.cache_uri, inputs=request.inputs, report=report,
                          write_outputs=not request.keep_outcome)
        outcome = Outcome(outputs=report.get("outputs"), futures=report.get("futures"), error=report.get("error"))
        return TaskResult(status, worker=f"pid {os.getpid()}", outcome=outcome)

    def in_process(self, task: tasks_pb2.TaskTemplate) -> bool:
        """Whether ``run`` runs this task's attempts in this process (a ferry task without a timeout)."""
        return ferry_reference(task) is not None and not timeout_of(task)

    def cancel_all(self) -> None:
        self.children.kill_all()  # in-process attempts run on the engine's threads; Ctrl-C reaches them directly

    def close(self) -> None:
        pass
