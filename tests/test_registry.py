"""Registration, launch plans and launches by name: the control plane on compiled specs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import ferry
from ferry.cli.main import cli
from ferry.config import active_settings
from ferry.engine.records import Records

FLOWS = Path(__file__).parent / "flows" / "registered.py"


@pytest.fixture
def flows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the workflows file, and the folders its launch plans and tasks use."""
    copy = tmp_path / "code" / "registered.py"
    copy.parent.mkdir()
    shutil.copy(FLOWS, copy)
    monkeypatch.setenv("MARKS", str(tmp_path / "marks"))
    monkeypatch.setenv("PINNED_RAW", f"file://{tmp_path}/raw-pinned")
    return copy


def ferry_cli(*args: str) -> Any:
    result = CliRunner().invoke(cli, list(args))
    return result


def registrations() -> list[Any]:
    records = Records(active_settings().database_url)
    try:
        return [r for kind in ("task", "workflow", "launch plan") for r in records.registrations(kind)]
    finally:
        records.close()


def output_file_uri(execution_id: str) -> str:
    records = Records(active_settings().database_url)
    try:
        from ferry.literals import parse_literal_map
        from ferry.storage import read_bytes

        rec = records.get_execution(execution_id)
        outputs = parse_literal_map(read_bytes(rec.outputs_uri or ""))
        return outputs.literals["o0"].scalar.blob.uri
    finally:
        records.close()


def last_execution() -> Any:
    records = Records(active_settings().database_url)
    try:
        return records.list_executions(1)[0]
    finally:
        records.close()


def test_register_lists_and_launches_by_name(flows: Path) -> None:
    result = ferry_cli("register", str(flows))
    assert result.exit_code == 0, result.output
    assert "registered workflow registered.greeting@" in result.output
    assert "registered launch plan greeting.loud@" in result.output

    listed = ferry_cli("workflows", "list")
    assert "registered.greeting" in listed.output and "inputs: name: str, times: int" in listed.output
    plans = ferry_cli("launchplans", "list")
    assert "greeting.loud" in plans.output and "times: int (has default)" in plans.output
    assert "greeting.pinned" in plans.output and "fixed: name" in plans.output

    launched = ferry_cli("launch", "greeting.loud", "--name", "x")
    assert launched.exit_code == 0, launched.output
    with open(ferry.File(output_file_uri(last_execution().id))) as fh:
        assert fh.read() == "hello x hello x hello x"


def test_registering_unchanged_code_again_is_a_no_op(flows: Path) -> None:
    first = ferry_cli("register", str(flows))
    count = len(registrations())
    again = ferry_cli("register", str(flows))
    assert again.exit_code == 0, again.output
    assert "registered " not in again.output.replace("0 registered", "")
    assert "unchanged  workflow registered.greeting@" in again.output
    assert len(registrations()) == count and first.exit_code == 0


def test_changed_code_gets_a_new_version_and_the_old_one_is_refused_to_run(flows: Path) -> None:
    assert ferry_cli("register", str(flows), "--version", "v1").exit_code == 0
    flows.write_text(flows.read_text().replace('f"hello {name}"', 'f"hi {name}"'))
    refused = ferry_cli("register", str(flows), "--version", "v1")
    assert refused.exit_code == 1
    assert "already registered with different content" in refused.output and "new version" in refused.output
    assert ferry_cli("register", str(flows), "--version", "v2").exit_code == 0
    versions = {r.version for r in registrations() if r.name == "registered.greeting"}
    assert versions == {"v1", "v2"}

    new = ferry_cli("launch", "greeting.loud@v2", "--name", "y")
    assert new.exit_code == 0, new.output
    with open(ferry.File(output_file_uri(last_execution().id))) as fh:
        assert fh.read() == "hi y hi y hi y"
    old = ferry_cli("launch", "greeting.loud@v1", "--name", "y")
    assert old.exit_code == 1
    assert "has changed since this version was registered" in old.output


