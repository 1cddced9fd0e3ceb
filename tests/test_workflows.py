"""Workflow compilation and the graph walk, called directly in Python."""

from __future__ import annotations

import typing
from typing import Any, NamedTuple

import pandas as pd
import pytest

from ferry import File, conditional, map_task, task, workflow
from ferry.errors import InterfaceError


@task
def inc(x: int) -> int:
    return x + 1


@task
def double(x: int) -> int:
    return 2 * x


@task
def add(a: int, b: int) -> int:
    return a + b


@task
def total(xs: list[int]) -> int:
    return sum(xs)


@task
def keyed(d: dict[str, int]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(d.items()))


class MinMax(NamedTuple):
    low: int
    high: int


@task
def bounds(xs: list[int]) -> MinMax:
    return MinMax(min(xs), max(xs))


@task
def describe(x: int) -> str:
    return f"x={x}"


def test_sequential_parallel_and_defaults() -> None:
    @workflow
    def wf(n: int = 3) -> int:
        a, b = inc(x=n), double(x=n)  # independent: may run in parallel
        return add(a=a, b=b)

    assert [n.id for n in wf.nodes] == ["n0", "n1", "n2"]
    assert wf.nodes[2].upstream == {"n0", "n1"}
    assert wf() == 10 and wf(n=0) == 1


def test_subworkflow_and_named_outputs() -> None:
    @workflow
    def inner(x: int) -> int:
        return double(x=inc(x=x))

    @workflow
    def outer(xs: list[int]) -> tuple[int, int]:
        mm = bounds(xs=xs)
        return inner(x=mm.high), mm.low

    assert outer(xs=[4, 1, 7]) == (16, 1)
    assert outer.nodes[1].kind == "workflow"


def test_composing_promises_into_list_and_dict_inputs() -> None:
    @workflow
    def wf(n: int) -> tuple[int, str]:
        a, b = inc(x=n), double(x=n)
        return total(xs=[a, b, 10]), keyed(d={"a": a, "b": b})

    assert wf(n=2) == (17, "a=3,b=4")
    binding = wf.nodes[2].bindings["xs"]
    assert len(binding.collection.bindings) == 3
    assert binding.collection.bindings[2].scalar.primitive.integer == 10


def test_conditional_evaluated_on_meta_values() -> None:
    @workflow
    def wf(x: int, label: str) -> str:
        return (
            conditional("size")
            .if_((x > 10) & (label == "big"))
            .then(describe(x=x))
            .elif_(x < 0)
            .then(describe(x=double(x=x)))
            .else_()
            .then(describe(x=inc(x=x)))
        )

    assert wf(x=20, label="big") == "x=20"
    assert wf(x=20, label="small") == "x=21"
    assert wf(x=-2, label="") == "x=-4"


def test_conditional_fail_branch() -> None:
    from ferry.engine.graph import NodeFailedError

    @workflow
    def wf(x: int) -> int:
        return conditional("positive").if_(x >= 0).then(inc(x=x)).else_().fail("x must be >= 0")

    assert wf(x=1) == 2
    with pytest.raises(NodeFailedError, match="x must be >= 0"):
        wf(x=-1)


def test_map_task_fans_out_and_feeds_a_reduce() -> None:
    @workflow
    def wf(xs: list[int]) -> int:
        return total(xs=map_task(double, concurrency=4)(x=xs))

    assert wf(xs=list(range(100))) == 2 * sum(range(100))
    assert wf(xs=[]) == 0


@task
def fragile(x: int) -> int:
    if x % 3 == 0:
        raise ValueError(f"no multiples of three: {x}")
    return x


def test_map_task_min_success_ratio() -> None:
    from ferry.engine.graph import NodeFailedError

    @workflow
    def tolerant(xs: list[int]) -> list[typing.Optional[int]]:
        return map_task(fragile, min_success_ratio=0.5)(x=xs)

    @workflow
    def strict(xs: list[int]) -> list[int]:
        return map_task(fragile)(x=xs)

    assert tolerant(xs=[1, 2, 3, 4]) == [1, 2, None, 4]
    with pytest.raises(NodeFailedError, match="1 of 4 elements failed"):
        strict(xs=[1, 2, 3, 4])


def test_map_task_bound_inputs() -> None:
    @workflow
    def wf(xs: list[int], b: int) -> list[int]:
        return map_task(add, bound_inputs=("b",))(a=xs, b=b)

    assert wf(xs=[1, 2], b=10) == [11, 12]


def test_edge_type_mismatch_fails_at_decoration() -> None:
    with pytest.raises(InterfaceError, match=r"n0\.o0 \(str\) is bound to .*inc\.x \(int\)"):
        @workflow
        def wf(x: int) -> int:
            return inc(x=describe(x=x))


def test_workflow_input_mismatch_fails_at_decoration() -> None:
    with pytest.raises(InterfaceError, match=r"input name \(str\) is bound to .*total\.xs \(list\[int\]\)"):
        @workflow
        def wf(name: str) -> int:
            return total(xs=name)


def test_branch_arms_must_agree() -> None:
    with pytest.raises(InterfaceError, match="every branch must return the same outputs"):
        @workflow
        def wf(x: int) -> int:
            return conditional("c").if_(x > 1).then(inc(x=x)).else_().then(describe(x=x))


def test_conditional_without_else_is_refused() -> None:
    with pytest.raises(InterfaceError, match="has no else_"):
        @workflow
        def wf(x: int) -> int:
            conditional("c").if_(x > 1).then(inc(x=x))
            return x


def test_python_if_on_a_promise_explains_itself() -> None:
    with pytest.raises(InterfaceError, match="ferry.conditional"):
        @workflow
        def wf(x: int) -> int:
            if x > 3:
                return inc(x=x)
            return x


@pytest.mark.parametrize("expression", [lambda x: x + 1, lambda x: 2 * x, lambda x: x[0], lambda x: -x])
def test_arithmetic_on_a_promise_explains_itself(expression: Any) -> None:
    with pytest.raises(InterfaceError, match="input x is a promise.*inside a task"):
        @workflow
        def wf(x: int) -> int:
            return inc(x=expression(x))


def test_files_and_frames_flow_between_tasks() -> None:
    @task
    def produce(n: int) -> tuple[File, pd.DataFrame]:
        with open("data.txt", "w") as fh:
            fh.write("x" * n)
        return File("data.txt"), pd.DataFrame({"v": range(n)})

    @task
    def consume(f: File, df: pd.DataFrame) -> int:
        with open(f) as fh:
            return len(fh.read()) + int(df["v"].sum())

    @workflow
    def wf(n: int) -> int:
        f, df = produce(n=n)
        return consume(f=f, df=df)

    assert wf(n=4) == 4 + 6


def test_retries_in_direct_calls(tmp_path: typing.Any) -> None:
    marker = tmp_path / "count"

    @task(retries=2)
    def flaky() -> int:
        n = int(marker.read_text()) if marker.exists() else 0
        marker.write_text(str(n + 1))
        if n < 2:
            raise RuntimeError("not yet")
        return n

    @workflow
    def wf() -> int:
        return flaky()

    assert wf() == 2 and marker.read_text() == "3"
