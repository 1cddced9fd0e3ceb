"""The command line as people and scripts use it: ferry run's listing, help, single tasks and inputs files;
every type from text; --json on read commands; plain text when piped; -q / -v; outputs downloaded as what
they are; Ctrl-C; the live display; graphs, timelines and task reports."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ferry.cli.main import cli

FLOW = '''
import dataclasses
import enum
import time
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

import ferry.types
from ferry import Directory, File, conditional, map_task, task, workflow
from ferry.literals import Literal
from ferry.reports import current_report


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Money:
    """A type of the user's own, with a transformer that can read text ("12.50 EUR")."""

    def __init__(self, amount: float, currency: str) -> None:
        self.amount, self.currency = amount, currency


class MoneyTransformer(ferry.types.Transformer):
    name = "money"
    python_types = (Money,)

    def literal_type(self, python_type, engine):
        return engine.literal_type(str)

    def to_literal(self, value, python_type, engine, ctx, path):
        return engine.to_literal(f"{value.amount} {value.currency}", str, ctx, path)

    def to_python(self, literal, python_type, engine, ctx, path):
        amount, currency = engine.to_python(literal, str, ctx, path).split()
        return Money(float(amount), currency)

    def from_plain(self, obj, python_type, engine):
        amount, currency = str(obj).split()
        return Money(float(amount), currency)


ferry.types.register(MoneyTransformer())


@task
def describe_all(blob: bytes, frame: pd.DataFrame, arr: np.ndarray, color: Color, point: Point, money: Money,
                 note: Optional[str] = None) -> str:
    return (f"{len(blob)} bytes {blob[:5]!r}; frame {list(frame.columns)} x{len(frame)} sum {int(frame['v'].sum())}; "
            f"array {arr.tolist()}; {color.value}; {point.x},{point.y}; {money.amount} {money.currency}; note {note}")


@workflow
def everything(blob: bytes, frame: pd.DataFrame, arr: np.ndarray, color: Color, point: Point, money: Money,
               note: Optional[str] = None) -> str:
    """Every kind of input.

    :param blob: some bytes
    :param frame: a table
    """
    return describe_all(blob=blob, frame=frame, arr=arr, color=color, point=point, money=money, note=note)


@task
def square(x: int) -> int:
    """Square a number.

    :param x: the number to square
    """
    report = current_report()
    report.add_table([{"x": x, "square": x * x}], "squares")
    report.add_text("<not markup>")
    return x * x


@task
def add(a: int, b: int = 10) -> int:
    return a + b


@workflow
def adding(a: int, b: int = 10, scale: Optional[int] = None) -> int:
    """Add two numbers.

    :param a: the first number
    :param b: the second number
    :param scale: ignored
    """
    return add(a=a, b=b)


@task
def maybe(x: Optional[int]) -> str:
    return f"got {x}"


@workflow
def squares(xs: list[int]) -> list[int]:
    return map_task(square)(x=xs)


@task
def many(n: int) -> list[int]:
    return list(range(n))


@workflow
def long_list(n: int = 50) -> list[int]:
    return many(n=n)


@task
def folder(n: int) -> Directory:
    Path("out").mkdir()
    for i in range(n):
        Path(f"out/f{i}.txt").write_text(str(i))
    return Directory("out")


@workflow
def make_folder(n: int = 2) -> Directory:
    return folder(n=n)


@task
def wait_for(gate: str) -> int:
    while not Path(gate).exists():
        time.sleep(0.02)
    return 1


@workflow
def gated(gate: str) -> int:
    return wait_for(gate=gate)


@task
def ready(gate: str) -> str:
    return gate


@workflow
def two_steps(gate: str) -> int:
    return wait_for(gate=ready(gate=gate))


@task
def reported_failure(x: int) -> int:
    current_report().add_text(f"got {x} before failing")
    raise ValueError("no good")


@workflow
def failing_with_report(x: int = 1) -> int:
    return reported_failure(x=x)


@workflow
def sub(x: int) -> int:
    return square(x=x)


@workflow
def shapes(xs: list[int], x: int = 3) -> int:
    squares_ = map_task(square)(x=xs)
    inner = sub(x=x)
    return (
        conditional("big")
        .if_(inner > 5).then(add(a=inner, b=1))
        .else_().then(add(a=inner, b=2))
    )