def test_raw_output_prefix_resolution(flows: Path, tmp_path: Path) -> None:
    reg_raw, exec_raw = f"file://{tmp_path}/raw-registration", f"file://{tmp_path}/raw-execution"
    assert ferry_cli("register", str(flows), "--raw-output-prefix", reg_raw).exit_code == 0

    assert ferry_cli("launch", "greeting.pinned").exit_code == 0  # the launch plan's own
    assert output_file_uri(last_execution().id).startswith(os.environ["PINNED_RAW"] + "/")
    assert last_execution().raw_output_source == "launch plan"

    assert ferry_cli("launch", "greeting.loud", "--name", "a").exit_code == 0  # the registration's default
    assert output_file_uri(last_execution().id).startswith(reg_raw + "/")
    assert last_execution().raw_output_source == "registration"

    result = ferry_cli("launch", "greeting.pinned", "--raw-output-prefix", exec_raw)  # the execution's, over all
    assert result.exit_code == 0, result.output
    assert output_file_uri(last_execution().id).startswith(exec_raw + "/")
    shown = ferry_cli("executions", "show")
    assert f"raw output prefix: {exec_raw}  (from the execution)" in shown.output
    assert "launch plan: greeting.pinned@" in shown.output

    from ferry.runtime.load import load_object

    execution = ferry.run(load_object(str(flows), "greeting", "workflow"), {"name": "b"})  # the settings'
    assert execution.status == "succeeded", execution.error
    assert output_file_uri(execution.id).startswith(active_settings().raw_output_prefix + "/")
    assert last_execution().raw_output_source == "settings"


@pytest.mark.parametrize("args, message", [
    (["launch", "nope.plan"], "No launch plan named 'nope.plan' is registered"),
    (["launch", "greeting.loud@zzz", "--name", "a"], "has no version 'zzz'; registered versions:"),
    (["launch", "greeting.loud"], "needs input(s) --name"),
    (["launch", "greeting.loud", "--name", "a", "--colour", "red"], "has no input 'colour'"),
    (["launch", "greeting.loud", "--name", "a", "--times", "many"], "--times: can't read 'many' as int"),
    (["launch", "greeting.pinned", "--name", "other"], "fixes input(s) ['name']; a launch can't change them"),
], ids=["unknown-plan", "unknown-version", "missing-input", "unknown-input", "bad-type", "fixed-input"])
def test_bad_launches_are_refused_before_anything_runs(flows: Path, args: list[str], message: str) -> None:
    assert ferry_cli("register", str(flows)).exit_code == 0
    result = ferry_cli(*args)
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    records = Records(active_settings().database_url)
    assert records.list_executions() == []  # nothing was started


def test_overriding_a_fixed_input_from_python_is_refused(flows: Path) -> None:
    assert ferry_cli("register", str(flows)).exit_code == 0
    from ferry.engine.execution import LaunchError

    with pytest.raises(LaunchError, match=r"fixes input\(s\) \['name'\]"):
        ferry.launch("greeting.pinned", {"name": "other"})
    execution = ferry.launch("greeting.pinned", {"times": 2})
    assert execution.status == "succeeded", execution.error
    with open(execution.outputs["o0"]) as fh:
        assert fh.read() == "hello ferry hello ferry"
    assert repr(execution) == f"<ferry Execution {execution.id} succeeded>"
    version = next(r.version for r in registrations() if r.kind == "launch plan" and r.name == "greeting.pinned")
    again = ferry.launch(f"greeting.pinned@{version}", {"times": 1})  # NAME@VERSION, as the CLI and the API take
    assert again.status == "succeeded", again.error


def test_ferry_run_takes_a_task_and_says_what_it_takes(flows: Path) -> None:
    from ferry.errors import InterfaceError
    from ferry.runtime.load import load_module

    module = load_module(str(flows))
    one = ferry.run(module.greet, {"name": "x", "times": 2})  # a task: a workflow of one node
    assert one.status == "succeeded", one.error
    with pytest.raises(InterfaceError, match="runs a @workflow or a @task"):
        ferry.run(print, {})
    with pytest.raises(InterfaceError, match=r"inputs are a dict \{name: value\}; got list"):
        ferry.run(module.greeting, ["x"])  # type: ignore[arg-type]


