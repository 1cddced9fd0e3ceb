"""The typed API: a type checker sees a decorated task or workflow as the function it wraps.

mypy runs on two small workflow files as a user would write them: a correct one must pass, and one with a
wrong argument, a wrong keyword, a wrong return type and a wrong use of a task's output must be reported
line by line. Workflow bodies (promises, conditions, map tasks, NamedTuple fields) must raise no false errors.
"""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path

import pytest
from mypy import api as mypy_api

import ferry

CORRECT = '''
from typing import NamedTuple

import ferry
from ferry import File, conditional, dynamic, map_task, task, workflow


class QC(NamedTuple):
    n_reads: int
    passed: bool


@task
def count(sample: str) -> int:
    return len(sample)


@task(retries=2, cache=True, cache_version="1", cpu="500m", memory="1Gi")
def qc(sample: str, min_reads: int = 10) -> QC:
    return QC(len(sample), len(sample) >= min_reads)


@task
def total(xs: list[int]) -> int:
    return sum(xs)


@task
def describe(n: int) -> str:
    return f"{n} reads"


@task
def write(text: str) -> File:
    return File("s3://bucket/" + text)


lines = ferry.ContainerTask("lines", command=["wc", "-l", "{{.inputs.f}}"], inputs={"f": File}, outputs={"n": int})


@workflow
def with_programs(texts: list[str]) -> list[int]:
    return map_task(lines)(f=[write(text=t) for t in ["a", "b"]])


@workflow
def pipeline(samples: list[str], threshold: int = 10) -> tuple[str, int]:
    counts = map_task(count, concurrency=4)(sample=samples)
    n = total(xs=counts)
    report = qc(sample="abc").n_reads
    label = (
        conditional("size")
        .if_((n > threshold) & (report < 3)).then(describe(n=n))
        .else_().then(describe(n=threshold))
    )
    return label, n


@dynamic
def per_sample(samples: list[str]) -> list[int]:
    return [count(sample=s) for s in samples]


@workflow
def outer(samples: list[str]) -> str:
    text, _ = pipeline(samples=samples)
    return text


def use() -> None:
    n: int = count(sample="x")
    checked: QC = qc("abc", 3)
    text: str = pipeline(samples=["a"])[0]
    nightly = ferry.LaunchPlan(pipeline, "nightly", default_inputs={"threshold": 3})
    execution = ferry.run(pipeline, inputs={"samples": ["a"]}, executor="process")
    print(n, checked.passed, text, nightly, execution.outputs)
'''

WRONG = '''
from ferry import task, workflow


@task
def count(sample: str) -> int:
    return len(sample)


@workflow
def pipeline(sample: str) -> str:
    n = count(sample=3)  # ERROR: wrong argument type
    count(sampel=sample)  # ERROR: no such parameter
    return n  # ERROR: wrong return type


def use() -> None:
    text: str = count(sample="x")  # ERROR: a task's result used as another type
    pipeline(sample=1)  # ERROR: wrong argument to a workflow
'''


def _expected_lines(source: str) -> set[int]:
    return {i for i, line in enumerate(source.splitlines(), 1) if "# ERROR" in line}


@pytest.fixture(scope="module")
def mypy_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[int, str]]]:
    """One mypy run over both files (a cold run takes a while): {file name: [(line, message)]}."""
    folder = tmp_path_factory.mktemp("typing")
    for name, source in (("correct_flow.py", CORRECT), ("wrong_flow.py", WRONG)):
        (folder / name).write_text(textwrap.dedent(source))
    (folder / "mypy.ini").write_text("[mypy]\n")  # mypy's defaults, not a configuration found in a parent folder
    src = str(Path(ferry.__file__).resolve().parents[1])  # the sources these tests import
    previous = os.environ.get("MYPYPATH")
    os.environ["MYPYPATH"] = src
    try:
        # ferry is followed silently, as an installed package with py.typed is: only the user's files report
        out, err, _ = mypy_api.run([
            "--config-file", str(folder / "mypy.ini"), "--cache-dir", str(folder / ".mypy_cache"),
            "--follow-imports", "silent", "--no-error-summary",
            "--show-error-codes", "--python-version", "3.11",
            str(folder / "correct_flow.py"), str(folder / "wrong_flow.py"),
        ])
    finally:
        if previous is None:
            del os.environ["MYPYPATH"]
        else:
            os.environ["MYPYPATH"] = previous
    assert not err, err
    report: dict[str, list[tuple[int, str]]] = {"correct_flow.py": [], "wrong_flow.py": []}
    for line in out.splitlines():
        match = re.match(r"^(.*?):(\d+): (error|note): (.*)$", line)
        assert match, f"unexpected mypy output: {line}"
        if match.group(3) == "error":
            report[Path(match.group(1)).name].append((int(match.group(2)), match.group(4)))
    return report


def test_a_correct_workflow_file_passes_mypy(mypy_report: dict[str, list[tuple[int, str]]]) -> None:
    assert mypy_report["correct_flow.py"] == []


def test_mypy_flags_wrong_arguments_and_returns(mypy_report: dict[str, list[tuple[int, str]]]) -> None:
    errors = mypy_report["wrong_flow.py"]
    assert {line for line, _ in errors} == _expected_lines(textwrap.dedent(WRONG)), errors
    messages = "\n".join(message for _, message in errors)
    assert 'Argument "sample" to "__call__" of "Task" has incompatible type "int"; expected "str"' in messages
    assert 'Argument "sample" to "__call__" of "Workflow" has incompatible type "int"; expected "str"' in messages
    assert 'Unexpected keyword argument "sampel"' in messages
    assert 'Incompatible return value type (got "int", expected "str")' in messages
    assert 'Incompatible types in assignment (expression has type "int", variable has type "str")' in messages


def test_the_package_ships_its_type_marker() -> None:
    import tomllib

    root = Path(__file__).resolve().parents[1]
    assert (Path(ferry.__file__).parent / "py.typed").is_file()
    package_data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "py.typed" in package_data["ferry"]


def test_the_decorated_objects_keep_the_function_signature() -> None:
    import inspect

    @ferry.task
    def add(a: int, b: int = 2) -> int:
        return a + b

    assert str(inspect.signature(add)) == "(a: 'int', b: 'int' = 2) -> 'int'"
    assert add.__name__ == "add" and add(1) == 3
