"""Porting from Flyte: the ported example runs, and what a flytekit user reaches for works the same way.

Kubernetes-style resource units, ``ferry.current_context()`` (execution id, node, attempt, raw-output
prefix, working folder), and attribute access on NamedTuple promises from tasks, map tasks and branches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import pytest
from click.testing import CliRunner

import ferry
from ferry import conditional, map_task, task, workflow
from ferry.cli.main import cli
from ferry.config import active_settings
from ferry.engine.records import Records
from ferry.errors import FerryError, InterfaceError
from ferry.executors.base import resources_of
from ferry.runtime.load import load_module

ROOT = Path(__file__).parent.parent
EXAMPLE = ROOT / "examples" / "from_flyte.py"


def test_the_ported_flytekit_example_runs_from_the_command_line() -> None:
    ran = CliRunner().invoke(cli, ["run", str(EXAMPLE), "sensor_report", "--days", "3", "--threshold", "0.5"])
    assert ran.exit_code == 0, ran.output
    assert "o0 = 'drift of 0.60: check the sensors (day 2 reads highest)'" in ran.output
    assert "o2 = [0, 2, 24]" in ran.output


def test_the_ported_flytekit_example_runs_in_task_processes_and_is_cached() -> None:
    example = load_module(str(EXAMPLE))
    first = ferry.run(example.sensor_report, {"days": 4, "threshold": 2.0}, executor="process")
    assert first.status == "succeeded", first.error
    verdict, table, counts = first.outputs
    assert verdict == "drift of 0.91: all clear"
    assert list(table["n_readings"]) == [20, 25, 30, 35] and list(table["day"]) == [0, 1, 2, 3]
    assert counts == [0, 2, 24, 35]
    again = ferry.run(example.sensor_report, {"days": 4, "threshold": 2.0}, executor="process")
    statuses = {n.label: n.status for n in Records(active_settings().database_url).nodes(again.id)}
    assert statuses["from_flyte.simulate"] == "cached"  # @task(cache=True, cache_version="1")


def test_the_launch_plan_of_the_ported_example_registers_and_launches() -> None:
    runner = CliRunner()
    registered = runner.invoke(cli, ["register", str(EXAMPLE)])
    assert registered.exit_code == 0, registered.output
    assert "sensor_report.weekly" in registered.output
    execution = ferry.launch("sensor_report.weekly", {"threshold": 5.0})
    assert execution.status == "succeeded", execution.error
    assert len(execution.outputs["o2"]) == 7  # the launch plan's default: days=7


@pytest.mark.parametrize(("cpu", "memory", "want_cpu", "want_memory"), [
    ("500m", "500Mi", 0.5, 500 * 2**20),
    ("2", "1Gi", 2.0, 2**30),
    (0.25, "1.5Gi", 0.25, 1.5 * 2**30),
    ("1", "4GiB", 1.0, 4 * 2**30),
    ("1", 1048576, 1.0, 2**20),
], ids=["millicores-Mi", "Gi", "float-cpu", "GiB", "bytes"])
def test_kubernetes_resource_units_are_accepted(cpu: float | str, memory: str | int, want_cpu: float,
                                                want_memory: float) -> None:
    @task(cpu=cpu, memory=memory)
    def heavy() -> None:
        return None

    assert resources_of(heavy.template()) == {"CPU": want_cpu, "MEMORY": want_memory}


@pytest.mark.parametrize(("options", "message"), [
    ({"cpu": "half"}, r"cpu='half' is not CPUs, e.g. 2 or '500m'"),
    ({"memory": "1Gb!"}, r"memory='1Gb!' is not a size, e.g. '4GiB' or '512Mi'"),
    ({"memory": "1Pi"}, r"memory='1Pi' is not a size"),
], ids=["cpu-word", "memory-punctuation", "memory-unknown-unit"])
def test_a_resource_typo_fails_at_decoration(options: dict[str, str], message: str) -> None:
    with pytest.raises(InterfaceError, match=message):
        @task(**options)  # type: ignore[arg-type]
        def heavy() -> None:
            return None


@dataclass
class Where:
    execution_id: str
    node: str
    attempt: int
    raw_output_prefix: str
    working_directory: str
    cwd: str


@task(retries=1)
def where(fail_first: bool = False) -> Where:
    context = ferry.current_context()
    if fail_first and context.attempt == 1:
        raise RuntimeError("the first attempt fails")
    return Where(context.execution_id, context.node, context.attempt, context.raw_output_prefix,
                 str(context.working_directory), str(Path.cwd()))


@workflow
def where_wf() -> tuple[Where, Where]:
    return where(), where(fail_first=True)


@pytest.mark.parametrize("executor", ["inline", "process"])
def test_current_context_names_the_execution_node_and_attempt(executor: str) -> None:
    execution = ferry.run(where_wf, executor=executor)
    assert execution.status == "succeeded", execution.error
    first, retried = execution.outputs
    raw_root = active_settings().raw_output_prefix
    for seen, node, attempt in ((first, "n0", 1), (retried, "n1", 2)):
        assert (seen.execution_id, seen.node, seen.attempt) == (execution.id, node, attempt)
        assert re.fullmatch(rf"{re.escape(raw_root)}/[0-9a-f]{{16}}/{execution.id}/{node}/{attempt - 1}",
                            seen.raw_output_prefix)
        assert seen.working_directory == seen.cwd  # the task runs in its working folder
        assert not Path(seen.working_directory).exists() or not any(Path(seen.working_directory).iterdir())


def test_current_context_in_direct_calls() -> None:
    seen = where()
    assert seen.execution_id.startswith("local-") and seen.node == "task" and seen.attempt == 1
    first, retried = where_wf()
    assert first.execution_id == retried.execution_id and first.execution_id.startswith("local-")
    assert (first.node, retried.node, retried.attempt) == ("n0", "n1", 2)


def test_current_context_outside_a_task_says_where_it_works() -> None:
    with pytest.raises(FerryError, match=r"only known inside a running task"):
        ferry.current_context()


class QC(NamedTuple):
    n_reads: int
    passed: bool


@task
def qc(sample: str) -> QC:
    return QC(len(sample), len(sample) >= 3)


@task
def strict_qc(sample: str) -> QC:
    return QC(len(sample), len(sample) >= 5)


@task
def total(xs: list[int]) -> int:
    return sum(xs)


@task
def label(n: int, passed: bool) -> str:
    return f"{n} {'pass' if passed else 'fail'}"


@workflow
def named_fields(samples: list[str], strict: bool = False) -> tuple[int, str, str]:
    per_sample = map_task(qc)(sample=samples)  # a NamedTuple of lists, one per field
    one = qc(sample="abcd")
    chosen = (
        conditional("strictness")
        .if_(strict == True).then(strict_qc(sample="abcd"))  # noqa: E712 - a condition, not a bool
        .else_().then(qc(sample="abcd"))
    )
    return total(xs=per_sample.n_reads), label(n=one.n_reads, passed=one.passed), \
        label(n=chosen.n_reads, passed=chosen.passed)


def test_namedtuple_promises_have_their_fields_in_tasks_map_tasks_and_branches() -> None:
    assert named_fields(samples=["a", "bb", "ccc"]) == (6, "4 pass", "4 pass")
    assert named_fields(samples=["a"], strict=True) == (1, "4 pass", "4 fail")
    execution = ferry.run(named_fields, {"samples": ["ab", "cde"], "strict": True}, executor="process")
    assert execution.outputs == (5, "4 pass", "4 fail")


def test_the_porting_guide_names_only_what_ferry_has() -> None:
    guide = (ROOT / "docs" / "from-flyte.md").read_text()
    assert "examples/from_flyte.py" in guide
    names = set(re.findall(r"ferry\.([a-zA-Z_]+)\(", guide))  # what the guide calls
    assert {"current_context", "LaunchPlan", "run", "launch"} <= names
    missing = sorted(n for n in names if not hasattr(ferry, n))
    assert not missing, f"docs/from-flyte.md names ferry.{missing}, which ferry does not export"
    commands = set(re.findall(r"`ferry ([a-z]+)", guide))
    known = set(cli.commands)  # type: ignore[attr-defined]
    assert commands and commands <= known, commands - known
