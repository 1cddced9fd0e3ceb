"""``wf(...)`` in Python: the same graph walk, with literals kept in memory and tasks run in-process.

No metadata store and no records, so a workflow called directly costs little
more than its tasks; offloaded values still go to the raw store.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

from ferry.config import Settings, active_settings
from ferry.engine.cache import cache_key, cache_uri
from ferry.engine.graph import GraphRunner, NodeFailedError
from ferry.errors import TaskFailedError
from ferry.literals import LiteralMap
from ferry.runtime import memo
from ferry.runtime.execute import execute, outputs_to_result, values_to_literals
from ferry.types import TransferContext

if TYPE_CHECKING:
    from ferry.sdk.task import Task
    from ferry.sdk.workflow import Workflow


class InMemoryRunner:
    """Runs each task with ``runtime.execute``; retries user errors as ``@task(retries=N)`` says."""

    def __init__(self, settings: Settings, execution_id: str) -> None:
        self.settings = settings
        self.execution_id = execution_id

    def run_task(self, path: str, task: "Task", inputs: LiteralMap) -> LiteralMap:
        memo_uri = cache_uri(self.settings, cache_key(task, inputs)) if task.cache else ""
        if memo_uri and (hit := memo.lookup(memo_uri, self.settings)) is not None:
            return hit
        attempt = 0
        while True:
            ctx = TransferContext(self.settings, self.settings.raw_output_prefix, f"{self.execution_id}/{path}/{attempt}")
            try:
                outputs = execute(task, inputs, ctx)
                if memo_uri:
                    memo.store(memo_uri, outputs, self.settings)
                return outputs
            except TaskFailedError as exc:
                if attempt >= task.retries:
                    raise NodeFailedError(path, str(exc), exc.kind) from exc
            finally:
                ctx.cleanup()
            attempt += 1
            time.sleep(min(0.05 * 2**attempt, 1.0))

    def event(self, path: str, kind: str, label: str, status: str, detail: str = "") -> None:
        pass

    def abort(self) -> None:
        pass


def run_in_memory(wf: "Workflow", values: dict[str, Any]) -> Any:
    settings = active_settings()
    execution_id = f"local-{uuid.uuid4().hex[:12]}"
    ctx = TransferContext(settings, settings.raw_output_prefix, f"{execution_id}/inputs")
    inputs = values_to_literals(wf, {n: wf.interface.inputs[n] for n in values}, values, ctx, "inputs")  # type: ignore[arg-type]
    try:
        outputs = GraphRunner(InMemoryRunner(settings, execution_id)).run(wf, inputs)
    except NodeFailedError as exc:
        cause = exc.__cause__
        if isinstance(cause, TaskFailedError) and cause.kind == "user" and cause.__cause__ is not None:
            raise cause.__cause__ from None  # like a direct task call: the function's own exception
        raise
    return outputs_to_result(wf, outputs, ctx)
