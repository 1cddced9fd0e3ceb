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



def test_a_value_in_a_shell_script_is_data_never_code(tmp_path: Path) -> None:
    """Placeholders in ``sh -c SCRIPT`` are quoted for where they stand: bare, in "...", in '...', inside $(...)
    a hostile string stays one word of data, and so does a file name with spaces. Inside `...` is refused."""
    traps = tmp_path / "traps"
    traps.mkdir()
    hostile = f"a; touch {traps}/bare $(touch {traps}/sub) `touch {traps}/tick` \"d\" 'q' \\ ) # x"
    script = ("printf '%s\\n' {{.inputs.s}} \"{{.inputs.s}}\" '{{.inputs.s}}' \"$(printf %s {{.inputs.s}})\" "
              "\"$( (printf %s \"{{.inputs.s}}\") )\" > {{.outputDir}}/text # it's a comment\n"
              "wc -c < {{.inputs.f}} > {{.outputDir}}/size")
    spaced = traps / "a name $(touch x) with spaces.txt"
    spaced.write_text("four")
    plain = ferry.ContainerTask("echo_text", command=["bash", "-euo", "pipefail", "-c", script],
                                inputs={"s": str, "f": ferry.File}, outputs={"text": str, "size": int})
    text, size = plain(s=hostile, f=ferry.File(str(spaced)))
    assert text.splitlines() == [hostile] * 5 and size == 4
    assert sorted(p.name for p in traps.iterdir()) == [spaced.name]  # nothing of the string ran
    with pytest.raises(InterfaceError, match=r"uses \{\{\.inputs\.s\}\} inside `\.\.\.`.*write \$\(\.\.\.\) instead"):
        ferry.ContainerTask("ticks", command=["sh", "-c", "echo `echo {{.inputs.s}}`"], inputs={"s": str})


@pytest.mark.parametrize("command, script", [
    (["sh", "-c", "S"], 2), (["bash", "-euo", "pipefail", "-c", "S", "name", "arg"], 4), (["bash", "--norc", "-ec", "S"], 3),
    (["/usr/bin/env", "A=1", "bash", "-c", "S"], 4), (["busybox", "sh", "-c", "S"], 3), (["sh", "-c", "--", "S"], 3),
    (["python", "-c", "S"], None), (["sh", "script.sh"], None), (["sh", "-e", "script.sh"], None), (["sh"], None),
])
def test_the_shell_script_of_a_command_is_found(command: list[str], script: int | None) -> None:
    from ferry.runtime.container import shell_script_index

    assert shell_script_index(command) == script

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
