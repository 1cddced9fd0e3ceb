"""Run a task in this process, from Python values to Python values, through literals."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from ferry.config import active_settings
from ferry.errors import TaskFailedError
from ferry.runtime.execute import execute, outputs_to_result, values_to_literals
from ferry.types import TransferContext

if TYPE_CHECKING:
    from ferry.sdk.task import Task


def call_task(task: "Task", values: dict[str, Any]) -> Any:
    """What ``my_task(a=1)`` does: the same conversions a pod would make, without the metadata store."""
    settings = active_settings()
    ctx = TransferContext(settings, raw_prefix=settings.raw_output_prefix, scope=f"local-{uuid.uuid4().hex[:12]}/{task.fn.__name__}/0")
    given = {name: values[name] for name in task.interface.inputs if name in values}
    inputs = values_to_literals(task, {n: task.interface.inputs[n] for n in given}, given, ctx, "inputs")
    try:
        outputs = execute(task, inputs, ctx)
    except TaskFailedError as exc:
        if exc.kind == "user" and exc.__cause__ is not None:
            raise exc.__cause__ from None  # a direct call raises what the function raised
        raise
    finally:
        ctx.cleanup()
    return outputs_to_result(task, outputs, ctx)
