"""@dynamic: a subgraph built at run time from input values, run by the engine node by node, resumable inside."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import ferry
from ferry.cli.main import cli
from ferry.config import active_settings
from ferry.engine.records import Records
from ferry.runtime.load import load_object

FLOWS = str(Path(__file__).parent / "flows" / "dynamic.py")


@pytest.fixture(autouse=True)
def marks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MARKS", str(tmp_path / "marks"))
    return tmp_path / "marks"


def runs(marks: Path, name: str) -> int:
    path = marks / name
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_direct_calls_build_and_run_the_subgraph() -> None:
    assert load_object(FLOWS, "sum_of_squares", "workflow")(n=4) == 14
    assert load_object(FLOWS, "squares_up_to", "task")(n=3) == 5
    assert load_object(FLOWS, "sum_of_squares", "workflow")(n=0) == 0


@pytest.mark.parametrize("executor", ["inline", "process"])
def test_the_engine_runs_each_generated_node_and_shows_it(executor: str) -> None:
    execution = ferry.run(load_object(FLOWS, "sum_of_squares", "workflow"), {"n": 3}, executor=executor)
    assert execution.status == "succeeded", execution.error
    assert execution.outputs == 5
    paths = {n.path: n for n in Records(active_settings().database_url).nodes(execution.id)}
    assert {"n0", "n0/n0", "n0/n1", "n0/n2", "n0/n3"} <= set(paths)
    assert paths["n0/n3"].label == "dynamic.total" and "built 4 node(s)" in (paths["n0"].detail or "")
    shown = CliRunner().invoke(cli, ["executions", "show", execution.id])
    assert "n1 [task] dynamic.square attempt 1: succeeded" in shown.output and "x = 1" in shown.output


def test_a_dynamic_graph_with_a_type_error_fails_clearly_and_is_not_retried() -> None:
    execution = ferry.run(load_object(FLOWS, "broken", "workflow"), {"n": 2})
    assert execution.status == "failed"
    error = execution.error or ""
    assert "dynamic.mislabeled failed (user error, attempt 1)" in error
    assert "n0.o0 (str) is bound to dynamic.square.x (int)" in error


def test_a_map_over_a_dynamic_task_is_refused() -> None:
    execution = ferry.run(load_object(FLOWS, "mapped_dynamic", "workflow"), {"ns": [1, 2]})
    assert execution.status == "failed" and "a map task can't be a dynamic task" in (execution.error or "")


def test_resume_inside_a_dynamic_subgraph(marks: Path) -> None:
    engine = subprocess.Popen([sys.executable, "-m", "ferry.cli.main", "run", FLOWS, "gated_dynamic", "--n", "4",
                               "--executor", "process"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while runs(marks, "gated-2") < 1:
        assert time.monotonic() < deadline, "the third generated node never started"
        time.sleep(0.05)
    os.killpg(engine.pid, signal.SIGKILL)
    engine.communicate(timeout=30)
    execution = Records(active_settings().database_url).list_executions(1)[0]
    (marks / "gate").write_text("open")
    resumed = CliRunner().invoke(cli, ["executions", "resume", execution.id])
    assert resumed.exit_code == 0, resumed.output
    assert "o0 = [0, 1, 2, 3]" in resumed.output
    assert runs(marks, "waits") == 1  # the dynamic task did not run again: its subgraph was resumed
    assert runs(marks, "gated-0") == 1 and runs(marks, "gated-1") == 1  # finished nodes were not run again
    assert runs(marks, "gated-2") == 2 and runs(marks, "gated-3") == 1
