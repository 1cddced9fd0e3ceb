"""What @task and @workflow compile to: flyteidl's own TaskTemplate and WorkflowTemplate, nothing uploaded."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Optional

import pandas as pd
import pytest
from flyteidl.core import tasks_pb2

import ferry
from ferry import File, conditional, map_task, task, workflow
from ferry.engine.spec import START, Closure, SpecError


@task(retries=2, cache=True, cache_version="7", timeout=dt.timedelta(minutes=5), cpu="500m", memory="1Gi")
def square(x: int) -> int:
    """Square it.

    :param x: the number
    """
    return x * x


@task
def total(xs: list[Optional[int]]) -> int:
    return sum(x or 0 for x in xs)


@task
def describe(x: int, label: str = "total") -> str:
    return f"{label} {x}"


@workflow
def inner(x: int) -> int:
    return square(x=x)


@workflow
def pipeline(xs: list[int], threshold: int = 10) -> str:
    squares = map_task(square, concurrency=4, min_success_ratio=0.5, bound_inputs=())(x=xs)
    t = total(xs=squares)
    big = inner(x=t)
    return (
        conditional("size")
        .if_(big > threshold).then(describe(x=big))
        .else_().fail("too small")
    )


def test_a_task_compiles_to_a_task_template_that_runs_the_ferry_runtime() -> None:
    t = square.template("v1")
    assert (t.id.name, t.id.version, t.type) == ("test_compiled.square", "v1", "python-task")
    assert t.metadata.retries.retries == 2 and t.metadata.discoverable and t.metadata.discovery_version == "7"
    assert t.metadata.timeout.ToTimedelta() == dt.timedelta(minutes=5)
    assert t.metadata.runtime.flavor == "ferry"
    args = list(t.container.args)
    assert args[:4] == ["python", "-m", "ferry.runtime", "--task"]
    assert args[4].split("#")[0].endswith("test_compiled.py:square")
    assert args[5:] == ["--inputs", "{{.input}}", "--output-prefix", "{{.outputPrefix}}",
                        "--raw-output-prefix", "{{.rawOutputDataPrefix}}"]
    requests = {tasks_pb2.Resources.ResourceName.Name(r.name): r.value for r in t.container.resources.requests}
    assert requests == {"CPU": "0.5", "MEMORY": str(1 << 30)}
    assert t.interface.inputs.variables["x"].description == "the number"


def test_a_workflow_compiles_to_flyteidl_nodes() -> None:
    closure = pipeline.closure(None, "v1")
    template = closure.primary.template
    kinds = {n.id: n.WhichOneof("target") for n in template.nodes}
    assert kinds == {"n0": "array_node", "n1": "task_node", "n2": "workflow_node", "n4": "branch_node"}
    array = template.nodes[0].array_node
    assert array.parallelism == 4 and array.min_success_ratio == 0.5
    assert array.node.task_node.reference_id.name == "test_compiled.square"
    assert template.nodes[0].inputs[0].binding.promise.node_id == START
    branch = template.nodes[3].branch_node.if_else
    assert branch.case.then_node.task_node.reference_id.name == "test_compiled.describe"
    assert branch.error.message == "too small"
    assert template.nodes[2].workflow_node.sub_workflow_ref.name == "test_compiled.inner"
    assert [s.template.id.name for s in closure.sub_workflows] == ["test_compiled.inner"]
    assert {t.template.id.name for t in closure.tasks} == {"test_compiled.square", "test_compiled.total",
                                                           "test_compiled.describe"}
    Closure(closure)  # every reference resolves
    assert pipeline(xs=[1, 2, 3]) == "total 196"


def test_the_closure_checks_refuse_a_broken_spec() -> None:
    closure = pipeline.closure(None, "v1")
    del closure.tasks[:]
    with pytest.raises(SpecError, match="task test_compiled.square@v1 is not in the closure"):
        Closure(closure)
    cyclic = pipeline.closure(None, "v1")
    cyclic.primary.template.nodes[0].upstream_node_ids.append("n1")
    with pytest.raises(SpecError, match=r"\['n0', 'n1'.*in a cycle"):
        Closure(cyclic)


def test_compiling_uploads_nothing_and_launching_uploads_the_constants(tmp_path: Path, ferry_home: Path) -> None:
    local = tmp_path / "reference.txt"
    local.write_text("a\nb\nc\n")
    frame = pd.DataFrame({"v": [1, 2, 3]})

    @task
    def count(f: File, df: pd.DataFrame) -> int:
        with open(f) as fh:
            return len(fh.readlines()) + int(df["v"].sum())

    @workflow
    def uses_constants(f: File = File(str(local))) -> int:  # noqa: B008 - a File default, on purpose
        return count(f=f, df=frame)

    assert not (ferry_home / "raw").exists()  # decorating converted nothing that needs the raw store
    assert uses_constants.has_constants
    assert uses_constants() == 9
    execution = ferry.run(uses_constants)
    assert execution.status == "succeeded", execution.error
    assert execution.outputs == 9
    uploaded = sorted(p.name for p in (ferry_home / "raw").rglob("*") if p.is_file())
    assert "reference.txt" in uploaded and any(name.endswith(".parquet") for name in uploaded)
