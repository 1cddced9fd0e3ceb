"""The engine runs specs, never user code: proven with an engine process that can't import it, and the
limits every executor honours (working folders, timeouts, resource requests), and the engine's own failures."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import ferry
from ferry.cli.main import cli
from ferry.config import active_settings
from ferry.engine.records import Records
from ferry.runtime.load import load_object

FLOWS = Path(__file__).parent / "flows"

# An engine process in which the user's module, pandas and pyarrow can't be imported; at exit it writes
# the names of every module it loaded.
ENGINE = """
import atexit, importlib.abc, json, os, sys
BLOCKED = {"pandas", "pyarrow", "polars", "registered"}
class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"{name} can't be imported in the engine process")
        return None
sys.meta_path.insert(0, Blocked())
atexit.register(lambda: open(os.environ["ENGINE_MODULES"], "w").write(json.dumps(sorted(sys.modules))))
from ferry.cli.main import main
sys.argv = ["ferry", *sys.argv[1:]]
main()
"""


@pytest.fixture
def flows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "code"
    folder.mkdir()
    shutil.copy(FLOWS / "registered.py", folder / "registered.py")
    monkeypatch.setenv("MARKS", str(tmp_path / "marks"))
    return folder / "registered.py"


def engine(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "ENGINE_MODULES": str(tmp_path / "engine-modules.json")}
    env.pop("PYTHONPATH", None) if "registered" in env.get("PYTHONPATH", "") else None
    return subprocess.Popen([sys.executable, "-c", ENGINE, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env, cwd=tmp_path, start_new_session=True)


def loaded_modules(tmp_path: Path) -> set[str]:
    return set(json.loads((tmp_path / "engine-modules.json").read_text()))


def wait_for(path: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.05)


@pytest.mark.parametrize("executor", ["process", "dask"])
def test_engine_without_the_user_code_runs_and_resumes_a_registered_workflow(flows: Path, tmp_path: Path,
                                                                             executor: str) -> None:
    assert CliRunner().invoke(cli, ["register", str(flows)]).exit_code == 0
    marks = tmp_path / "marks"

    done = engine(tmp_path, "launch", "registered.files_and_frames", "--n", "4", "--executor", executor)
    output, _ = done.communicate(timeout=300)
    assert done.returncode == 0, output
    assert "o0 = '4 lines, sum 6'" in output  # a File and a DataFrame passed between the tasks
    modules = loaded_modules(tmp_path)
    assert not {m for m in modules if m.split(".")[0] in ("pandas", "pyarrow", "polars", "registered")}
    assert not {m for m in modules if m.startswith("ferry.sdk")}

    killed = engine(tmp_path, "launch", "registered.gated", "--n", "3", "--executor", executor)
    wait_for(marks / "wait_for_gate")  # the last task is running: kill the engine and its workers now
    os.killpg(killed.pid, signal.SIGKILL)
    killed.communicate(timeout=60)
    record = Records(active_settings().database_url).list_executions(1)[0]
    assert record.status == "running"
    (marks / "gate").write_text("open")

    resumed = engine(tmp_path, "executions", "resume", record.id)
    output, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, output
    assert "o0 = '3 LINES, SUM 3'" in output
    assert len((marks / "make").read_text().splitlines()) == 2  # once per execution: finished nodes not re-run
    modules = loaded_modules(tmp_path)
    assert not {m for m in modules if m.split(".")[0] in ("pandas", "pyarrow", "polars", "registered")}


@pytest.mark.parametrize("executor", ["inline", "process"])
def test_every_attempt_has_its_own_working_folder(executor: str) -> None:
    wf = load_object(str(FLOWS / "limits.py"), "samples", "workflow")
    names = [str(i) for i in range(6)]
    execution = ferry.run(wf, {"names": names}, executor=executor)
    assert execution.status == "succeeded", execution.error
    assert execution.outputs == [f"sample {n}" for n in names]


def test_a_direct_call_runs_each_attempt_in_its_own_folder(tmp_path: Path) -> None:
    wf = load_object(str(FLOWS / "limits.py"), "samples", "workflow")
    assert wf(names=["a", "b", "c"]) == ["sample a", "sample b", "sample c"]
    assert not (tmp_path / "result.txt").exists()  # the caller's folder is untouched


@pytest.mark.parametrize("executor", ["inline", "process", "dask"])
def test_a_task_running_past_its_timeout_is_stopped_and_retried_as_a_system_error(
        executor: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKS", str(tmp_path / "marks"))
    execution = ferry.run(load_object(str(FLOWS / "limits.py"), "hanging", "workflow"), {}, executor=executor)
    assert execution.status == "failed"
    assert "system error, attempt 3" in (execution.error or "")
    assert "stopped at the task's timeout of 1 s" in (execution.error or "")
    assert len((tmp_path / "marks" / "hangs").read_text().splitlines()) == 3  # the first try and 2 system retries


@pytest.mark.parametrize("executor", ["inline", "process"])
@pytest.mark.parametrize("workflow, wanted", [("too_many_cpus", "{'CPU': 1000.0}"), ("gpu_job", "{'GPU': 1.0}")])
def test_resource_requests_beyond_the_machine_are_refused(executor: str, workflow: str, wanted: str) -> None:
    execution = ferry.run(load_object(str(FLOWS / "limits.py"), workflow, "workflow"), {}, executor=executor)
    assert execution.status == "failed"
    assert f"requests {wanted}, more than the {executor} executor has here" in (execution.error or "")
    assert "attempt 1" in (execution.error or "")  # a refusal is final, not retried


def test_an_attempt_waiting_for_resources_is_queued_and_its_clock_starts_when_it_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKS", str(tmp_path))
    events: list[tuple[str, str, float]] = []

    def listener(path: str, kind: str, label: str, status: str, detail: str) -> None:
        events.append((path, status, time.time()))
        if sum(s == "queued" for _, s, _ in events) == 2:
            (tmp_path / "gate").touch()  # the first task ends only once both have been queued

    wf = load_object(str(FLOWS / "limits.py"), "two_whole_machines", "workflow")
    execution = ferry.run(wf, {}, executor="process", listener=listener)
    assert execution.status == "succeeded", execution.error
    assert execution.outputs == [1, 2]
    started = {path: at for path, status, at in events if status == "running"}
    first, second = sorted(started, key=started.get)  # type: ignore[arg-type]
    queued = {path: at for path, status, at in events if status == "queued"}
    ended_first = float((tmp_path / f"ended-{1 if first == 'n0' else 2}").read_text())
    assert queued[second] <= ended_first <= started[second]  # it waited in the executor's queue for the machine
    nodes = {n.path: n for n in Records(active_settings().database_url).nodes(execution.id) if n.kind == "task"}
    assert nodes[second].started >= ended_first  # its clock starts when it ran, not when it was queued


def test_the_resource_pool_wakes_waiters_oldest_first_and_lets_a_fitting_request_ahead() -> None:
    import threading

    from ferry.executors.base import ResourcePool

    pool = ResourcePool({"CPU": 2.0, "GPU": 1.0}, "process")
    pool.acquire({"CPU": 2.0})
    order: list[str] = []

    def take(name: str, wanted: dict[str, float]) -> None:
        pool.acquire(wanted)
        order.append(name)

    def queued(n: int) -> None:
        """Until ``n`` threads sit in the pool's queue (a state to reach, not a time to wait)."""
        for _ in range(10_000):
            with pool._lock:
                if len(pool._waiting) == n:
                    return
            threading.Event().wait(0.001)
        raise AssertionError(f"{n} waiters never queued")

    big = threading.Thread(target=take, args=("big", {"CPU": 2.0}))
    big.start()
    queued(1)
    pool.acquire({"GPU": 1.0})  # fits beside the waiting request: goes ahead of it at once
    small = threading.Thread(target=take, args=("small", {"CPU": 1.0, "GPU": 1.0}))
    small.start()
    queued(2)
    pool.release({"GPU": 1.0})  # frees only a GPU: nobody fits yet
    assert order == [] and pool.free == {"CPU": 0.0, "GPU": 1.0}
    pool.release({"CPU": 2.0})  # the oldest waiter gets the two CPUs; the small one waits on
    big.join(10)
    assert order == ["big"] and small.is_alive()
    pool.release({"CPU": 2.0})
    small.join(10)
    assert order == ["big", "small"] and pool.free == {"CPU": 1.0, "GPU": 0.0}


