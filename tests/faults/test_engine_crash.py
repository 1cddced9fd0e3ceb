"""Exactly one running attempt per node across an engine crash: resume adopts what still runs or has finished,
and starts a new attempt only for one that is known dead; the records end consistent, durations true."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from ferry.cli.main import cli
from ferry.config import active_settings
from ferry.engine.records import Records

pytestmark = pytest.mark.faults
FLOWS = Path(__file__).parent.parent / "flows" / "pipeline.py"


def wait_for(predicate: object, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} never happened")
        time.sleep(0.05)


def runs(marks: Path, name: str) -> int:
    path = marks / name
    return len(path.read_text().splitlines()) if path.exists() else 0


def heartbeats(home: Path) -> list[Path]:
    return list((home / "metadata").rglob("running.json"))


def node_details() -> list[str]:
    db = active_settings().database_url[len("sqlite:///"):]
    with sqlite3.connect(db) as conn:
        return [row[0] or "" for row in conn.execute("SELECT detail FROM nodes")]


@pytest.fixture
def marks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MARKS", str(tmp_path / "marks"))
    return tmp_path / "marks"


def start_engine(*, own_group: bool, executor: str = "process") -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "ferry.cli.main", "run", str(FLOWS), "two_steps", "--x", "4",
                             "--executor", executor], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=own_group)


def node_statuses() -> dict[tuple[str, int], str]:
    db = active_settings().database_url[len("sqlite:///"):]
    with sqlite3.connect(db) as conn:
        return {(path, attempt): status for path, attempt, status in
                conn.execute("SELECT path, attempt, status FROM nodes WHERE kind = 'task'")}


def test_resume_adopts_an_attempt_that_outlived_the_engine(marks: Path, ferry_home: Path) -> None:
    engine = start_engine(own_group=False)
    wait_for(lambda: runs(marks, "slow") == 1 and heartbeats(ferry_home), "the slow task's first heartbeat")
    engine.kill()  # the engine alone: its warm worker goes on running the task
    engine.communicate(timeout=30)
    execution = Records(active_settings().database_url).list_executions(1)[0]
    assert execution.status == "running"

    resumed = subprocess.Popen([sys.executable, "-m", "ferry.cli.main", "executions", "resume", execution.id],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for(lambda: any(d.startswith("adopted after resume: still running") for d in node_details()),
             "the resumed engine adopting the running attempt")
    (marks / "gate").write_text("open")  # now the old attempt may finish
    output, _ = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, output
    assert "o0 = 50" in output
    assert runs(marks, "slow") == 1 and runs(marks, "first") == 1  # nothing ran twice

    records = Records(active_settings().database_url)
    nodes = [n for n in records.nodes(execution.id) if n.kind == "task"]
    assert sorted((n.path, n.attempt, n.status) for n in nodes) == [("n0", 0, "succeeded"), ("n1", 0, "succeeded")]
    assert records.get_execution(execution.id).status == "succeeded"
    slow = next(n for n in nodes if n.path == "n1")
    outputs_written = (ferry_home / "metadata" / execution.id / "n1" / "0" / "outputs.pb").stat().st_mtime
    assert slow.ended == pytest.approx(outputs_written, abs=0.01)  # ended when it ended, not when resume noticed


def test_resume_reruns_an_attempt_that_died_with_the_engine(marks: Path, ferry_home: Path) -> None:
    engine = start_engine(own_group=True)
    wait_for(lambda: runs(marks, "slow") == 1 and heartbeats(ferry_home), "the slow task's first heartbeat")
    os.killpg(engine.pid, signal.SIGKILL)  # the engine and its workers: the attempt is gone
    engine.communicate(timeout=30)
    execution = Records(active_settings().database_url).list_executions(1)[0]
    (marks / "gate").write_text("open")

    resumed = CliRunner().invoke(cli, ["executions", "resume", execution.id])
    assert resumed.exit_code == 0, resumed.output
    assert "o0 = 50" in resumed.output
    assert runs(marks, "slow") == 2 and runs(marks, "first") == 1

    nodes = [n for n in Records(active_settings().database_url).nodes(execution.id) if n.kind == "task"]
    slow = sorted((n.attempt, n.status) for n in nodes if n.path == "n1")
    assert slow == [(0, "lost"), (1, "succeeded")]
    lost = next(n for n in nodes if n.path == "n1" and n.attempt == 0)
    assert "has exited" in (lost.error or "")
    assert not [n for n in nodes if n.status == "running"]


def test_resume_of_an_inline_engine_takes_kept_outputs_and_reruns_what_died_with_it(marks: Path,
                                                                                      ferry_home: Path) -> None:
    engine = start_engine(own_group=True, executor="inline")
    wait_for(lambda: runs(marks, "slow") == 1 and node_statuses().get(("n0", 0)) == "succeeded",
             "the first node recorded and the slow task running in the engine's process")
    os.killpg(engine.pid, signal.SIGKILL)
    engine.communicate(timeout=30)
    execution = Records(active_settings().database_url).list_executions(1)[0]
    first = ferry_home / "metadata" / execution.id / "n0" / "0"
    assert not (first / "outputs.pb").exists()  # an in-process attempt's small outputs live in its record
    (marks / "gate").write_text("open")

    resumed = CliRunner().invoke(cli, ["executions", "resume", execution.id])
    assert resumed.exit_code == 0, resumed.output
    assert "o0 = 50" in resumed.output
    assert runs(marks, "first") == 1 and runs(marks, "slow") == 2  # taken from the record; rerun, as it died
    nodes = [n for n in Records(active_settings().database_url).nodes(execution.id) if n.kind == "task"]
    assert sorted((n.path, n.attempt, n.status) for n in nodes) == [
        ("n0", 0, "succeeded"), ("n1", 0, "lost"), ("n1", 1, "succeeded")]
    shown = CliRunner().invoke(cli, ["executions", "show", execution.id, "--json"])
    assert shown.exit_code == 0, shown.output
    kept = next(n for n in json.loads(shown.output)["nodes"] if n["path"] == "n0")
    assert (kept["inputs"]["x"]["value"], kept["outputs"]["o0"]["value"]) == (4, 5)  # shown like any other
