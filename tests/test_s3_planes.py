"""S3 end to end with the planes separated by real credentials (SeaweedFS access control)."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

import ferry
from ferry.config import active_settings, reset_settings
from ferry.errors import AccessDeniedError
from ferry.literals import parse_literal_map, references
from ferry.runtime.load import load_object
from ferry.storage import read_bytes, write_bytes

FLOWS = str(Path(__file__).parent / "flows" / "cluster.py")


def load(name: str) -> Any:
    return load_object(FLOWS, name, "workflow")


@pytest.fixture
def separated(s3_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The engine holds only its own identity (meta); tasks read a settings file with theirs."""
    run = uuid.uuid4().hex[:8]
    urls = {"metadata_url": f"s3://meta/{run}", "raw_output_prefix": f"s3://raw/{run}",
            "persistent_url": f"s3://persistent/{run}"}
    tasks = s3_server.options_for("tasks")
    worker_toml = tmp_path / "worker.toml"
    lines = [f'{k} = "{v}"' for k, v in urls.items()]
    for store in ("metadata", "raw", "persistent"):
        lines += [f"[stores.{store}]", f'key = "{tasks["key"]}"', f'secret = "{tasks["secret"]}"',
                  f'client_kwargs = {{ endpoint_url = "{s3_server.endpoint}", region_name = "us-east-1" }}']
    worker_toml.write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("FERRY_METADATA_URL", urls["metadata_url"])
    monkeypatch.setenv("FERRY_RAW_OUTPUT_PREFIX", urls["raw_output_prefix"])
    monkeypatch.setenv("FERRY_PERSISTENT_URL", urls["persistent_url"])
    monkeypatch.setenv("FERRY_METADATA_OPTIONS", json.dumps(s3_server.options_for("engine")))
    monkeypatch.setenv("FERRY_WORKER_CONFIG", str(worker_toml))
    reset_settings()
    return {"urls": urls, "tasks": tasks, "engine": s3_server.options_for("engine")}


@pytest.mark.parametrize("executor", ["process", "dask"])
def test_workflow_with_files_and_frames_while_the_engine_holds_only_meta(separated: dict[str, Any], executor: str) -> None:
    settings = active_settings()
    assert settings.options_for(settings.raw_output_prefix) == {}  # the engine has no raw credentials
    execution = ferry.run(load("files_and_frames"), {"n": 2048}, executor=executor)
    assert execution.status == "succeeded", execution.error
    summary = execution.output_literals.literals["o0"].scalar.primitive.string_value
    assert summary == "2048 bytes, 48 rows"
    # the engine recorded everything it needs from meta...
    from ferry.engine.records import Records

    produced = [n for n in Records(settings.database_url).nodes(execution.id) if n.label.endswith("make")][0]
    outputs = parse_literal_map(read_bytes(f"{produced.prefix}/outputs.pb", settings.options_for(settings.metadata_url)))
    raw_uris = [uri for lit in outputs.literals.values() for uri in references(lit)]
    assert len(raw_uris) == 2 and all(u.startswith(separated["urls"]["raw_output_prefix"]) for u in raw_uris)
    # ...and would be denied reading what the tasks wrote there
    for uri in raw_uris:
        with pytest.raises(AccessDeniedError, match="raw store"):
            read_bytes(uri, separated["engine"], "raw")


def test_engine_is_denied_on_raw_with_its_identity(separated: dict[str, Any]) -> None:
    with pytest.raises(AccessDeniedError):
        read_bytes(f"{separated['urls']['raw_output_prefix']}/anything", separated["engine"], "raw")
    write_bytes(f"{separated['urls']['metadata_url']}/probe.pb", b"ok", separated["engine"])


def test_dataset_on_s3_read_by_dask_workers(separated: dict[str, Any]) -> None:
    uri = f"{separated['urls']['persistent_url']}/refs/genome.bin"
    write_bytes(uri, bytes(range(256)) * 100, separated["tasks"], "persistent")
    execution = ferry.run(load("read_reference"), {"ref": ferry.File(uri), "n": 3}, executor="dask")
    assert execution.status == "succeeded", execution.error
    assert execution.output_literals.literals["o0"].scalar.primitive.integer == 3 * (sum(range(256)) * 100 % 1000) + 3


def test_a_store_outage_mid_workflow_is_survived(s3_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store stops right before the engine reads its 10th outputs.pb and comes back once the engine has
    retried that read: the outage starts at a known point, a retry surely happens, nothing depends on timing.

    (A read, not a write: a PUT to a stopped server waits for "100 Continue" with no timeout, so it is held
    until the server returns instead of being retried.)"""
    from ferry.storage import io

    run = uuid.uuid4().hex[:8]
    options = {**s3_server.options(), "config_kwargs": {"connect_timeout": 1, "read_timeout": 1,
                                                        "retries": {"max_attempts": 1}}}
    monkeypatch.setenv("FERRY_METADATA_URL", f"s3://meta/{run}")
    monkeypatch.setenv("FERRY_RAW_OUTPUT_PREFIX", f"s3://raw/{run}")
    for store in ("METADATA", "RAW"):
        monkeypatch.setenv(f"FERRY_{store}_OPTIONS", json.dumps(options))
    reset_settings()
    wf = load_object(str(Path(__file__).parent / "flows" / "pipeline.py"), "map_reduce", "workflow")
    lock = threading.Lock()
    seen = {"outputs": 0, "retries": 0, "paused": False, "resumed": False}

    def outage(event: str, detail: str) -> None:
        with lock:
            if event == "read" and detail.endswith("/outputs.pb"):
                seen["outputs"] += 1
                if seen["outputs"] == 10:  # this very read meets the outage
                    s3_server.pause()
                    seen["paused"] = True
            elif event == "retry" and seen["paused"]:
                seen["retries"] += 1
                if not seen["resumed"]:
                    s3_server.resume()
                    seen["resumed"] = True

    monkeypatch.setattr(io, "observers", [outage])
    try:
        execution = ferry.run(wf, {"xs": list(range(60))}, executor="process", executor_options={"workers": 2})
    finally:
        s3_server.resume()
    assert seen["paused"] and seen["resumed"] and seen["retries"] >= 1  # the engine met the outage and retried
    assert execution.status == "succeeded", execution.error
    assert execution.outputs == sum(x * x for x in range(60))  # nothing lost or duplicated
    from ferry.engine.records import Records

    nodes = Records(active_settings().database_url).nodes(execution.id)
    succeeded = [n.path for n in nodes if n.kind == "task" and n.status == "succeeded"]
    assert sorted(succeeded) == sorted(set(succeeded)) and len(succeeded) == 61
