"""``ferry.current_context()``: what a running task knows about itself (Flyte's ``current_context()``).

The runtime gives every attempt a transfer context; this is its public face: the
execution, node and attempt the task runs as, where its offloaded outputs go, and
the working folder it runs in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ferry.errors import FerryError


@dataclass(frozen=True)
class TaskContext:
    """The running attempt: ``execution_id`` as ``ferry executions show`` names it, ``node`` its path in the
    workflow (``n2``, ``n1/3`` for an element of a map task), ``attempt`` 1 for the first,
    ``raw_output_prefix`` the folder of the raw store its offloaded outputs go to, ``working_directory``
    the empty folder it runs in (its current directory, removed when the attempt ends)."""

    task: str
    execution_id: str
    node: str
    attempt: int
    raw_output_prefix: str
    working_directory: Path


def current_context() -> TaskContext:
    """The context of the task running on this thread; a clear error outside tasks."""
    from ferry.types.context import attempt_identity, running_context

    ctx = running_context()
    if ctx is None:
        raise FerryError(
            "ferry.current_context() is only known inside a running task. Call it in a @task's body "
            "(tasks called directly, my_task(a=1), run as tasks too)."
        )
    identity: tuple[str, str, int] | None = (ctx.execution_id, ctx.node, ctx.attempt)
    if not ctx.execution_id:  # a direct call names its attempt in the raw prefix only
        identity = attempt_identity(ctx.raw_prefix, ctx.settings.raw_output_prefix, skip=1)
    execution_id, node, attempt = identity or ("", "", 0)
    return TaskContext(ctx.task, execution_id, node, attempt + 1, ctx.raw_prefix, ctx.work_dir or Path.cwd())
