"""``@dynamic``: a task that builds, at run time and from its inputs' values, the workflow to run.

The body runs in the task runtime with real values; the tasks it calls become
nodes, as in a ``@workflow`` body (so loops over runtime values are possible).
The result is a flyteidl ``DynamicJobSpec`` (written as ``futures.pb``): the
engine runs it as a subgraph of the dynamic node, each node visible, and
resumable, on its own.
"""

from __future__ import annotations

from typing import Any, Callable, ParamSpec, TypeVar, overload

from flyteidl.core import dynamic_job_pb2

from ferry.sdk.constants import Convert, render
from ferry.sdk.task import Task, task_template
from ferry.sdk.workflow import compile_body, used_by

P = ParamSpec("P")
R = TypeVar("R")


class DynamicTask(Task[P, R]):
    """A task whose body is compiled when it runs, into the nodes the engine then runs."""

    def expand(self, values: dict[str, Any], convert: Convert) -> dynamic_job_pb2.DynamicJobSpec:
        """Run the body with ``values``: the workflow it builds, with every task and subworkflow it uses."""
        from ferry.executors.base import ferry_reference
        from ferry.runtime.load import remember

        nodes, outputs, _ = compile_body(f"Dynamic task {self.name}", self.fn, values, self.interface)
        tasks, subs = used_by(nodes)
        templates = [task_template(task, "", convert) for task in tasks]  # a task by value is uploaded
        for task, template in zip(tasks, templates, strict=True):  # a run in this process finds them as they are
            reference = ferry_reference(template)
            if reference is not None:
                remember(task, reference)
        spec = dynamic_job_pb2.DynamicJobSpec(
            nodes=[node.to_proto("", convert) for node in nodes],
            tasks=templates,
            subworkflows=[sub.template("", convert) for sub in subs],
            min_successes=len(nodes),
        )
        for name, bound in outputs.items():
            spec.outputs.add(var=name).binding.CopyFrom(render(bound, convert))
        return spec


@overload
def dynamic(fn: Callable[P, R], /) -> DynamicTask[P, R]: ...
@overload
def dynamic(*, retries: int = 0, cache: bool = False, cache_version: str = "", name: str | None = None,
            timeout: float | None = None) -> Callable[[Callable[P, R]], DynamicTask[P, R]]: ...


def dynamic(fn: Any = None, **options: Any) -> Any:
    """Declare a dynamic task: ``@dynamic`` or ``@dynamic(retries=1)``. Its body calls tasks with values."""
    if fn is None:
        return lambda f: DynamicTask(f, **options)
    return DynamicTask(fn, **options)