@pytest.mark.parametrize("kwargs, message", [
    ({"default_inputs": {"colour": 1}}, r"\['colour'\] are not inputs of"),
    ({"default_inputs": {"times": 1}, "fixed_inputs": {"times": 2}}, r"both default and fixed"),
    ({"default_inputs": {"times": "many"}}, r"expected int, got str"),
])
def test_launch_plan_declarations_are_checked(kwargs: dict[str, Any], message: str) -> None:
    from ferry.errors import FerryError
    from ferry.runtime.load import load_module

    module = load_module(str(FLOWS))
    with pytest.raises(FerryError, match=message):
        ferry.LaunchPlan(module.greeting, "bad", **kwargs)


def _bundle(flows: Path, version: str) -> Any:
    from ferry.runtime.load import entities, load_module
    from ferry.sdk.compile import bundle

    return bundle(list(entities(load_module(str(flows))).values()), version, None)


def test_registry_refuses_an_inconsistent_bundle_and_writes_nothing(flows: Path, ferry_home: Path) -> None:
    from flyteidl.core import literals_pb2

    from ferry.engine.registry import RegistrationError, Registry

    records = Records(active_settings().database_url)
    registry = Registry(active_settings(), records)
    missing_task = _bundle(flows, "v1")
    missing_task.tasks = [t for t in missing_task.tasks if t.template.id.name != "registered.greet"]
    with pytest.raises(RegistrationError, match="task registered.greet@v1 is not in the closure"):
        registry.register(missing_task)

    bad_default = _bundle(flows, "v2")
    loud = next(lp for lp in bad_default.launch_plans if lp.id.name == "greeting.loud")
    loud.spec.default_inputs.parameters["times"].default.CopyFrom(
        literals_pb2.Literal(scalar=literals_pb2.Scalar(primitive=literals_pb2.Primitive(string_value="3"))))
    with pytest.raises(RegistrationError, match=r"value of 'times' doesn't fit its type int"):
        registry.register(bad_default)

    orphan = _bundle(flows, "v3")
    orphan.workflows = []
    with pytest.raises(RegistrationError, match=r"needs workflow registered\.\w+@v3: No workflow named"):
        registry.register(orphan)
    records.close()
    assert registrations() == []
    assert not (ferry_home / "metadata" / "registry").exists()  # not one spec file written


def test_a_corrupt_spec_is_a_clear_error(flows: Path) -> None:
    assert ferry_cli("register", str(flows), "--version", "v1").exit_code == 0
    spec = next(r for r in registrations() if r.kind == "workflow" and r.name == "registered.greeting")
    Path(spec.uri[len("file://"):]).write_bytes(b"\x0bnot a protobuf")
    result = ferry_cli("launch", "greeting.loud", "--name", "a")
    assert result.exit_code == 1 and "is corrupt" in result.output and "Traceback" not in result.output


def test_registered_outputs_read_back_without_the_code(flows: Path) -> None:
    assert ferry_cli("register", str(flows)).exit_code == 0
    execution = ferry.launch("registered.files_and_frames", {"n": 4})
    assert execution.status == "succeeded", execution.error
    assert execution.outputs == {"o0": "4 lines, sum 6"}


@pytest.mark.parametrize("uri, error, message", [
    ("foo://bucket/ref.bin", "UnknownProtocolError", "Input 'ref' refers to foo://bucket/ref.bin"),
    ("file:///no/such/ref.bin", "ObjectNotFoundError", "input 'ref': file:///no/such/ref.bin"),
])
def test_launch_inputs_that_refer_to_nothing_fail_at_launch(uri: str, error: str, message: str) -> None:
    from ferry.runtime.load import load_object

    wf = load_object(str(Path(__file__).parent / "flows" / "cluster.py"), "read_reference", "workflow")
    with pytest.raises(Exception) as raised:
        ferry.run(wf, {"ref": ferry.File(uri), "n": 1})
    assert type(raised.value).__name__ == error and message in str(raised.value)
    assert Records(active_settings().database_url).list_executions() == []  # nothing was started
