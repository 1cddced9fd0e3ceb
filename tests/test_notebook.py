"""Notebooks and tests: tasks no other process can import travel by value, signed; the ferry_home pytest fixture.

A task defined in a notebook cell or inside a function is pickled with cloudpickle and uploaded when its
workflow is launched; task processes load it only when ferry's signature verifies. The notebook example
runs in a real Jupyter kernel (nbclient), with the process and Dask executors.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import ferry
from ferry import map_task, task, workflow
from ferry.config import active_settings
from ferry.engine.records import Records
from ferry.errors import TaskLoadError
from ferry.executors.base import ferry_reference
from ferry.runtime.load import PICKLED, load_task
from ferry.storage import read_bytes, write_bytes
from ferry.types.pickled import MAGIC

ROOT = Path(__file__).parent.parent


def _registered_reference(task_name: str) -> str:
    """The ``--task`` argument of the newest registered template of ``task_name``."""
    from flyteidl.admin import task_pb2

    records = Records(active_settings().database_url)
    try:
        registration = records.registrations("task", task_name)[0]
    finally:
        records.close()
    spec = task_pb2.TaskSpec.FromString(read_bytes(registration.uri))
    reference = ferry_reference(spec.template)
    assert reference is not None
    return reference


def _local_pipeline(marker: Path) -> Any:
    """A workflow whose tasks are defined in a function, so no other process can import them."""
    offset = 100  # a closure variable: it travels with the task

    @task
    def shift(x: int) -> int:
        marker.write_text("ran")
        return x + offset

    @workflow
    def pipeline(xs: list[int]) -> list[int]:
        return map_task(shift)(x=xs)

    return pipeline


def test_a_task_defined_in_a_function_runs_in_task_processes(tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    pipeline = _local_pipeline(marker)
    execution = ferry.run(pipeline, {"xs": [1, 2]}, executor="process")
    assert execution.status == "succeeded", execution.error
    assert execution.outputs == [101, 102] and marker.read_text() == "ran"
    reference = _registered_reference(f"{__name__}._local_pipeline.<locals>.shift")
    digest, _, uri = reference.removeprefix(PICKLED).partition("@")
    assert reference.startswith(PICKLED) and len(digest) == 16
    assert uri.startswith(active_settings().raw_output_prefix + "/") and read_bytes(uri).startswith(MAGIC)


def test_a_dynamic_task_defined_in_a_function_sends_the_tasks_it_builds_by_value() -> None:
    from ferry import dynamic

    @task
    def square(x: int) -> int:
        return x * x

    @dynamic
    def squares(n: int) -> list[int]:
        return [square(x=i) for i in range(n)]  # built in the task process, from a pickled body

    @workflow
    def wf(n: int) -> list[int]:
        return squares(n=n)

    execution = ferry.run(wf, {"n": 4}, executor="process")
    assert execution.status == "succeeded", execution.error
    assert execution.outputs == [0, 1, 4, 9]


def test_an_importable_task_keeps_its_reference() -> None:
    from ferry.sdk.task import Task

    flows = ROOT / "tests" / "flows"
    module_task = next(t for t in _module_tasks(flows) if isinstance(t, Task))
    assert not ferry_reference(module_task.template()).startswith(PICKLED)  # type: ignore[union-attr]


def _module_tasks(folder: Path) -> list[Any]:
    from ferry.runtime.load import entities, load_module

    found = []
    for path in sorted(folder.glob("*.py")):
        found.extend(v for v in entities(load_module(str(path))).values() if getattr(v, "ferry_kind", "") == "task")
    assert found, f"no tasks in {folder}"
    return found


def test_a_name_rebound_in_its_module_travels_by_value() -> None:
    def body(x: int) -> int:
        return x

    rebound = task(body)  # the module's name `body` is not the task (here: not in the module at all)
    assert ferry_reference(rebound.template()).startswith(PICKLED)  # type: ignore[union-attr]


@pytest.mark.parametrize("tamper", ["altered", "unsigned", "other-key"])
def test_a_task_pickle_ferry_did_not_sign_is_refused_and_never_run(tmp_path: Path, tamper: str) -> None:
    import pickle

    from ferry.types.pickled import signature_header

    marker = tmp_path / "ran.txt"
    pipeline = _local_pipeline(marker)
    assert ferry.run(pipeline, {"xs": [1]}, executor="process").status == "succeeded"
    marker.unlink()
    uri = _registered_reference(f"{__name__}._local_pipeline.<locals>.shift").partition("@")[2]
    signed = read_bytes(uri)
    evil = pickle.dumps(ValueError("not a task"))  # what a writer to the raw store could put there
    replacement = {
        "altered": signed[:-1] + bytes([signed[-1] ^ 1]),
        "unsigned": evil,
        "other-key": signature_header(evil, b"someone else's key") + evil,
    }[tamper]
    write_bytes(uri, replacement, active_settings().options_for(uri), "raw")
    again = ferry.run(pipeline, {"xs": [1]}, executor="process")  # the same version: the same upload
    assert again.status == "failed"
    expected = {"altered": "signature does not match its contents", "unsigned": "has no ferry signature",
                "other-key": "signed with another key"}[tamper]
    assert expected in (again.error or "")
    assert not marker.exists()


def test_a_task_by_value_that_was_never_uploaded_says_so() -> None:
    with pytest.raises(TaskLoadError, match="travels by value .* but was not uploaded"):
        load_task(f"{PICKLED}0123456789abcdef")


def test_a_task_by_value_changes_version_when_the_globals_it_reads_change() -> None:
    scale = [2]

    @task
    def times(x: int) -> int:
        return x * scale[0]

    first = ferry_reference(times.template())
    assert ferry_reference(times.template()) == first  # the same code and values: the same digest
    scale[0] = 3
    assert ferry_reference(times.template()) != first


def test_notebook_cells_in_main_run_with_process_executor(tmp_path: Path) -> None:
    """A notebook's __main__ has no file: cells exec'd there, as a kernel does, define tasks sent by value."""
    cells = [
        "import ferry\nfrom ferry import task, workflow",
        "@task\ndef inc(x: int) -> int:\n    return x + 1",
        "@workflow\ndef wf(x: int) -> int:\n    return inc(x=inc(x=x))",
        "execution = ferry.run(wf, {'x': 1}, executor='process')\n"
        "print(execution.status, execution.outputs, ferry.executors.base.ferry_reference(inc.template())[:7])",
    ]
    script = "import ferry.executors.base\nns = {'__name__': '__main__'}\n" + "".join(
        f"exec(compile({cell!r}, '<cell {i}>', 'exec'), ns)\n" for i, cell in enumerate(cells))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "succeeded 3 pickle:"


def test_the_notebook_example_runs_in_a_jupyter_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")  # jupyter_core's paths, without its migration warning
    notebook = nbformat.read(ROOT / "examples" / "notebook.ipynb", as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(  # the test's own check: the cells' tasks went by value
        "from ferry.executors.base import ferry_reference\n"
        "print(ferry_reference(scale.template()).split(':')[0], ferry_reference(summarize.template()).split(':')[0])"
    ))
    NotebookClient(notebook, timeout=180, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    results = [_text(cell) for cell in notebook.cells if cell.cell_type == "code"]
    assert results[1:] == ["(60, 30)", "(100, 40)", "(1000, 400)", "pickle pickle"]


def _text(cell: Any) -> str:
    for output in cell.outputs:
        if output.output_type == "execute_result":
            return str(output.data["text/plain"])
        if output.output_type == "stream" and output.name == "stdout":
            return str(output.text).strip()
    return ""


USER_TESTS = '''
import os

import ferry
from ferry.config import active_settings
from ferry.engine.records import Records


@ferry.task
def add(a: int, b: int) -> int:
    return a + b


@ferry.workflow
def wf(a: int) -> int:
    return add(a=a, b=add(a=a, b=1))


def executions():
    records = Records(active_settings().database_url)
    try:
        return records.list_executions()
    finally:
        records.close()


def test_first(ferry_home):
    assert active_settings().home == ferry_home and ferry_home.is_dir()
    assert active_settings().metadata_url == ferry_home.as_uri() + "/metadata"  # not the ferry.toml's
    assert "FERRY_RAW_OUTPUT_PREFIX" not in os.environ
    assert ferry.run(wf, {"a": 1}).outputs == 3
    assert len(executions()) == 1


def test_second_has_a_home_of_its_own(ferry_home):
    assert active_settings().home == ferry_home
    assert executions() == []


def test_settings_changed_in_a_test(ferry_home, monkeypatch):
    from ferry.config import reset_settings

    monkeypatch.setenv("FERRY_MAX_LITERAL_BYTES", "7")
    reset_settings()
    assert active_settings().max_literal_bytes == 7
'''


def _run_user_tests(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_user.py").write_text(textwrap.dedent(USER_TESTS))
    (tmp_path / "ferry.toml").write_text('metadata_url = "file:///nonexistent/ferry-metadata"\n')
    child_env = {**os.environ, "FERRY_RAW_OUTPUT_PREFIX": "file:///nonexistent/raw", **(env or {})}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, "test_user.py"],
                          capture_output=True, text=True, cwd=tmp_path, env=child_env, timeout=300)


def test_the_ferry_home_fixture_isolates_each_test(tmp_path: Path) -> None:
    out = _run_user_tests(tmp_path, "-p", "ferry.testing.plugin", env={"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "3 passed" in out.stdout


def test_the_pytest11_entry_point_loads_the_plugin(tmp_path: Path) -> None:
    """pytest finds the plugin through the entry point pyproject.toml declares (a stand-in distribution here:
    the package may be installed from another checkout)."""
    import tomllib

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["pytest11"]
    assert declared == {"ferry": "ferry.testing.plugin"}
    site = tmp_path / "site"
    dist = site / "ferry_plugin_probe-0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ferry-plugin-probe\nVersion: 0\n")
    (dist / "entry_points.txt").write_text("[pytest11]\n" + "".join(f"{k} = {v}\n" for k, v in declared.items()))
    pythonpath = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    out = _run_user_tests(tmp_path, env={"PYTHONPATH": pythonpath})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "3 passed" in out.stdout
