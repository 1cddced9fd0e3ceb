"""The server's queue on a real PostgreSQL: two servers never run one execution twice, and a server killed
mid-run is replaced by one that resumes its executions without running finished nodes again."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any, Callable

import pytest
from click.testing import CliRunner

from ferry.cli.main import cli
from ferry.config import reset_settings
from ferry.testing.server import FerryServer

FLOWS = str(Path(__file__).parent / "flows" / "served.py")


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 180) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} never happened")
        time.sleep(0.05)


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.fixture
def database(postgres_server: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    import sqlalchemy as sa

    name = f"q{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(postgres_server.url.replace("postgresql://", "postgresql+psycopg://"),
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    admin.dispose()
    url = postgres_server.url.rsplit("/", 1)[0] + "/" + name
    monkeypatch.setenv("FERRY_DATABASE_URL", url)
    reset_settings()
    return url


def registered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Register the served flows; the folder where their tasks leave marks."""
    monkeypatch.setenv("MARKS", str(tmp_path / "marks"))
    result = CliRunner().invoke(cli, ["register", FLOWS])
    assert result.exit_code == 0, result.output
    return tmp_path / "marks"


@pytest.fixture
def marks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database: str) -> Path:
    return registered(tmp_path, monkeypatch)


def test_two_servers_on_one_database_run_every_execution_exactly_once(marks: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATE", "gate")  # every task waits for the gate: both servers fill up before any ends
    with FerryServer("--max-running", "2") as a, FerryServer("--max-running", "2") as b:
        tags = [f"t{i}" for i in range(12)]
        ids = [(a if i % 2 else b).client().post("/api/v1/executions", {"launch_plan": "served.tagged",
                                                                        "inputs": {"tag": tag}})["id"]
               for i, tag in enumerate(tags)]
        api = a.client()
        wait_for(lambda: sum((marks / t).exists() for t in tags) == 4, "both servers running two executions each")
        running = api.get("/api/v1/executions", status="running")["executions"]
        owners = {e["owner"] for e in running}
        assert len(running) == 4 and {o.split(":")[1] for o in owners} == {str(a.pid), str(b.pid)}
        assert len(api.get("/api/v1/executions", status="queued")["executions"]) == 8  # the rest wait their turn
        (marks / "gate").write_text("open")
        ended = [wait_for(lambda i=i: (e := api.get(f"/api/v1/executions/{i}"))["status"] in ("succeeded", "failed")
                          and e, f"execution {i} ending") for i in ids]
    assert [e["status"] for e in ended] == ["succeeded"] * 12
    assert [e["outputs"]["o0"]["value"] for e in ended] == tags
    assert [lines(marks / t) for t in tags] == [1] * 12  # each task ran once
    assert [e["claims"] for e in ended] == [1] * 12
    assert {e["owner"].split(":")[1] for e in ended} == {str(a.pid), str(b.pid)}


def test_a_server_killed_mid_run_is_replaced_and_finished_nodes_are_not_run_again(marks: Path,
                                                                                   ferry_home: Path) -> None:
    first = FerryServer().start()
    try:
        launched = first.client().post("/api/v1/executions", {"launch_plan": "served.two_steps", "inputs": {"n": 4}})
        heartbeat = ferry_home / "metadata" / launched["id"] / "n1" / "0" / "running.json"
        wait_for(lambda: lines(marks / "gated_step") == 1 and heartbeat.exists(), "the second step running")
    finally:
        first.kill()  # kill -9 of the server and its task processes, mid-run
    (marks / "gate").write_text("open")
    with FerryServer() as second:
        api = second.client()
        e = wait_for(lambda: (x := api.get(f"/api/v1/executions/{launched['id']}"))["status"] in
                     ("succeeded", "failed") and x, "the execution ending under the new server")
        assert e["status"] == "succeeded", e["error"]
        assert e["outputs"]["o0"]["value"] == 50 and e["claims"] == 2
        assert e["owner"].split(":")[1] == str(second.pid)
        assert any("taking over execution" in line and "has exited" in line for line in second.output)
    assert lines(marks / "first") == 1  # finished before the kill: not run again
    assert lines(marks / "gated_step") == 2  # its attempt died with the server: run again
    steps = [(n["path"], n["attempt"], n["status"]) for n in e["nodes"]]
    assert steps == [("n0", 1, "succeeded"), ("n1", 1, "lost"), ("n1", 2, "succeeded")]


def test_a_claim_is_a_compare_and_swap_and_a_dead_owner_is_known(ferry_home: Path) -> None:
    import os
    import socket

    from ferry.config import active_settings
    from ferry.engine.queue import owner_gone
    from ferry.engine.records import ExecutionRecord, Records

    records = Records(active_settings().database_url)
    records.create_execution(ExecutionRecord("e1", "wf", "wf", "queued", 1.0, None, "m", "r", "process", None, None,
                                             None, queued=1.0, claims=0))
    (seen,) = records.claimable()
    assert records.claim(seen, "a:1:x", time.time() + 30) is True
    assert records.claim(seen, "b:2:y", time.time() + 30) is False  # the row changed since b read it
    (taken,) = records.claimable()
    assert (taken.owner, taken.status, taken.claims) == ("a:1:x", "running", 1)
    assert owner_gone(taken, time.time()) is None  # another host, lease running: leave it alone
    assert "lease of a:1:x ran out" in (owner_gone(taken, time.time() + 60) or "")
    gone = ExecutionRecord(**{**taken.__dict__, "owner": f"{socket.gethostname()}:{2**22 + 7}:z"})
    assert "has exited" in (owner_gone(gone, time.time()) or "")
    mine = ExecutionRecord(**{**taken.__dict__, "owner": f"{socket.gethostname()}:{os.getpid()}:z"})
    assert owner_gone(mine, time.time()) is None
    assert records.renew("a:1:x", ["e1"], time.time() + 30) == {"e1": None}
    assert records.request_abort("e1") == "running" and records.renew("a:1:x", ["e1"], 0)["e1"] is not None
    assert records.renew("b:2:y", ["e1"], time.time() + 30) == {}  # not its own
    records.close()


def _queued(name: str, inputs: dict[str, Any]) -> str:
    from ferry.engine.execution import enqueue, prepare
    from ferry.server.values import to_literal_map

    launch = prepare(name)
    types = {n: p.var.type for n, p in launch.launch_plan.spec.default_inputs.parameters.items()}
    return enqueue(launch, to_literal_map(inputs, types, name), executor="inline").id


@pytest.fixture
def local_marks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ferry_home: Path) -> Path:
    return registered(tmp_path, monkeypatch)  # records in the test's own SQLite