def test_direct_calls_retry_as_ferry_run_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKS", str(tmp_path / "marks"))
    limits = str(FLOWS / "limits.py")
    assert load_object(limits, "retried", "workflow")(x=10) == 12  # failed twice, then succeeded
    (tmp_path / "marks" / "flaky").unlink()
    assert load_object(limits, "flaky", "task")(x=10) == 12
    (tmp_path / "marks" / "flaky").unlink()
    execution = ferry.run(load_object(limits, "retried", "workflow"), {"x": 10})
    assert execution.outputs == 12
    attempts = [n for n in Records(active_settings().database_url).nodes(execution.id) if n.kind == "task"]
    assert [a.status for a in attempts] == ["failed", "failed", "succeeded"]


def test_a_failure_of_the_engine_itself_fails_the_execution(monkeypatch: pytest.MonkeyPatch) -> None:
    from ferry.engine import graph

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug in the walk")

    monkeypatch.setattr(graph.GraphRunner, "run_node", broken)
    execution = ferry.run(load_object(str(FLOWS / "limits.py"), "retried", "workflow"), {})
    assert execution.status == "failed"
    assert execution.error == "system error in the engine: RuntimeError: a bug in the walk"
    assert Records(active_settings().database_url).get_execution(execution.id).status == "failed"
