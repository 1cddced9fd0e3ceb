"""Flyte's own packages on ferry's engine: `pyflyte package` output registered and launched, each task run by
`pyflyte-execute` in an environment that has flytekit; data (Files, dataclasses) passes between Flyte and ferry."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import ferry
from ferry.cli.main import cli
from ferry.config import active_settings
from ferry.engine.records import Records

FLOWS = Path(__file__).parent / "flows"
BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


@pytest.fixture(scope="session")
def flytekit_bin() -> Path:
    """The bin folder of a venv with flytekit (made once, as the benchmarks make it)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import flytekit_env
    finally:
        sys.path.remove(str(BENCHMARKS))
    found = flytekit_env.flytekit()
    assert found.python, f"flytekit could not be installed in a venv of its own: {found.why}"
    return Path(found.python).parent


@pytest.fixture(scope="session")
def package(flytekit_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Flyte project under tests/flows/flyte, packaged by pyflyte."""
    folder = tmp_path_factory.mktemp("flyte-project")
    shutil.copy(FLOWS / "flyte" / "fkwf.py", folder / "fkwf.py")
    out = subprocess.run([str(flytekit_bin / "pyflyte"), "--pkgs", "fkwf", "package", "--output", "pkg.tgz", "--force"],
                         cwd=folder, capture_output=True, text=True,
                         env={**os.environ, "HOME": str(folder), "TMPDIR": str(folder)})  # flytekit leaves folders there
    assert out.returncode == 0, out.stdout + out.stderr
    return folder / "pkg.tgz"


@pytest.fixture
def flyte_env(flytekit_bin: Path, package: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Task processes find pyflyte-execute and the project's module, as a Flyte task's image would give them."""
    monkeypatch.setenv("PATH", f"{flytekit_bin}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(package.parent), os.environ.get("PYTHONPATH")])))


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def test_a_flyte_package_registers_and_runs(package: Path, flyte_env: None) -> None:
    import tempfile

    def flytekits_folders() -> set[str]:  # pyflyte-execute makes two in the temporary folder each time
        return {name for name in os.listdir(tempfile.gettempdir()) if name.startswith("flyte")}

    before = flytekits_folders()
    registered = invoke("register", str(package))
    assert registered.exit_code == 0, registered.output
    assert "registered workflow fkwf.wf@" in registered.output and "registered task fkwf.count@" in registered.output
    again = invoke("register", str(package))
    assert "0 registered" in again.output  # same package, same version: nothing new

    launched = invoke("launch", "fkwf.wf", "--n", "2", "--executor", "process")
    assert launched.exit_code == 0, launched.output
    assert "{'count': 4, 'name': 'out.txt'}" in launched.output  # flytekit's dataclass, shown as its fields
    from_python = ferry.launch("fkwf.wf", {"n": 1}, executor="process")
    stats = from_python.outputs["o0"]  # read by its registered type: a dataclass, without flytekit's code
    assert (stats.count, stats.name) == (2, "out.txt")
    execution = Records(active_settings().database_url).list_executions(1)[0]
    nodes = {n.path: n for n in Records(active_settings().database_url).nodes(execution.id)}
    assert nodes["n0"].status == nodes["n1"].status == "succeeded"
    assert flytekits_folders() == before  # their temporary folder went with their attempts'


def test_a_flyte_task_reads_a_list_ferry_offloaded(package: Path, flyte_env: None,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """flytekit's type engine reads a LiteralOffloadedMetadata input itself, from the metadata store."""
    from ferry.config import reset_settings

    assert invoke("register", str(package)).exit_code == 0
    monkeypatch.setenv("FERRY_OFFLOAD_LARGE_LITERALS", "1")
    monkeypatch.setenv("FERRY_MAX_LITERAL_BYTES", "64")
    reset_settings()
    e = ferry.launch("fkwf.total_wf", {"xs": list(range(100))}, executor="process")
    assert e.status == "succeeded", e.error
    assert e.outputs["o0"] == sum(range(100))
    from ferry.storage import read_bytes

    node = {n.path: n for n in Records(active_settings().database_url).nodes(e.id)}["n0"]
    inputs = node.meta("inputs.pb", read_bytes)
    assert inputs is not None and inputs.literals["xs"].HasField("offloaded_metadata")  # it did travel offloaded


def test_a_failing_flyte_task_is_read_from_its_error_document(package: Path, flyte_env: None) -> None:
    assert invoke("register", str(package)).exit_code == 0
    failed = invoke("launch", "fkwf.failing", "--n", "3", "--executor", "process")
    assert failed.exit_code == 1
    assert "fkwf.boom failed (user error" in failed.output and "boom 3" in failed.output  # pyflyte-execute exits 0


def test_dataclasses_and_files_pass_between_flyte_and_ferry(package: Path, flyte_env: None) -> None:
    from ferry.engine.execution import prepare, start
    from ferry.runtime.load import load_object

    assert invoke("register", str(package)).exit_code == 0
    assert invoke("launch", "fkwf.wf", "--n", "1", "--executor", "process").exit_code == 0
    flyte_out = Records(active_settings().database_url).list_executions(1)[0]
    from ferry.literals import parse_literal_map
    from ferry.storage import read_bytes

    stats_literal = parse_literal_map(read_bytes(flyte_out.outputs_uri or "")).literals["o0"]
    assert stats_literal.scalar.binary.tag == "msgpack"

    # flytekit's dataclass feeds a ferry task...
    stats_flows = load_object(str(FLOWS / "stats.py"), "doubled", "workflow")
    from ferry.types import TransferContext, default_engine

    stats_type = stats_flows.interface.inputs["s"]
    ctx = TransferContext(active_settings(), active_settings().raw_output_prefix)
    value = default_engine().to_python(stats_literal, stats_type, ctx)
    assert value == stats_type(count=2, name="out.txt")
    ferry_run = ferry.run(stats_flows, {"s": value}, executor="process")
    assert ferry_run.status == "succeeded", ferry_run.error

    # ...and what ferry writes (a dataclass, a File on file://) feeds a flytekit task back
    launch = prepare("fkwf.describe_wf")
    given = ferry_run.output_literals
    inputs = type(given)()
    inputs.literals["s"].CopyFrom(given.literals["o0"])
    inputs.literals["f"].CopyFrom(given.literals["o1"])
    result = start(launch, inputs, executor="process")
    assert result.status == "succeeded", result.error
    assert result.outputs.literals["o0"].scalar.primitive.string_value == "OUT.TXT has 4, the file says from ferry"


def _tarball(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_bad_packages_are_refused_whole(tmp_path: Path, package: Path) -> None:
    from flyteidl.admin import task_pb2

    corrupt = tmp_path / "corrupt.tgz"
    corrupt.write_bytes(b"\x1f\x8b not really gzip")
    result = invoke("register", str(corrupt))
    assert result.exit_code == 1 and "is not a readable package" in result.output

    empty = _tarball(tmp_path / "empty.tgz", {"README.txt": b"hello"})
    assert "holds no .pb specs; it is not a Flyte package" in invoke("register", str(empty)).output

    garbage = _tarball(tmp_path / "garbage.tgz", {"0_x.t_1.pb": b"\xff\xff\xff not a spec"})
    assert "0_x.t_1.pb is not a valid task spec" in invoke("register", str(garbage)).output

    spark = task_pb2.TaskSpec()
    spark.template.id.name = "jobs.spark_job"
    spark.template.type = "spark"
    with tarfile.open(package) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
    members["9_jobs.spark_job_1.pb"] = spark.SerializeToString()
    plugin = _tarball(tmp_path / "plugin.tgz", members)
    result = invoke("register", str(plugin))
    assert result.exit_code == 1
    assert "Task jobs.spark_job@" in result.output and "is a 'spark' task" in result.output
    assert Records(active_settings().database_url).registrations("workflow") == []  # nothing registered half-way
