"""The engine through ferry.run and the CLI: records, executors, failures, resume, abort, memoization."""

from __future__ import annotations

import os
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
from ferry.errors import FerryError, TaskFailedError

FLOWS = Path(__file__).parent / "flows" / "pipeline.py"


@pytest.fixture(autouse=True)
def marks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "marks"
    monkeypatch.setenv("MARKS", str(folder))
    return folder


def runs(marks: Path, name: str) -> int:
    path = marks / name
    return len(path.read_text().splitlines()) if path.exists() else 0


def load(name: str) -> Any:
    from ferry.runtime.load import load_object

    return load_object(str(FLOWS), name, "workflow")


@pytest.mark.parametrize("executor", ["inline", "process"])
def test_files_and_frames_end_to_end(executor: str) -> None:
    execution = ferry.run(load("files_and_frames"), {"n": 4}, executor=executor)
    assert execution.status == "succeeded", execution.error
    summary, f = execution.outputs
    assert summary == "4 lines, sum 6"
    with open(f) as fh:
        assert fh.read() == "line\n" * 4
    nodes = Records(active_settings().database_url).nodes(execution.id)
    assert {n.path for n in nodes} == {"n0", "n1", "n2"} and all(n.status == "succeeded" for n in nodes)


def test_process_executor_runs_tasks_in_other_processes() -> None:
    execution = ferry.run(load("map_reduce"), {"xs": list(range(20))}, executor="process",
                          executor_options={"workers": 2})
    assert execution.outputs == sum(x * x for x in range(20))
    workers = {n.detail for n in Records(active_settings().database_url).nodes(execution.id) if n.kind == "task"}
    assert f"pid {os.getpid()}" not in workers
    assert 1 <= len(workers) <= 2  # warm workers are reused


def test_fresh_process_per_task() -> None:
    execution = ferry.run(load("map_reduce"), {"xs": [1, 2, 3]}, executor="process",
                          executor_options={"workers": 2, "warm": False})
    assert execution.outputs == 14
    workers = {n.detail for n in Records(active_settings().database_url).nodes(execution.id) if n.kind == "task"}
    assert len(workers) == 4


