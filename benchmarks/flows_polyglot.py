"""Workflows of the polyglot benchmarks: a program as a task, a dynamic fan-out (kept apart from flows.py so that
the launch benchmark can run flows.py with the sources of a commit that had neither)."""

from __future__ import annotations

from ferry import ContainerTask, dynamic, map_task, workflow
from flows import inc

inc_program = ContainerTask("flows_polyglot.inc_program", command=["sh", "-c", "echo $(( {{.inputs.x}} + 1 )) > {{.outputDir}}/o0"],
                            inputs={"x": int}, outputs={"o0": int})


@workflow
def map_program(xs: list[int]) -> list[int]:
    return map_task(inc_program)(x=xs)


@dynamic
def fan(n: int) -> list[int]:
    return [inc(x=i) for i in range(n)]


@workflow
def dynamic_fan(n: int) -> list[int]:
    return fan(n=n)
