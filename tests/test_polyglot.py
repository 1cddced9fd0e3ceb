"""Tasks in any language: a shell script, a C program and a Node script exchange data with Python tasks."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

import ferry
from ferry.cli.main import cli
from ferry.config import active_settings
from ferry.engine.records import Records
from ferry.errors import InterfaceError
from ferry.runtime.load import load_object

FLOWS = Path(__file__).parent / "flows"


@pytest.fixture
def program(tmp_path: Path) -> str:
    """The word counter, compiled for this machine."""
    binary = tmp_path / "wc"
    subprocess.run(["gcc", "-O2", "-o", str(binary), str(FLOWS / "wc.c")], check=True)
    return str(binary)


@pytest.mark.parametrize("executor", ["inline", "process", "dask"])
def test_programs_in_other_languages_take_and_give_data(executor: str, program: str) -> None:
    wf = load_object(str(FLOWS / "polyglot.py"), "mixed", "workflow")
    execution = ferry.run(wf, {"n": 5, "program": program}, executor=executor)
    assert execution.status == "succeeded", execution.error
    assert execution.outputs == "5 rows (name), 10 words, total 11"
    logs = CliRunner().invoke(cli, ["executions", "logs", execution.id])
    if executor != "inline":  # a program's output is kept in its attempt's logs
        assert "node saw 4 values" in logs.output


def test_a_program_called_directly(program: str, tmp_path: Path) -> None:
    polyglot = __import__("ferry.runtime.load", fromlist=["load_module"]).load_module(str(FLOWS / "polyglot.py"))
    text = tmp_path / "t.txt"
    text.write_text("one two\nthree\n")
    assert polyglot.word_count(program=program, text=ferry.File(str(text))) == 3
    total, summary = polyglot.stats(values=[2, 4])
    assert total == 6 and summary == {"mean": 3.0, "max": 4.0}


@pytest.mark.parametrize("how", ["direct", "process"])
def test_a_programs_temporary_files_go_with_its_attempt(how: str) -> None:
    """As a pod's /tmp goes with the pod: TMPDIR is a folder in the attempt's own, removed after it."""
    import os
    import tempfile

    made = ferry.ContainerTask("tmp_user", command=["sh", "-c", 'printf %s "$(mktemp)" > {{.outputDir}}/path'],
                               outputs={"path": str})

    @ferry.workflow
    def uses_tmp() -> str:
        return made()

    if how == "direct":
        path = made()
    else:
        execution = ferry.run(uses_tmp, {}, executor="process")
        assert execution.status == "succeeded", execution.error
        path = execution.outputs
    assert os.path.isabs(path) and os.path.dirname(path) != tempfile.gettempdir()  # not loose in /tmp
    assert os.path.basename(os.path.dirname(path)) == "tmp" and not os.path.exists(path)  # and gone with its attempt


@pytest.mark.parametrize("workflow, message", [
    ("exits_non_zero", "sh -c echo 'no such input' >&2; exit 3 exited with code 3: no such input"),
    ("writes_nothing", "the program wrote no output 'x'; it must write int to {{.outputDir}}/x"),
    ("writes_garbage", "output 'x' (int) can't be read from what the program wrote, 'many'"),
])
def test_a_program_that_fails_or_writes_the_wrong_thing_is_a_clear_error(workflow: str, message: str) -> None:
    execution = ferry.run(load_object(str(FLOWS / "polyglot.py"), workflow, "workflow"), {}, executor="process")
    assert execution.status == "failed"
    assert "(user error, attempt 1)" in (execution.error or "") and message in (execution.error or "")


def test_a_container_task_is_a_raw_container_spec() -> None:
    polyglot = __import__("ferry.runtime.load", fromlist=["load_module"]).load_module(str(FLOWS / "polyglot.py"))
    template = polyglot.count_rows.template("v1")
    assert template.type == "raw-container" and template.metadata.runtime.flavor == "ferry-container"
    args = list(template.container.args)
    assert args[:3] == ["python", "-m", "ferry.runtime.container"]
    assert args[args.index("--") + 1:] == polyglot.count_rows.command
    assert set(template.interface.inputs.variables) == {"table"}


def test_a_placeholder_for_an_undeclared_input_fails_at_declaration() -> None:
    with pytest.raises(InterfaceError, match=r"uses \{\{\.inputs\.y\}\}, but 'y' is not one of its inputs \(x\)"):
        ferry.ContainerTask("bad", command=["echo", "{{.inputs.y}}"], inputs={"x": int})


def test_registered_container_tasks_run_without_their_module(program: str, tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["register", str(FLOWS / "polyglot.py")]).exit_code == 0
    launched = runner.invoke(cli, ["launch", "polyglot.mixed", "--n", "2", "--program", program,
                                   "--executor", "process"])
    assert launched.exit_code == 0, launched.output
    assert "o0 = '2 rows (name), 4 words, total 8'" in launched.output
    assert Records(active_settings().database_url).list_executions(1)[0].status == "succeeded"