'''


@pytest.fixture
def flow(tmp_path: Path) -> Path:
    path = tmp_path / "uxflow.py"
    path.write_text(FLOW)
    return path


def invoke(*args: str, **kwargs: Any) -> Any:
    return CliRunner().invoke(cli, [str(a) for a in args], **kwargs)


def ok(*args: str, **kwargs: Any) -> Any:
    result = invoke(*args, **kwargs)
    assert result.exit_code == 0, result.output + str(result.exception or "")
    return result


def latest_id() -> str:
    listed = json.loads(ok("executions", "list", "--json").stdout)
    return str(listed[0]["id"])


# ---- ferry run: listing, help, tasks, inputs files, every type from text --------------------------------------

def test_run_file_lists_workflows_and_tasks_with_inputs(flow: Path) -> None:
    text = ok("run", flow).stdout
    assert "Workflows:" in text and "Tasks:" in text
    lines = {line.split()[0]: " ".join(line.split()[1:]) for line in text.splitlines() if line.startswith("  ")}
    assert lines["adding"] == "(a: int, b: int = 10, scale: Optional[int] = None) -> int # Add two numbers."
    assert "square" in text and "(x: int) -> int" in text
    data = json.loads(ok("run", flow, "--json").stdout)
    adding = next(e for e in data if e["name"] == "adding")
    assert adding["kind"] == "workflow"
    assert adding["inputs"]["a"] == {"type": "int", "description": "the first number"}
    assert adding["inputs"]["b"]["default"] == "10"
    assert {e["name"]: e["kind"] for e in data}["square"] == "task"


def test_run_workflow_help_lists_typed_inputs_and_runs_nothing(flow: Path) -> None:
    text = ok("run", flow, "adding", "--help").stdout
    assert "Add two numbers." in text
    assert "--a int" in text and "the first number" in text and "[required]" in text
    assert "--b int" in text and "[default: 10]" in text
    assert "--scale Optional[int]" in text and "[default: None]" in text
    assert "--executor" in text  # the run options too
    every = ok("run", flow, "everything", "--help").stdout
    assert "--blob bytes (base64 or @FILE)" in every and "--frame DataFrame (parquet/CSV path or URL)" in every
    assert "--color Color: red|blue" in every
    assert json.loads(ok("executions", "list", "--json").stdout) == []


def test_a_single_task_runs_as_a_one_node_workflow(flow: Path) -> None:
    result = ok("run", flow, "add", "--a", "5")
    assert "o0 = 15" in result.stdout
    shown = json.loads(ok("executions", "show", "--json").stdout)
    assert shown["status"] == "succeeded" and shown["workflow"] == "uxflow.add"
    assert [n["label"] for n in shown["nodes"]] == ["uxflow.add"]



def test_help_as_the_first_argument_and_options_where_a_name_goes(flow: Path) -> None:
    for args in (["run", "--help"], ["run", "-h"], ["launch", "--help"], ["launch", "-h"]):
        shown = ok(*args).stdout
        assert shown.startswith(f"Usage: cli {args[0]} [OPTIONS]") and "--executor" in shown, args  # (cli: CliRunner)
    assert "Run workflow (or task) NAME" in ok("run", flow, "--help").stdout  # FILE's listing, after the help
    misplaced = invoke("run", "-q", flow, "adding")
    assert misplaced.exit_code == 2 and "-q is an option of ferry itself" in misplaced.output
    assert "ferry -q run ..." in misplaced.output
    unknown = invoke("launch", "--bogus", "x")
    assert unknown.exit_code == 2 and "expected NAME, got '--bogus'" in unknown.output


def test_inputs_named_like_run_options_go_after_a_double_dash(tmp_path: Path) -> None:
    path = tmp_path / "clash.py"
    path.write_text(
        "from ferry import task\n\n"
        "@task\ndef show(executor: str, workers: int, json: bool = False) -> str:\n"
        "    return f'{executor}/{workers}/{json}'\n"
    )
    helped = " ".join(ok("run", path, "show", "--help").stdout.split())
    assert "--executor str [after --] [required]" in helped and "give inputs after --" in helped
    missing = invoke("run", path, "show", "--executor", "process", "--workers", "1")
    assert missing.exit_code == 1 and "needs input(s) --executor, --workers" in missing.output
    assert "go after --: ... -- --executor VALUE" in missing.output
    twice = invoke("-q", "run", path, "show", "--", "--executor", "a", "--executor", "b", "--workers", "1")
    assert twice.exit_code == 1 and "--executor is given twice ('a' and 'b')" in twice.output
    done = ok("-q", "run", path, "show", "--executor", "process", "--", "--executor", "fast", "--workers", "3",
              "--json", "true")
    assert done.stdout.strip() == "o0 = 'fast/3/True'"
    assert json.loads(ok("executions", "show", "--json").stdout)["executor"] == "process"


def test_a_container_task_runs_from_the_command_line(tmp_path: Path) -> None:
    path = tmp_path / "programs.py"
    path.write_text(
        "from ferry import ContainerTask, File\n"
        "count = ContainerTask('count_lines', command=['sh', '-c', 'wc -l < {{.inputs.f}} > {{.outputDir}}/n; "
        "printf %s {{.inputs.label}} > {{.outputDir}}/label'], inputs={'f': File, 'label': str}, "
        "outputs={'n': int, 'label': str})\n"
    )
    text = tmp_path / "a name with spaces.txt"
    text.write_text("one\ntwo\nthree\n")
    assert "count  (f: File, label: str) -> (int, str)" in ok("run", path).stdout
    assert "--f File" in ok("run", path, "count", "--help").stdout
    done = ok("-q", "run", path, "count", "--f", text, "--label", "x; y", "--executor", "process")
    assert sorted(done.stdout.splitlines()) == ["label = 'x; y'", "n = 3"]

def test_optional_inputs_may_be_left_out_and_missing_ones_are_named(flow: Path) -> None:
    assert "o0 = 11" in ok("run", flow, "adding", "--a", "1").stdout
    assert "o0 = 3" in ok("run", flow, "adding", "--a", "1", "--b", "2", "--scale", "none").stdout
    assert "[optional]" in ok("run", flow, "maybe", "--help").stdout
    assert "o0 = 'got None'" in ok("run", flow, "maybe").stdout  # Optional, no default: None
    assert "o0 = 'got 4'" in ok("run", flow, "maybe", "--x", "4").stdout
    missing = invoke("run", flow, "adding")
    assert missing.exit_code == 1 and "needs input(s) --a" in missing.output and "Traceback" not in missing.output


def test_inputs_file_json_and_yaml_with_flags_winning(flow: Path, tmp_path: Path) -> None:
    (tmp_path / "in.json").write_text(json.dumps({"a": 1, "b": 2}))
    assert "o0 = 3" in ok("run", flow, "adding", "--inputs-file", tmp_path / "in.json").stdout
    assert "o0 = 101" in ok("run", flow, "adding", "--inputs-file", tmp_path / "in.json", "--b", "100").stdout
    (tmp_path / "in.yaml").write_text("a: 4\nb: 5\n")
    assert "o0 = 9" in ok("run", flow, "adding", "--inputs-file", tmp_path / "in.yaml").stdout
    (tmp_path / "bad.json").write_text('{"a": "1"}')  # a string in JSON is not a number
    bad = invoke("run", flow, "adding", "--inputs-file", tmp_path / "bad.json")
    assert bad.exit_code == 1 and "expected a number" in bad.output
    (tmp_path / "list.json").write_text("[1]")
    assert "must hold an object" in invoke("run", flow, "adding", "--inputs-file", tmp_path / "list.json").output


def test_every_type_with_a_transformer_comes_from_text(flow: Path, tmp_path: Path) -> None:
    import numpy as np
    import pandas as pd

    pd.DataFrame({"v": [1, 2, 3], "s": ["a", "b", "c"]}).to_parquet(tmp_path / "t.parquet")
    pd.DataFrame({"v": [4, 5]}).to_csv(tmp_path / "t.csv", index=False)
    np.save(tmp_path / "a.npy", np.arange(3))
    (tmp_path / "blob.bin").write_bytes(b"\x00binary")
    common = ["--color", "blue", "--point", '{"x": 1, "y": 2}', "--money", "12.5 EUR"]
    first = ok("run", flow, "everything", "--blob", base64.b64encode(b"hello").decode(), "--frame",
               tmp_path / "t.parquet", "--arr", tmp_path / "a.npy", *common)
    assert ("o0 = \"5 bytes b'hello'; frame ['v', 's'] x3 sum 6; array [0, 1, 2]; blue; 1,2; 12.5 EUR; note None\""
            in first.stdout)
    second = ok("run", flow, "everything", "--blob", f"@{tmp_path / 'blob.bin'}", "--frame", tmp_path / "t.csv",
                "--arr", "[7, 8]", *common, "--note", "hi")
    assert "7 bytes b'\\\\x00bina'; frame ['v'] x2 sum 9; array [7, 8]; blue; 1,2; 12.5 EUR; note hi" in second.stdout


@pytest.mark.parametrize("args, message", [
    (["--blob", "!!!"], "expected base64 text, or @FILE"),
    (["--blob", "@/nonexistent/file"], "can't read the file"),
    (["--frame", "/nonexistent.parquet"], "can't open '/nonexistent.parquet'"),
    (["--color", "green"], "expected one of red, blue"),
    (["--point", '{"x": 1, "z": 2}'], "has no field(s) ['z']"),
    (["--point", '{"x": 1, "y": "2"}'], "field 'y': expected a number"),
])
def test_text_that_does_not_fit_its_type_says_why(flow: Path, tmp_path: Path, args: list[str], message: str) -> None:
    import numpy as np

    np.save(tmp_path / "a.npy", np.arange(3))
    base = {"--blob": "aGk=", "--frame": '[{"v": 1}]', "--arr": str(tmp_path / "a.npy"), "--color": "red",
            "--point": '{"x": 1, "y": 2}', "--money": "1 EUR"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    result = invoke("run", flow, "everything", *[x for pair in base.items() for x in pair])
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output



MISTAKES = """
import ferry
from ferry import Directory, File, task, workflow

@task
def size(f: File) -> int:
    return 1

@task
def listing(d: Directory) -> int:
    return 1

@task
def add(a: int) -> int:
    return a + 1

@task
def wrong(a: int) -> int:
    return "three"

@workflow
def greeting(name: str, times: int = 1) -> str:
    return name

nightly = ferry.LaunchPlan(greeting, "greeting.nightly", fixed_inputs={"name": "team"})
"""


def test_mistakes_get_errors_that_say_what_was_wrong_and_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "mistakes.py"
    path.write_text(MISTAKES)
    (tmp_path / "folder").mkdir()
    (tmp_path / "file.txt").write_text("x")

    def fails(*args: Any, code: int = 1) -> str:
        result = invoke(*args)
        assert result.exit_code == code, result.output
        assert "Traceback" not in result.output
        return " ".join(result.output.split())

    assert f"{tmp_path}/folder is a folder, not a file: File takes a file. Give a file, or declare Directory" \
        in fails("run", path, "size", "--f", tmp_path / "folder")
    assert "is a file, not a folder: Directory takes a folder" in fails("run", path, "listing", "--d", tmp_path / "file.txt")
    assert "there is no file at /nonexistent.txt, so there is nothing to upload" in fails("run", path, "size", "--f", "/nonexistent.txt")
    big = fails("run", path, "add", "--a", "99999999999999999999999")
    assert "99999999999999999999999 is out of range for int, which travels as a 64-bit integer" in big
    assert "Unknown executor 'bogus'; choose one of dask, inline, process" in fails("run", path, "add", "--a", "1",
                                                                                  "--executor", "bogus")
    assert json.loads(ok("executions", "list", "--json").stdout) == []  # none of these was recorded as run
    assert "got str ('three'). Pass an int or change the declared type" in fails("run", path, "wrong", "--a", "1")
    assert "Invalid value for '--limit'" in fails("executions", "list", "--limit", "0", code=2)
    ok("register", path)
    fixed = fails("launch", "greeting.nightly", "--name", "bob")
    assert "greeting.nightly@" in fixed and "fixes input(s) ['name']; a launch can't change them" in fixed

def test_an_optional_input_left_out_is_none_however_it_is_launched(tmp_path: Path) -> None:
    import ferry

    path = tmp_path / "optmod.py"
    path.write_text("from typing import Optional\nfrom ferry import task, workflow\n\n"
                    "@task\ndef show(x: Optional[int]) -> str:\n    return repr(x)\n\n"
                    "@workflow\ndef opt(x: Optional[int]) -> str:\n    return show(x=x)\n")
    ok("register", path)
    assert ok("-q", "launch", "optmod.opt").stdout.strip() == "o0 = 'None'"
    assert ferry.launch("optmod.opt", {}).outputs == {"o0": "None"}  # the engine fills it, for the API too
    assert ferry.launch("optmod.opt", {"x": 4}).outputs == {"o0": "4"}


def test_launch_parses_inputs_by_the_registered_types(flow: Path, tmp_path: Path) -> None:
    import numpy as np
    import pandas as pd

    ok("register", flow)
    pd.DataFrame({"v": [1, 2], "s": ["x", "y"]}).to_csv(tmp_path / "t.csv", index=False)
    help_text = ok("launch", "uxflow.adding", "--help").stdout
    assert "--a int" in help_text and "[default: 10]" in help_text and "the first number" in help_text
    assert "o0 = 11" in ok("launch", "uxflow.adding", "--a", "1").stdout  # the Optional input left out
    np.save(tmp_path / "a.npy", np.arange(1))  # an array's registered type is a .npy blob: given as a file
    launched = ok("launch", "uxflow.everything", "--blob", "aGk=", "--frame", tmp_path / "t.csv", "--arr", tmp_path / "a.npy",
                  "--color", "red", "--point", '{"x": 3, "y": 4}', "--money", "2 USD")
    assert "2 bytes b'hi'; frame ['v', 's'] x2 sum 3; array [0]; red; 3,4; 2.0 USD; note None" in launched.stdout


# ---- scriptable output ----------------------------------------------------------------------------------------

def test_read_commands_take_json_with_values_in_full(flow: Path) -> None:
    ok("run", flow, "long_list", "--n", "50")
    listed = json.loads(ok("executions", "list", "--json").stdout)
    assert listed[0]["status"] == "succeeded" and listed[0]["workflow"] == "uxflow.long_list"
    assert json.loads(ok("executions", "list", "-o", "json").stdout) == listed
    shown = json.loads(ok("executions", "show", listed[0]["id"], "--json").stdout)
    assert [item["value"] for item in shown["outputs"]["o0"]["items"]] == list(range(50))
    assert shown["outputs"]["o0"]["text"] == str(list(range(50)))  # not shortened
    assert shown["nodes"][0]["inputs"]["n"]["value"] == 50
    outputs = json.loads(ok("executions", "outputs", "--json").stdout)
    assert len(outputs["outputs"]["o0"]["items"]) == 50
    clipped = ok("executions", "show").stdout
    assert "... (50 items)" in clipped
    full = ok("executions", "show", "--full").stdout
    assert ", ".join(map(str, range(50))) in full



def test_long_strings_are_shortened_unless_asked_in_full(tmp_path: Path) -> None:
    path = tmp_path / "echo.py"
    path.write_text("from ferry import task\n\n@task\ndef echo(s: str) -> str:\n    return s\n")
    long = "x" * 5000 + "END"
    ran = ok("-q", "run", path, "echo", "--s", long).stdout
    assert "END" not in ran and "(5,003 characters)" in ran and len(ran) < 400
    shown = ok("executions", "show").stdout
    assert "END" not in shown and shown.count("(5,003 characters)") == 4 and len(shown) < 3000  # the execution's and the node's
    assert ok("executions", "show", "--full").stdout.count(long) == 4

def test_registry_dataset_and_cache_listings_take_json(flow: Path, tmp_path: Path) -> None:
    ok("register", flow)
    workflows = json.loads(ok("workflows", "list", "--json").stdout)
    assert "uxflow.adding" in {w["name"] for w in workflows}
    plans = json.loads(ok("launchplans", "list", "-o", "json").stdout)
    assert "uxflow.adding" in {p["name"] for p in plans}
    (tmp_path / "refs").mkdir()
    (tmp_path / "refs" / "a.txt").write_text("abc")
    ok("datasets", "upload", tmp_path / "refs", "refs")
    assert json.loads(ok("datasets", "ls", "--json").stdout) == [
        {"name": "refs", "kind": "folder", "size": 3, "modified": json.loads(ok("datasets", "ls", "--json").stdout)[0]["modified"]}]
    stats = json.loads(ok("cache", "stats", "--json").stdout)
    assert stats["max_bytes"] == 10 * 1024**3 and stats["entries"] == 0
    assert "10.0 GiB" in ok("cache", "stats").stdout


BOX = set("┃│━─┏┓┗┛┡┩╇╋┳┻")


def test_piped_text_has_no_box_characters_or_colour(flow: Path) -> None:
    ok("run", flow, "add", "--a", "1")
    listed = ok("executions", "list")
    assert "succeeded" in listed.stdout
    assert not BOX & set(listed.stdout) and "\x1b[" not in listed.output
    assert "\x1b[" not in ok("executions", "show").output


def _on_a_terminal(args: list[str], env: dict[str, str], until: bytes | None = None,
                   then: Any = None) -> tuple[int, bytes]:
    """Run ``ferry ARGS`` with stdout and stderr on a pseudo-terminal; what it wrote, and its exit code.
    With ``until``, call ``then()`` once the output holds it (a barrier on what is shown, not a sleep)."""
    import pty
    import select

    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "ferry.cli.main", *args], stdout=follower, stderr=follower,
                            stdin=subprocess.DEVNULL, env=env, close_fds=True)
    os.close(follower)
    out = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed: the process is gone
                break
            if not chunk:
                break
            out += chunk
            if until is not None and until in out and then is not None:
                then()
                then = None
        elif proc.poll() is not None:
            break
    proc.wait(timeout=60)
    os.close(leader)
    return proc.returncode, out


def test_no_color_is_honoured_on_a_terminal(flow: Path) -> None:
    ok("run", flow, "add", "--a", "1")
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    code, coloured = _on_a_terminal(["executions", "list"], env)
    assert code == 0 and b"\x1b[32m" in coloured  # green "succeeded" on a terminal...
    code, plain = _on_a_terminal(["executions", "list"], {**env, "NO_COLOR": "1"})
    assert code == 0 and b"succeeded" in plain and b"\x1b[" not in plain  # ...and none with NO_COLOR
    code, shown = _on_a_terminal(["executions", "show"], {**env, "NO_COLOR": "1"})
    assert code == 0 and b"succeeded" in shown and b"\x1b[" not in shown


def test_live_display_counts_nodes_and_ticks_while_a_task_runs(flow: Path, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    env = {**os.environ, "NO_COLOR": "1"}
    code, out = _on_a_terminal(["run", str(flow), "gated", "--gate", str(gate)], env, until=b"wait_for  running",
                               then=lambda: gate.write_text("open"))
    text = out.decode(errors="replace")
    assert code == 0, text
    assert "0/1 nodes" in text and "▶ n0  uxflow.wait_for  running" in text
    assert "o0 = 1" in text


def test_off_a_terminal_each_state_change_is_one_line(flow: Path) -> None:
    result = ok("run", flow, "squares", "--xs", "[1, 2, 3]")
    lines = [line for line in result.stderr.splitlines() if line.startswith("[")]
    assert [line.split("] ", 1)[1].split(" ", 2)[:2] for line in lines] == [
        ["n0", "map_task(uxflow.square):"], ["n0", "map_task(uxflow.square):"]]
    assert lines[-1].endswith("(3 elements)") and ": succeeded " in lines[-1]


def test_quiet_and_verbose(flow: Path) -> None:
    quiet = ok("-q", "run", flow, "add", "--a", "1")
    assert quiet.stdout == "o0 = 11\n" and quiet.stderr == ""
    listed = ok("-q", "executions", "list")
    assert "home:" not in listed.stderr
    assert "home:" in ok("executions", "list").stderr
    failed = invoke("-v", "executions", "show", "nope")
    assert failed.exit_code == 1 and "Traceback" in failed.stderr and "No execution 'nope'" in failed.stderr
    assert "Traceback" not in invoke("executions", "show", "nope").stderr


def test_downloads_label_folders_and_fetch_offloaded_values(flow: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    ok("run", flow, "make_folder", "--n", "2")
    shown = ok("executions", "outputs").stdout
    assert "o0 = directory file://" in shown and "(file" not in shown.split("directory", 1)[1].split(")")[0]
    fetched = ok("executions", "outputs", "--download", tmp_path / "dl")
    assert "(directory)" in fetched.stderr
    assert sorted(p.name for p in (tmp_path / "dl" / "o0" / "out").iterdir()) == ["f0.txt", "f1.txt"]

    from ferry.config import reset_settings

    monkeypatch.setenv("FERRY_OFFLOAD_LARGE_LITERALS", "1")
    monkeypatch.setenv("FERRY_MAX_LITERAL_BYTES", "64")
    reset_settings()
    ok("run", flow, "long_list", "--n", "200")
    assert "offloaded literal" in ok("executions", "outputs").stdout
    ok("executions", "outputs", "--download", tmp_path / "values")
    assert json.loads((tmp_path / "values" / "o0.json").read_text()) == list(range(200))


def test_ctrl_c_exits_130_naming_the_execution_and_how_to_resume(flow: Path, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    proc = subprocess.Popen([sys.executable, "-m", "ferry.cli.main", "run", str(flow), "gated", "--gate", str(gate),
                             "--executor", "process"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    started = proc.stderr.readline()  # "execution ID: ..." comes first
    execution_id = started.split()[1].rstrip(":")
    for line in proc.stderr:  # a barrier: the task is running
        if "n0 uxflow.wait_for: running" in line:
            break
    proc.send_signal(signal.SIGINT)
    rest, more = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert f"ferry executions resume {execution_id}" in more and "Traceback" not in more
    assert "failed:" not in more  # attempts stopped on the way out are not reported as failures
    assert json.loads(ok("executions", "show", execution_id, "--json").stdout)["status"] == "aborted"



@pytest.mark.parametrize("executor", ["inline", "process"])
def test_ctrl_c_leaves_attempts_aborted_and_resume_keeps_what_was_recorded(flow: Path, tmp_path: Path,
                                                                          executor: str) -> None:
    """The attempt Ctrl-C stopped is recorded aborted (not left running); a resume runs a new attempt beside it
    (not calling it lost), and leaves the node that had succeeded as it was recorded (its worker, its times)."""
    gate = tmp_path / "gate"
    proc = subprocess.Popen([sys.executable, "-m", "ferry.cli.main", "run", str(flow), "two_steps", "--gate",
                             str(gate), "--executor", executor], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    execution_id = proc.stderr.readline().split()[1].rstrip(":")
    for line in proc.stderr:  # a barrier: the second task is running
        if "n1 uxflow.wait_for: running" in line:
            break
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == 130

    def attempts() -> dict[tuple[str, int], dict[str, Any]]:
        shown = json.loads(ok("executions", "show", execution_id, "--json").stdout)
        return {(n["path"], n["attempt"]): n for n in shown["nodes"] if n["kind"] == "task"}

    before = attempts()
    assert before[("n1", 1)]["status"] == "aborted" and before[("n1", 1)]["ended"] is not None
    assert before[("n0", 1)]["status"] == "succeeded"
    gate.write_text("open")
    ok("executions", "resume", execution_id)
    after = attempts()
    assert json.loads(ok("executions", "show", execution_id, "--json").stdout)["status"] == "succeeded"
    assert after[("n0", 1)] == before[("n0", 1)]  # as it was recorded: not "adopted", its worker kept
    assert after[("n1", 1)] == before[("n1", 1)]  # aborted it stays, with its own times
    assert after[("n1", 2)]["status"] == "succeeded"


# ---- pictures and reports -------------------------------------------------------------------------------------

def test_graph_draws_maps_branches_and_subworkflows(flow: Path, tmp_path: Path) -> None:
    mermaid = ok("graph", flow, "shapes").stdout
    assert mermaid.startswith("flowchart LR")
    assert 'n_n0[["n0: map square"]]' in mermaid
    assert 'subgraph n_n1 ["n1: sub"]' in mermaid and 'n_n1_n0["n0: square"]' in mermaid
    assert "-->|if|" in mermaid and "-->|else|" in mermaid
    branch = next(line.split("{")[0].strip() for line in mermaid.splitlines() if '{"' in line)
    assert f"n_n1_outputs --> {branch}" in mermaid  # the subworkflow's result feeds the branch
    dot = ok("graph", flow, "shapes", "--format", "dot").stdout
    assert dot.startswith('digraph "uxflow.shapes"') and "subgraph cluster_n_n1" in dot and "shape=diamond" in dot
    png = invoke("graph", flow, "shapes", "--format", "png", "--out", tmp_path / "g.png")
    if png.exit_code == 0:
        assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:  # no Graphviz here: the error says what is missing and how to get it
        assert "Graphviz" in png.output and "apt-get install graphviz" in png.output


def test_timeline_of_attempts_as_text_html_png_and_json(flow: Path, tmp_path: Path) -> None:
    ok("run", flow, "squares", "--xs", "[1, 2, 3]")
    text = ok("executions", "timeline", "--width", "100").stdout
    rows = [line for line in text.splitlines() if "uxflow" not in line and "square #1" in line]
    assert len(rows) == 3 and all("=" in r and "succeeded" in r for r in rows)
    data = json.loads(ok("executions", "timeline", "--json").stdout)
    assert sorted(a["path"] for a in data["attempts"]) == ["n0-0", "n0-1", "n0-2"]
    assert all(0 <= a["start"] <= a["end"] for a in data["attempts"])
    ok("executions", "timeline", "--html", tmp_path / "t.html")
    page = (tmp_path / "t.html").read_text()
    assert page.count('class="bar"') == 3 and "uxflow.squares" in page
    png = invoke("executions", "timeline", "--png", tmp_path / "t.png")
    if png.exit_code == 0:
        assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"
    else:
        assert "Graphviz" in png.output


@pytest.mark.parametrize("executor", ["inline", "process"])
def test_task_reports_are_kept_beside_outputs_and_listed(flow: Path, executor: str) -> None:
    ok("run", flow, "square", "--x", "4", "--executor", executor)
    execution_id = latest_id()
    shown = ok("executions", "show").stdout
    assert f"report: ferry executions report {execution_id} n0 --attempt 1" in shown
    page = ok("executions", "report", execution_id, "n0").stdout
    assert "<td>4</td><td>16</td>" in page and "&lt;not markup&gt;" in page
    node = json.loads(ok("executions", "show", "--json").stdout)["nodes"][0]
    assert node["report"].endswith("/n0/0/report.html")


def test_opening_a_report_keeps_one_file_per_attempt_in_the_home(flow: Path, ferry_home: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import webbrowser

    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", opened.append)
    ok("run", flow, "square", "--x", "4")
    execution_id = latest_id()
    ok("executions", "report", execution_id, "n0", "--open")
    ok("executions", "report", execution_id, "n0", "--open")  # again: the same file, nothing new
    saved = ferry_home / "reports" / execution_id / "n0-attempt1.html"
    assert opened == [f"file://{saved}"] * 2
    assert "<td>4</td><td>16</td>" in saved.read_text()
    assert [p.name for p in (ferry_home / "reports").rglob("*")] == [execution_id, saved.name]


def test_a_failed_attempt_keeps_its_report_and_a_task_without_one_says_so(flow: Path) -> None:
    failed = invoke("run", flow, "failing_with_report")
    assert failed.exit_code == 1
    execution_id = latest_id()
    assert "got 1 before failing" in ok("executions", "report", execution_id, "n0").stdout
    ok("run", flow, "add", "--a", "1")
    missing = invoke("executions", "report", latest_id(), "n0")
    assert missing.exit_code == 1 and "attached no report" in missing.output


# ---- the fast read path ---------------------------------------------------------------------------------------

def test_read_commands_do_not_load_sqlalchemy_and_create_nothing(flow: Path, ferry_home: Path) -> None:
    code = ("import sys, json\nfrom ferry.cli.main import cli\n"
            "cli(['executions', 'list', '--json'], standalone_mode=False)\n"
            "print(json.dumps(sorted(m for m in ('sqlalchemy', 'google.protobuf') if m in sys.modules)))\n")
    empty = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert empty.stdout.splitlines() == ["[]", "[]"]
    assert not ferry_home.exists()  # listing nothing made no home
    ok("run", flow, "add", "--a", "1")
    listed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    rows = json.loads("\n".join(listed.stdout.splitlines()[:-1]))
    assert [r["workflow"] for r in rows] == ["uxflow.add"] and listed.stdout.splitlines()[-1] == "[]"


def test_sqlite_reader_and_records_agree(flow: Path) -> None:
    from ferry.config import active_settings
    from ferry.engine.records import Records
    from ferry.engine.rows import SqliteReader, open_for_reading

    ok("run", flow, "squares", "--xs", "[1, 2]")
    ok("run", flow, "add", "--a", "1")
    ok("register", flow)
    url = active_settings().database_url
    full, fast = Records(url), open_for_reading(url)
    try:
        assert isinstance(fast, SqliteReader)
        assert fast.list_executions(5) == full.list_executions(5)
        latest = full.list_executions(1)[0]
        assert fast.get_execution() == latest == fast.get_execution(latest.id[:-1])  # a prefix only it has
        assert fast.nodes(latest.id) == full.nodes(latest.id)
        assert fast.registrations("workflow") == full.registrations("workflow")
        assert fast.registrations("task", "uxflow.add") == full.registrations("task", "uxflow.add")
    finally:
        full.close()
        fast.close()


def test_a_database_not_yet_migrated_is_read_through_records(tmp_path: Path, ferry_home: Path) -> None:
    import sqlite3

    ferry_home.mkdir(parents=True)
    sqlite3.connect(ferry_home / "ferry.db").close()  # an empty database: no schema yet
    assert ok("executions", "list").stdout.startswith("No executions yet")
    tables = {r[0] for r in sqlite3.connect(ferry_home / "ferry.db").execute("SELECT name FROM sqlite_master")}
    assert {"executions", "nodes", "ferry_schema"} <= tables  # SQLAlchemy's path migrated it


def test_one_display_holds_nodes_and_transfers(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from ferry import progress
    from ferry.cli.progress import Display, NodeView

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    nodes = NodeView("wf")
    with Display(nodes) as display:
        assert progress.active()
        nodes("n0", "task", "pkg.step", "running", "")
        bar = progress.transfer("upload big.bin", 4 * 1024**3)
        bar.advance(1024**3)
        console = display.live.console
        with console.capture() as captured:
            console.print(display)
        drawn = captured.get()
        bar.close()
    assert not progress.active()
    assert "0/1 nodes" in drawn and "▶ n0  pkg.step  running" in drawn
    assert "upload big.bin" in drawn and "1.0/4.0 GiB" in drawn


def test_dataset_upload_and_warm_progress_count_bytes_against_correct_totals(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from ferry.cli.progress import Display

    seen: list[dict[str, Any]] = []

    class Recorded:
        def __init__(self, description: str, total: int) -> None:
            self.entry = {"description": description, "total": total, "done": 0}
            seen.append(self.entry)

        def advance(self, nbytes: int) -> None:
            self.entry["done"] += nbytes

        def set_total(self, nbytes: int) -> None:
            self.entry["total"] = nbytes

        def close(self) -> None:
            pass

    monkeypatch.setattr(Display, "transfer", lambda self, description, total: Recorded(description, total))
    (tmp_path / "refs" / "sub").mkdir(parents=True)
    (tmp_path / "refs" / "a.bin").write_bytes(b"a" * 3000)
    (tmp_path / "refs" / "sub" / "b.bin").write_bytes(b"b" * 5000)
    ok("datasets", "upload", tmp_path / "refs", "refs")
    ok("datasets", "warm", "refs")
    upload, warm = seen
    assert upload["total"] == upload["done"] == 8000 and upload["description"].startswith("upload ")
    assert warm["total"] == warm["done"] == 8000 and warm["description"] == "warm refs"
