"""The task runtime as a pod runs it: inputs.pb in, outputs.pb or error.pb out."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from flyteidl.core import errors_pb2, execution_pb2, literals_pb2

from ferry import task
from ferry.errors import LiteralTooLargeError
from ferry.storage import exists, read_bytes, write_bytes

TASKS = textwrap.dedent(
    '''
    from ferry import File, task

    @task
    def my_task(a: int, b: str) -> File:
        """Description of my function

        :param a: My input integer
        :param b: My input string
        :return: My output file
        """
        with open("out.txt", "w") as fh:
            fh.write(b * a)
        return File("out.txt")

    @task
    def boom(a: int) -> int:
        raise ValueError(f"bad a={a}")

    @task
    def big(n: int) -> list[int]:
        return list(range(n))
    '''
)


@pytest.fixture
def tasks_file(tmp_path: Path) -> Path:
    path = tmp_path / "pipeline.py"
    path.write_text(TASKS)
    return path


def write_inputs(uri: str, literals: dict[str, literals_pb2.Literal]) -> None:
    """Inputs written with plain flyteidl, as any other program could."""
    write_bytes(uri, literals_pb2.LiteralMap(literals=literals).SerializeToString())


def lit_int(v: int) -> literals_pb2.Literal:
    return literals_pb2.Literal(scalar=literals_pb2.Scalar(primitive=literals_pb2.Primitive(integer=v)))


def lit_str(v: str) -> literals_pb2.Literal:
    return literals_pb2.Literal(scalar=literals_pb2.Scalar(primitive=literals_pb2.Primitive(string_value=v)))


def run_runtime(tasks_file: Path, name: str, inputs: str, out: str, raw: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ferry.runtime", "--task", f"{tasks_file}:{name}", "--inputs", inputs,
         "--output-prefix", out, "--raw-output-prefix", raw],
        capture_output=True, text=True, env=os.environ.copy(), timeout=120,
    )


def test_runtime_process_reads_inputs_and_writes_outputs(tasks_file: Path, tmp_path: Path) -> None:
    meta = f"file://{tmp_path}/meta/exec1/n0/0"
    write_inputs(f"{meta}/inputs.pb", {"a": lit_int(3), "b": lit_str("ab")})
    proc = run_runtime(tasks_file, "my_task", f"{meta}/inputs.pb", meta, f"file://{tmp_path}/raw")
    assert proc.returncode == 0, proc.stderr
    outputs = literals_pb2.LiteralMap()
    outputs.ParseFromString(read_bytes(f"{meta}/outputs.pb"))
    blob = outputs.literals["o0"].scalar.blob
    assert blob.uri.startswith(f"file://{tmp_path}/raw/")
    assert read_bytes(blob.uri) == b"ababab"
    assert not exists(f"{meta}/error.pb")


def test_user_error_writes_error_pb(tasks_file: Path, tmp_path: Path) -> None:
    meta = f"file://{tmp_path}/meta/e/n/0"
    write_inputs(f"{meta}/inputs.pb", {"a": lit_int(7)})
    proc = run_runtime(tasks_file, "boom", f"{meta}/inputs.pb", meta, f"file://{tmp_path}/raw")
    assert proc.returncode == 1
    doc = errors_pb2.ErrorDocument()
    doc.ParseFromString(read_bytes(f"{meta}/error.pb"))
    assert doc.error.origin == execution_pb2.ExecutionError.USER
    assert doc.error.code == "ValueError"
    assert "bad a=7" in doc.error.message and "Traceback" in doc.error.message
    assert not exists(f"{meta}/outputs.pb")


@pytest.mark.parametrize(
    "payload, expected",
    [
        (b"\x0a\xff\xff", "corrupt or truncated"),
        (literals_pb2.LiteralMap(literals={"a": lit_str("x"), "b": lit_str("y")}).SerializeToString(),
         "inputs.a: expected a literal of type int, got a string_value primitive"),
        (literals_pb2.LiteralMap(literals={"b": lit_str("y")}).SerializeToString(), "missing input 'a'"),
    ],
    ids=["corrupt", "wrong-type", "missing"],
)
def test_bad_inputs_are_user_errors_with_nothing_written(tasks_file: Path, tmp_path: Path, payload: bytes, expected: str) -> None:
    meta = f"file://{tmp_path}/meta/e/n/0"
    write_bytes(f"{meta}/inputs.pb", payload)
    proc = run_runtime(tasks_file, "my_task", f"{meta}/inputs.pb", meta, f"file://{tmp_path}/raw")
    assert proc.returncode == 1
    doc = errors_pb2.ErrorDocument()
    doc.ParseFromString(read_bytes(f"{meta}/error.pb"))
    assert expected in doc.error.message
    assert doc.error.kind == errors_pb2.ContainerError.NON_RECOVERABLE
    assert not exists(f"{meta}/outputs.pb")
    assert not os.path.exists(tmp_path / "raw")


def test_unknown_task_reference(tasks_file: Path, tmp_path: Path) -> None:
    proc = run_runtime(tasks_file, "nope", "file:///x/inputs.pb", f"file://{tmp_path}/m", f"file://{tmp_path}/raw")
    assert proc.returncode == 2
    assert "has no task named 'nope'" in proc.stderr and "my_task" in proc.stderr


def test_metadata_limit_fails_before_writing(tasks_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FERRY_MAX_LITERAL_BYTES", "1000")
    monkeypatch.setenv("FERRY_OFFLOAD_LARGE_LITERALS", "0")  # offloading turned off: over the limit is an error
    meta = f"file://{tmp_path}/meta/e/n/0"
    write_inputs(f"{meta}/inputs.pb", {"n": lit_int(1000)})
    proc = run_runtime(tasks_file, "big", f"{meta}/inputs.pb", meta, f"file://{tmp_path}/raw")
    assert proc.returncode == 1
    doc = errors_pb2.ErrorDocument()
    doc.ParseFromString(read_bytes(f"{meta}/error.pb"))
    message = doc.error.message
    for part in ("big", "outputs 'o0'", "over the 1,000-byte metadata limit", "File"):
        assert part in message
    assert not exists(f"{meta}/outputs.pb")


def test_metadata_limit_in_direct_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    from ferry.config import reset_settings

    @task
    def count(xs: list[int]) -> int:
        return len(xs)

    monkeypatch.setenv("FERRY_MAX_LITERAL_BYTES", "100")
    monkeypatch.setenv("FERRY_OFFLOAD_LARGE_LITERALS", "off")
    reset_settings()
    with pytest.raises(LiteralTooLargeError, match=r"inputs 'xs' is \d[\d,]* bytes serialized"):
        count(xs=list(range(100)))


def test_over_the_limit_a_literal_is_offloaded_by_default(tasks_file: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FERRY_MAX_LITERAL_BYTES", "1000")
    monkeypatch.delenv("FERRY_OFFLOAD_LARGE_LITERALS", raising=False)
    meta = f"file://{tmp_path}/meta/e/n/0"
    write_inputs(f"{meta}/inputs.pb", {"n": lit_int(1000)})
    proc = run_runtime(tasks_file, "big", f"{meta}/inputs.pb", meta, f"file://{tmp_path}/raw")
    assert proc.returncode == 0, proc.stderr
    outputs = literals_pb2.LiteralMap()
    outputs.ParseFromString(read_bytes(f"{meta}/outputs.pb"))
    ref = outputs.literals["o0"].offloaded_metadata
    assert ref.uri.startswith(f"{meta}/offloaded/") and ref.size_bytes > 1000  # beside outputs.pb: the engine reads it
    assert outputs.literals["o0"].hash.startswith("sha256:")  # memoization keys see the value, not the place

    # A consumer reads it back transparently.
    from ferry.config import reset_settings
    from ferry.types import TransferContext, default_engine

    reset_settings()
    from ferry.config import active_settings

    s = active_settings()
    assert default_engine().to_python(outputs.literals["o0"], list[int], TransferContext(s, s.raw_output_prefix)) == list(range(1000))


def test_direct_calls_offload_a_large_list_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from ferry.config import reset_settings

    @task
    def halves(xs: list[int]) -> list[int]:
        return [x // 2 for x in xs]

    monkeypatch.setenv("FERRY_MAX_LITERAL_BYTES", "1000")
    monkeypatch.delenv("FERRY_OFFLOAD_LARGE_LITERALS", raising=False)
    reset_settings()
    xs = list(range(30_000))  # past the vectorized encoding's threshold, and ~100x the limit
    assert halves(xs=xs) == [x // 2 for x in xs]
    assert halves(xs=xs[:50]) == [x // 2 for x in xs[:50]]  # small, inline, after the same path


def test_direct_call_raises_the_users_exception() -> None:
    @task
    def fails(a: int) -> int:
        raise KeyError(a)

    with pytest.raises(KeyError):
        fails(a=1)


def test_direct_call_checks_values_against_types() -> None:
    @task
    def add(a: int, b: int = 2) -> int:
        return a + b

    assert add(1) == 3 and add(a=1, b=5) == 6
    from ferry.errors import TypeMismatchError

    with pytest.raises(TypeMismatchError, match="add: inputs.a: expected int, got str"):
        add(a="1")
    with pytest.raises(TypeMismatchError, match=r"missing input\(s\) \['a'\]"):
        add()
