"""The examples newcomers read first must run as documented."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

import ferry
from ferry.cli.main import cli
from ferry.config import active_settings
from ferry.engine.records import Records
from ferry.runtime.load import load_module

EXAMPLES = Path(__file__).parent.parent / "examples"


def test_quickstart_runs_and_shows_meta_values() -> None:
    runner = CliRunner()
    ran = runner.invoke(cli, ["run", str(EXAMPLES / "quickstart.py"), "wf", "--a", "3", "--b", "hello"])
    assert ran.exit_code == 0, ran.output
    assert "o1 = 3" in ran.output and "greeting.txt (file, 18 B)" in ran.output
    shown = runner.invoke(cli, ["executions", "show"])
    assert "a = 3" in shown.output and "b = 'hello'" in shown.output
    inspected = runner.invoke(cli, ["inspect", str(EXAMPLES / "quickstart.py"), "my_task"])
    assert 'description: "My input integer"' in inspected.output


def test_quickstart_as_a_script(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, str(EXAMPLES / "quickstart.py")], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("2 lines in file://")


def test_genomics_pipeline_reads_the_reference_once_per_node() -> None:
    genomics = load_module(str(EXAMPLES / "genomics.py"))
    reference = ferry.File(genomics.upload_reference())
    execution = ferry.run(genomics.genomics, {"reference": reference, "samples": 3}, executor="process",
                          executor_options={"workers": 2})
    assert execution.status == "succeeded", execution.error
    report = execution.outputs
    assert list(report["sample"]) == ["sample-0.txt", "sample-1.txt", "sample-2.txt"]
    assert (report["kmer_hits"] > 0).all()
    from ferry.datasets import node_cache

    assert node_cache().stats().per_dataset["refs"]["misses"] == 1  # three tasks, one download


def test_training_pipeline_is_memoized() -> None:
    training = load_module(str(EXAMPLES / "training.py"))
    first = ferry.run(training.training, {"rows": 500})
    second = ferry.run(training.training, {"rows": 500})
    assert first.outputs[1] == second.outputs[1] and first.outputs[1].mse < 0.05
    statuses = {n.label: n.status for n in Records(active_settings().database_url).nodes(second.id)}
    assert statuses["training.train"] == "cached"


def test_cluster_demo_runs_over_seaweedfs_and_dask() -> None:
    out = subprocess.run([sys.executable, str(EXAMPLES / "cluster" / "demo.py")], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "succeeded" in out.stdout and "s3://raw/demo/" in out.stdout
    assert "node cache:" in out.stdout and "worker node-" in out.stdout and "tcp://127.0.0.1:" in out.stdout


def test_readme_workflow_example_runs(tmp_path: Path) -> None:
    readme = (EXAMPLES.parent / "README.md").read_text()
    start = readme.index("```python\nfrom ferry import conditional")
    code = readme[start + len("```python\n"):readme.index("```\n", start + 10)]
    script = tmp_path / "readme_example.py"
    script.write_text(code + "\nprint(pipeline(xs=[1, 2, 3]), pipeline(xs=[1]))\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "total 14 total 10"


def test_readme_registration_example_runs(tmp_path: Path) -> None:
    readme = (EXAMPLES.parent / "README.md").read_text()
    start = readme.index("```python\n# pipeline.py")
    code = readme[start + len("```python\n"):readme.index("```\n", start + 10)]
    local = f"file://{tmp_path}/team-raw"
    (tmp_path / "pipeline.py").write_text(code.replace("s3://team-raw", local))
    runner = CliRunner()
    registered = runner.invoke(cli, ["register", str(tmp_path / "pipeline.py"), "--raw-output-prefix", f"{local}/default"])
    assert registered.exit_code == 0, registered.output
    assert "registered launch plan greeting.nightly@" in registered.output
    loud = runner.invoke(cli, ["launch", "greeting.loud", "--name", "ada"])
    assert loud.exit_code == 0, loud.output
    assert "o0 = 'hello ada hello ada hello ada'" in loud.output
    nightly = runner.invoke(cli, ["launch", "greeting.nightly", "--raw-output-prefix", f"file://{tmp_path}/scratch",
                                  "--executor", "process"])
    assert nightly.exit_code == 0, nightly.output
    assert "o0 = 'hello team'" in nightly.output
    assert "raw output prefix: file://" in runner.invoke(cli, ["executions", "show"]).output


def test_readme_dynamic_and_container_example_runs(tmp_path: Path) -> None:
    readme = (EXAMPLES.parent / "README.md").read_text()
    start = readme.index("```python\nfrom ferry import ContainerTask, File, dynamic")
    code = readme[start + len("```python\n"):readme.index("```\n", start + 10)]
    (tmp_path / "lines.txt").write_text("a\nb\nc\n")
    script = tmp_path / "readme_dynamic.py"
    script.write_text(code + "\nprint(both(n=4, f=File('lines.txt')))\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(14, 3)"
