"""Task processes get a minimal environment when the workers have settings of their own: no engine secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

import ferry
from ferry.config import reset_settings
from ferry.runtime.load import load_object

FLOWS = Path(__file__).parent / "flows" / "limits.py"
NAMES = ["AWS_SECRET_ACCESS_KEY", "ENGINE_ONLY", "FERRY_METADATA_OPTIONS", "NAMED_FOR_TASKS", "PATH", "FERRY_CONFIG"]


@pytest.mark.parametrize("executor", ["process", "dask"])
def test_tasks_see_only_a_minimal_environment_plus_what_the_worker_settings_name(
        executor: str, tmp_path: Path, ferry_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    worker = tmp_path / "worker.toml"
    worker.write_text(f'metadata_url = "file://{ferry_home}/metadata"\nraw_output_prefix = "file://{ferry_home}/raw"\n'
                      'task_env = ["NAMED_FOR_TASKS"]\n')
    monkeypatch.setenv("FERRY_WORKER_CONFIG", str(worker))
    monkeypatch.setenv("FERRY_METADATA_OPTIONS", '{"auto_mkdir": true}')
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "engine-secret")
    monkeypatch.setenv("ENGINE_ONLY", "x")
    monkeypatch.setenv("NAMED_FOR_TASKS", "4")
    reset_settings()
    execution = ferry.run(load_object(str(FLOWS), "show_environment", "workflow"), {"names": NAMES}, executor=executor)
    assert execution.status == "succeeded", execution.error
    seen = execution.outputs
    assert seen["AWS_SECRET_ACCESS_KEY"] == "" and seen["ENGINE_ONLY"] == "" and seen["FERRY_METADATA_OPTIONS"] == ""
    assert seen["NAMED_FOR_TASKS"] == "4" and seen["PATH"] and seen["FERRY_CONFIG"] == str(worker)


def test_task_env_must_be_a_list_of_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    worker = tmp_path / "worker.toml"
    worker.write_text('task_env = "NAMED_FOR_TASKS"\n')
    monkeypatch.setenv("FERRY_WORKER_CONFIG", str(worker))
    reset_settings()
    execution = ferry.run(load_object(str(FLOWS), "show_environment", "workflow"), {"names": ["PATH"]},
                          executor="process")
    assert execution.status == "failed" and "task_env must be a list of variable names" in (execution.error or "")