def test_a_server_that_lost_its_lease_leaves_the_execution_to_the_new_owner(local_marks: Path) -> None:
    from ferry.config import active_settings
    from ferry.engine.queue import EngineLoop
    from ferry.engine.records import Records

    settings = active_settings()
    execution_id = _queued("served.two_steps", {"n": 4})
    loop = EngineLoop(settings, executor="inline", lease=3.0, poll=0.05)
    loop.start()
    records = Records(settings.database_url)
    try:
        wait_for(lambda: lines(local_marks / "gated_step") == 1, "the second step running under server A")
        (seen,) = [r for r in records.claimable() if r.id == execution_id]
        assert records.claim(seen, "b:2:y", time.time() + 30)  # server B takes it over (A stalled, say)
        (local_marks / "gate").write_text("open")  # A's attempt ends; A learns at its next beat it lost the lease
        wait_for(lambda: execution_id not in loop.running, "server A letting the execution go")
        row = records.get_execution(execution_id)
        assert (row.owner, row.status, row.ended) == ("b:2:y", "running", None)  # A wrote nothing over B's row
    finally:
        loop.stop()
        records.close()


def test_no_attempt_starts_once_the_lease_ran_out_and_the_execution_is_handed_over(local_marks: Path) -> None:
    from ferry.config import active_settings
    from ferry.engine.execution import Control, run_claimed
    from ferry.engine.records import Records

    settings = active_settings()
    execution_id = _queued("served.two_steps", {"n": 4})
    records = Records(settings.database_url)
    try:
        (seen,) = records.claimable()
        lease_until = time.time() - 1  # a server that stalled past its lease before it started anything
        assert records.claim(seen, "a:1:x", lease_until)
        result = run_claimed(execution_id, settings=settings, executor="inline", control=Control("a:1:x", lease_until))
        assert result.status == "aborted" and "lease of a:1:x on the execution ran out" in (result.error or "")
        assert not (local_marks / "first").exists()  # nothing ran
        row = records.get_execution(execution_id)
        assert (row.status, row.owner, row.ended) == ("running", "a:1:x", None)  # left for the next claimer
        records.finish_execution(execution_id, "failed", error="x", owner="someone else")
        assert records.get_execution(execution_id).status == "running"  # only the owner ends an owned run
        records.finish_execution(execution_id, "failed", error="x", owner="a:1:x")
        assert records.get_execution(execution_id).status == "failed"
    finally:
        records.close()