@pytest.mark.parametrize("executor, in_records", [("process", ""), ("inline", "0"), ("inline", "64KiB")])
def test_metadata_layout_per_node_and_attempt(ferry_home: Path, executor: str, in_records: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from ferry.config import reset_settings
    from ferry.types import default_engine

    monkeypatch.setenv("FERRY_META_IN_RECORDS_BYTES", in_records)
    reset_settings()
    execution = ferry.run(load("map_reduce"), {"xs": [1, 2]}, executor=executor)
    assert execution.status == "succeeded" and execution.outputs == 1 + 4, execution.error
    root = ferry_home / "metadata" / execution.id
    assert (root / "inputs.pb").exists() and (root / "outputs.pb").exists()
    kept = executor == "inline" and in_records != "0"  # small values of in-process attempts: in the records
    records = {n.path: n for n in Records(active_settings().database_url).nodes(execution.id) if n.kind == "task"}
    for node in ("n0-0", "n0-1", "n1"):
        files = (root / node / "0" / "inputs.pb").exists(), (root / node / "0" / "outputs.pb").exists()
        assert files == ((False, False) if kept else (True, True))
        assert (records[node].inputs is not None, records[node].outputs is not None) == (kept, kept)
        outputs = records[node].meta("outputs.pb", lambda uri: Path(uri[len("file://"):]).read_bytes())
        assert outputs is not None
        assert default_engine().to_python(outputs.literals["o0"], int, None) == {"n0-0": 1, "n0-1": 4, "n1": 5}[node]


def test_user_errors_are_retried_then_succeed(marks: Path) -> None:
    execution = ferry.run(load("retrying"), {"x": 7}, executor="process", executor_options={"workers": 1})
    assert execution.status == "succeeded" and execution.outputs == 7
    attempts = [n for n in Records(active_settings().database_url).nodes(execution.id) if n.kind == "task"]
    assert [(a.attempt, a.status) for a in attempts] == [(0, "failed"), (1, "failed"), (2, "succeeded")]
    assert "transient trouble" in (attempts[0].error or "")


def test_user_error_without_retries_fails_once() -> None:
    execution = ferry.run(load("failing"), {"x": 3})
    assert execution.status == "failed"
    assert "ValueError: cannot handle 3" in (execution.error or "") and "user error" in (execution.error or "")
    assert len(Records(active_settings().database_url).nodes(execution.id)) == 1
    with pytest.raises(TaskFailedError, match="failed"):
        execution.outputs  # noqa: B018


def test_dead_worker_is_a_retried_system_error(marks: Path) -> None:
    execution = ferry.run(load("dying"), {}, executor="process", executor_options={"workers": 1})
    assert execution.status == "failed"
    assert "system error" in (execution.error or "") and "exit code 17" in (execution.error or "")
    assert runs(marks, "dies") == 3  # first attempt + 2 system retries


def test_cli_run_show_outputs(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["run", str(FLOWS), "files_and_frames", "--n", "2"])
    assert result.exit_code == 0, result.output
    assert "o0 = '2 lines, sum 1'" in result.output
    assert "o1 = file file://" in result.output
    execution_id = Records(active_settings().database_url).list_executions(1)[0].id

    shown = runner.invoke(cli, ["executions", "show", execution_id])
    assert shown.exit_code == 0, shown.output
    assert "n = 2" in shown.output  # inline meta value
    assert "dataframe file://" in shown.output and "parquet" in shown.output  # a reference with format and size
    assert "[task] pipeline.make_file attempt 1: succeeded" in shown.output

    listed = runner.invoke(cli, ["executions", "list"])
    assert execution_id in listed.output and "succeeded" in listed.output

    out = runner.invoke(cli, ["executions", "outputs", execution_id, "--download", str(tmp_path / "dl")])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "dl" / "o1" / "data.txt").read_text() == "line\nline\n"


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "missing.py", "wf"], "No such Python file"),
        (["run", str(FLOWS), "nope"], "has no workflow named 'nope'"),
        (["run", str(FLOWS), "map_reduce"], "needs input(s) --xs"),
        (["run", str(FLOWS), "map_reduce", "--xs", "[1, 'a']"], "not valid JSON"),
        (["run", str(FLOWS), "map_reduce", "--xs", '["a"]'], "can't read '[\"a\"]' as list[int]"),
        (["run", str(FLOWS), "files_and_frames", "--m", "1"], "has no input 'm'"),
        (["executions", "show", "zzz"], "No execution 'zzz'"),
    ],
)
def test_cli_errors_are_one_line(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_cli_file_that_does_not_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import not_a_module_xyz\n")
    result = CliRunner().invoke(cli, ["run", str(bad), "wf"])
    assert result.exit_code == 1 and "failed to import: ModuleNotFoundError" in result.output


def test_failed_run_exits_non_zero_with_the_task_error() -> None:
    result = CliRunner().invoke(cli, ["run", str(FLOWS), "failing", "--x", "9"])
    assert result.exit_code == 1
    assert "cannot handle 9" in result.output


def _ferry(*args: str, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "ferry.cli.main", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=os.environ.copy(), **kwargs)


def _wait_for(predicate: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.05)


def test_resume_after_the_engine_is_killed(marks: Path) -> None:
    engine = _ferry("run", str(FLOWS), "two_steps", "--x", "4", "--executor", "process", start_new_session=True)
    _wait_for(lambda: runs(marks, "slow") >= 1)
    os.killpg(engine.pid, signal.SIGKILL)  # engine and its workers die mid-execution
    engine.communicate(timeout=30)
    execution = Records(active_settings().database_url).list_executions(1)[0]
    assert execution.status == "running"
    (marks / "gate").write_text("open")
    resumed = CliRunner().invoke(cli, ["executions", "resume", execution.id])
    assert resumed.exit_code == 0, resumed.output
    assert "o0 = 50" in resumed.output
    assert runs(marks, "first") == 1  # the completed node was not run again
    assert Records(active_settings().database_url).get_execution(execution.id).status == "succeeded"


def test_ctrl_c_aborts_cleanly(marks: Path) -> None:
    engine = _ferry("run", str(FLOWS), "two_steps", "--executor", "process")
    _wait_for(lambda: runs(marks, "slow") >= 1)
    worker_pid = int((marks / "slow").read_text().split()[0])
    engine.send_signal(signal.SIGINT)
    output, _ = engine.communicate(timeout=30)
    assert engine.returncode != 0
    assert "Traceback" not in output
    execution = Records(active_settings().database_url).list_executions(1)[0]
    assert execution.status == "aborted"
    _wait_for(lambda: not _alive(worker_pid), timeout=10)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("executor", ["inline", "process"])
def test_memoization(marks: Path, executor: str) -> None:
    wf = load("cached")
    first = ferry.run(wf, {"x": 1, "n": 2}, executor=executor)
    second = ferry.run(wf, {"x": 1, "n": 2}, executor=executor)
    assert first.outputs == second.outputs == 1 + 10
    assert runs(marks, "expensive") == 1  # same content hash: reused
    statuses = {n.label: n.status for n in Records(active_settings().database_url).nodes(second.id)}
    assert statuses["pipeline.expensive"] == "cached"
    ferry.run(wf, {"x": 2, "n": 2}, executor=executor)
    assert runs(marks, "expensive") == 2  # a different input is a miss


def test_cached_entry_whose_raw_data_vanished_is_a_miss(marks: Path, ferry_home: Path) -> None:
    import shutil

    wf = load("cached_file")
    ferry.run(wf, {"x": 7})
    assert ferry.run(wf, {"x": 7}).status == "succeeded" and runs(marks, "expensive_file") == 1
    shutil.rmtree(ferry_home / "raw")
    again = ferry.run(wf, {"x": 7})
    assert again.status == "succeeded"
    with open(again.outputs) as fh:
        assert fh.read() == "7"
    assert runs(marks, "expensive_file") == 2


def test_cache_clear(marks: Path) -> None:
    wf = load("cached")
    ferry.run(wf, {"x": 1, "n": 1})
    result = CliRunner().invoke(cli, ["cache", "clear", "--tasks"])
    assert result.exit_code == 0 and "1 memoized task" in result.output
    ferry.run(wf, {"x": 1, "n": 1})
    assert runs(marks, "expensive") == 2


def test_engine_needs_no_access_to_the_raw_store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The engine process can't touch the raw store at all, through fsspec or the file:// fast paths;
    tasks (other processes) can."""
    import builtins

    import ferry.storage.io as io
    import ferry.storage.registry as registry

    raw = f"file://{tmp_path}/raw-only-for-tasks"
    touched: list[str] = []

    def guard(name: str, real: Any) -> Any:
        def guarded(target: Any, *args: Any, **kwargs: Any) -> Any:
            text = os.fspath(target) if isinstance(target, (str, os.PathLike)) else ""
            if text.startswith(raw) or text.startswith(raw[len("file://"):]):
                touched.append(f"{name}({text})")
                raise PermissionError(f"engine touched raw data: {text}")
            return real(target, *args, **kwargs)
        return guarded

    with monkeypatch.context() as patched:
        for name in ("read_bytes", "write_bytes", "exists", "download_file", "open_read", "list_files", "filesystem"):
            patched.setattr(io, name, guard(name, getattr(io, name)))
        patched.setattr(registry, "filesystem", guard("filesystem", registry.filesystem))
        patched.setattr(builtins, "open", guard("open", builtins.open))
        patched.setattr(os, "stat", guard("stat", os.stat))
        execution = ferry.run(load("files_and_frames"), {"n": 3}, executor="process", raw_output_prefix=raw)
    assert execution.status == "succeeded", execution.error
    assert touched == []
    summary = execution.output_literals.literals["o0"].scalar.primitive.string_value
    assert summary == "3 lines, sum 3"
    assert execution.output_literals.literals["o1"].scalar.blob.uri.startswith(raw)
    assert any(p.is_file() for p in (tmp_path / "raw-only-for-tasks").rglob("*"))  # the tasks did write there


def test_run_inside_a_task_process_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FERRY_IN_TASK", "1")
    with pytest.raises(FerryError, match="inside a task process"):
        ferry.run(load("map_reduce"), {"xs": [1]})


def test_execution_records_json_free_of_raw_bytes(ferry_home: Path) -> None:
    execution = ferry.run(load("files_and_frames"), {"n": 2})
    db = Path(active_settings().database_url[len("sqlite:///"):])
    assert execution.status == "succeeded"
    assert b"line\nline" not in db.read_bytes()


def test_a_map_of_small_in_process_tasks_runs_its_elements_one_after_another() -> None:
    """Inline task bodies take turns (one working folder per process): threads would only add hand-offs."""
    from tests.flows import pipeline

    for run in (lambda xs: ferry.run(pipeline.map_threads, {"xs": xs}).outputs,
                lambda xs: pipeline.map_threads(xs=xs)):  # the engine's walk, and a direct call
        threads = run(list(range(40)))
        assert len(threads) == 40 and len(set(threads)) == 1


def test_which_maps_run_their_elements_at_once() -> None:
    from tests.flows import pipeline

    from ferry.engine.graph import turns_in_process
    from ferry.executors.inline import InlineExecutor

    inline = InlineExecutor()

    @ferry.task(retries=2)
    def flaky(x: int) -> int:
        return x

    @ferry.task(timeout=30)
    def bounded(x: int) -> int:
        return x

    assert turns_in_process(pipeline.square.template()) and inline.in_process(pipeline.square.template())
    assert not turns_in_process(pipeline.summarize.template())  # a File and a frame to move: transfers overlap
    assert not turns_in_process(pipeline.make_file.template())
    assert not turns_in_process(flaky.template())  # its retry pauses overlap other elements
    assert not inline.in_process(bounded.template())  # a child process: those run at once


@pytest.fixture
def offloading(monkeypatch: pytest.MonkeyPatch) -> None:
    from ferry.config import reset_settings

    monkeypatch.setenv("FERRY_OFFLOAD_LARGE_LITERALS", "1")
    monkeypatch.setenv("FERRY_MAX_LITERAL_BYTES", "64")  # any list of more than a few ints
    reset_settings()


@pytest.mark.parametrize("executor", ["inline", "process"])
def test_a_map_fans_out_over_a_list_offloaded_to_the_metadata_store(executor: str, offloading: None) -> None:
    made = ferry.run(load("made_map"), {"n": 50}, executor=executor)  # a task's output, offloaded
    assert made.status == "succeeded" and made.outputs == sum(x * x for x in range(50)), made.error
    given = ferry.run(load("map_reduce"), {"xs": list(range(30))}, executor=executor)  # the launch's own input
    assert given.status == "succeeded" and given.outputs == sum(x * x for x in range(30)), given.error
    meta = Path(active_settings().metadata_url.removeprefix("file://"))
    assert list((meta / made.id).glob("n0/0/offloaded/o0-*.pb"))  # beside the task's outputs
    assert list((meta / given.id / "inputs" / "offloaded").glob("xs-*.pb"))


def test_an_offloaded_input_is_memoized_by_its_content(marks: Path, offloading: None) -> None:
    wf = load("count_list")
    first, second = (ferry.run(wf, {"xs": list(range(40))}) for _ in range(2))
    assert first.outputs == second.outputs == 40
    assert runs(marks, "counted") == 1  # two offloaded copies in two executions: one value
    ferry.run(wf, {"xs": list(range(41))})
    assert runs(marks, "counted") == 2


def test_the_engine_refuses_a_list_offloaded_outside_the_metadata_store(offloading: None,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from ferry.types import TransferContext

    real = TransferContext.offload

    def into_raw(self: TransferContext, data: bytes, name: str) -> Any:  # as ferry before this version did
        self.meta_prefix = ""
        return real(self, data, name)

    monkeypatch.setattr(TransferContext, "offload", into_raw)
    e = ferry.run(load("made_map"), {"n": 50})
    assert e.status == "failed"
    assert "offloaded to file://" in str(e.error) and "outside the metadata store" in str(e.error)
