"""Each attempt's stdout and stderr are kept beside its outputs and shown by `ferry executions logs`."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import ferry
from ferry.cli.main import cli
from ferry.runtime.load import load_object

FLOWS = Path(__file__).parent / "flows" / "limits.py"


@pytest.mark.parametrize("executor", ["inline", "process", "dask"])
def test_each_attempt_keeps_what_it_printed(executor: str) -> None:
    execution = ferry.run(load_object(str(FLOWS), "chatter", "workflow"), {"xs": [1, 2, -3]}, executor=executor)
    assert execution.status == "failed"
    runner = CliRunner()
    one = runner.invoke(cli, ["executions", "logs", execution.id, "n0-1"])
    assert one.exit_code == 0, one.output
    assert "hello from chatty 2" in one.output and "a warning from chatty 2" in one.output
    assert "chatty 1" not in one.output  # only this attempt's lines, though elements ran side by side
    if executor == "process":
        assert "child process of chatty 2" in one.output  # a child process's output, captured by descriptor
    failed = runner.invoke(cli, ["executions", "logs", execution.id, "n0-2", "--attempt", "1"])
    assert "ValueError: negative -3" in failed.output and "Traceback" in failed.output
    everything = runner.invoke(cli, ["executions", "logs", execution.id])
    assert "== n0-0 " in everything.output and "== n0-2 " in everything.output
    missing = runner.invoke(cli, ["executions", "logs", execution.id, "n9"])
    assert missing.exit_code == 1 and "no task attempt n9" in missing.output


def test_only_the_tail_of_a_long_log_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    from ferry.runtime import logs

    monkeypatch.setattr(logs, "LOG_LIMIT", 100)
    with logs.capture("thread") as printed:
        print("x" * 500)
    tail = printed.tail().decode()
    assert tail.startswith("[... 401 earlier bytes not kept ...]\n") and tail.endswith("x" * 99 + "\n")
