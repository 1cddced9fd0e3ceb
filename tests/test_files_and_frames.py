"""Offloaded values: File, Directory, data frames and arrays, through real task calls."""

from __future__ import annotations

import datetime
import os
import pathlib
import typing
from typing import Annotated, Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from flyteidl.core import errors_pb2, execution_pb2

from ferry import Directory, File, task
from ferry.errors import TypeMismatchError, TypeTransformerError, UnknownProtocolError
from ferry.storage import filesystem, register_protocol, write_bytes


@task
def write_text(text: str) -> File:
    path = pathlib.Path("out.txt").absolute()
    path.write_text(text)
    return File(path)


@task
def read_text(f: File) -> str:
    with open(f) as fh:
        return fh.read()


@task
def path_facts(f: File) -> tuple[bool, str, int]:
    downloaded_before = f.downloaded
    text = pathlib.Path(f).read_text()
    return downloaded_before, text, len(os.fspath(f))


def test_file_roundtrip_and_lazy_fetch(ferry_home: pathlib.Path) -> None:
    f = write_text(text="hello")
    assert f.uri.startswith("file://" + str(ferry_home / "raw"))
    assert f.size == 5 and not f.downloaded
    assert read_text(f=f) == "hello"
    downloaded_before, text, _ = path_facts(f=f)
    assert (downloaded_before, text) == (False, "hello")


def test_a_remote_file_is_passed_by_reference_without_copy() -> None:
    write_bytes("memory://bucket/data/existing.txt", b"in a store")

    @task
    def passthrough(f: File) -> File:
        return f

    out = passthrough(f=File("memory://bucket/data/existing.txt"))
    assert out.uri == "memory://bucket/data/existing.txt"
    assert read_text(f=out) == "in a store"


def test_raw_outputs_land_in_distinct_random_folders() -> None:
    a, b = write_text(text="x"), write_text(text="x")
    assert a.uri != b.uri
    assert os.path.dirname(a.uri) != os.path.dirname(b.uri)


def test_missing_local_file_is_a_clear_error() -> None:
    @task
    def bad() -> File:
        return File("does-not-exist.csv")

    with pytest.raises(TypeTransformerError, match=r"there is no file at \S*does-not-exist.csv, so there is nothing to upload"):
        bad()


def test_file_format_lands_in_the_type() -> None:
    @task
    def csv_out() -> File["csv"]:  # noqa: F821 - a format, not a name
        pathlib.Path("t.csv").write_text("a\n1\n")
        return File("t.csv")

    assert csv_out.interface.typed.outputs.variables["o0"].type.blob.format == "csv"
    assert csv_out().format == "csv"


@task
def make_dir() -> Directory:
    root = pathlib.Path("folder")
    (root / "sub").mkdir(parents=True, exist_ok=True)
    (root / "a.txt").write_text("A")
    (root / "sub" / "b.txt").write_text("B")
    return Directory(root)


def test_directory_lists_lazily_and_fetches_one_member() -> None:
    @task
    def inspect_dir(d: Directory) -> tuple[list[str], str, bool]:
        names = d.listdir()
        member = d / "sub/b.txt"
        with open(member) as fh:
            text = fh.read()
        return names, text, d.downloaded

    names, text, whole = inspect_dir(d=make_dir())
    assert names == ["a.txt", "sub/b.txt"]
    assert text == "B" and whole is False


def test_directory_download_whole() -> None:
    @task
    def count(d: Directory) -> int:
        return sum(len(files) for _, _, files in os.walk(d))

    assert count(d=make_dir()) == 2


def test_memory_raw_store(monkeypatch: pytest.MonkeyPatch) -> None:
    from ferry.config import reset_settings

    monkeypatch.setenv("FERRY_RAW_OUTPUT_PREFIX", "memory://raw-bucket/prefix")
    reset_settings()
    f = write_text(text="in memory")
    assert f.uri.startswith("memory://raw-bucket/prefix/")
    assert read_text(f=f) == "in memory"


def test_user_registered_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    from fsspec.implementations.memory import MemoryFileSystem

    from ferry.config import reset_settings

    class MyFS(MemoryFileSystem):
        protocol = "my_fs"
        store: dict = {}
        pseudo_dirs = [""]

    register_protocol("my_fs", MyFS, clobber=True)
    monkeypatch.setenv("FERRY_RAW_OUTPUT_PREFIX", "my_fs://team/raw")
    reset_settings()
    f = write_text(text="custom")
    assert f.uri.startswith("my_fs://team/raw/")
    assert read_text(f=f) == "custom"
    fs, _ = filesystem(f.uri)
    assert isinstance(fs, MyFS)


def test_unknown_protocol_lists_known_ones() -> None:
    with pytest.raises(UnknownProtocolError, match=r"Unknown storage protocol 'nope'.*Known protocols: .*memory.*register_protocol"):
        write_bytes("nope://bucket/x", b"")


# --- data frames ---------------------------------------------------------------------------

@task
def make_pandas(n: int) -> pd.DataFrame:
    return pd.DataFrame({"a": range(n), "b": [f"s{i}" for i in range(n)], "c": [i / 2 for i in range(n)]})


def test_frames_cross_libraries() -> None:
    @task
    def as_polars(df: pl.DataFrame) -> pl.DataFrame:
        return df.with_columns((pl.col("a") * 2).alias("a2"))

    @task
    def as_arrow(t: pa.Table) -> int:
        return t.num_rows

    @task
    def as_lazy(lf: pl.LazyFrame) -> int:
        return int(lf.select(pl.col("a2").sum()).collect().item())

    pdf = make_pandas(n=10)
    assert list(pdf.columns) == ["a", "b", "c"]
    pol = as_polars(df=pdf)
    assert isinstance(pol, pl.DataFrame) and pol["a2"].to_list() == [2 * i for i in range(10)]
    assert as_arrow(t=pol) == 10
    assert as_lazy(lf=pol) == 90


def test_column_subset_reads_only_declared_columns() -> None:
    @task
    def only_a(df: Annotated[pd.DataFrame, {"a": int}]) -> list[str]:
        return list(df.columns)

    assert only_a(df=make_pandas(n=3)) == ["a"]
    types = only_a.interface.typed.inputs.variables["df"].type.structured_dataset_type
    assert [c.name for c in types.columns] == ["a"] and types.format == "parquet"


def test_declared_column_missing_from_frame() -> None:
    @task
    def produce() -> Annotated[pd.DataFrame, {"zzz": int}]:
        return pd.DataFrame({"a": [1]})

    with pytest.raises(TypeMismatchError, match=r"lacks declared column\(s\) \['zzz'\]"):
        produce()


def raw_files() -> list[pathlib.Path]:
    from ferry.config import active_settings

    raw = pathlib.Path(active_settings().raw_output_prefix.removeprefix("file://"))
    return [p for p in raw.rglob("*") if p.is_file()]


def stored_ids() -> Any:
    """A frame as a producing task stored it: columns id (int64) and v (double)."""
    from ferry.config import active_settings
    from ferry.types import TransferContext, default_engine

    s = active_settings()
    frame = pd.DataFrame({"id": [1, 2], "v": [0.5, 1.5]})
    return default_engine().to_literal(frame, pd.DataFrame, TransferContext(s, s.raw_output_prefix))


def read_as(lit: Any, python_type: Any) -> Any:
    from ferry.config import active_settings
    from ferry.types import TransferContext, default_engine

    s = active_settings()
    return default_engine().to_python(lit, python_type, TransferContext(s, s.raw_output_prefix), "inputs.df")


def test_declared_column_missing_on_read_is_a_final_user_error() -> None:
    from ferry.config import active_settings
    from ferry.layout import parse_error_document
    from ferry.literals import literal_map, serialize
    from ferry.runtime.execute import run_task
    from ferry.storage import read_bytes

    @task
    def wants_zzz(df: Annotated[pd.DataFrame, {"zzz": int}]) -> int:
        return len(df)

    lit = stored_ids()
    with pytest.raises(TypeMismatchError, match=r"inputs.df: the stored frame file://.* lacks declared column\(s\) "
                                                 r"\['zzz'\]; it has \['id', 'v'\]\. Declare the columns"):
        read_as(lit, Annotated[pd.DataFrame, {"zzz": int}])
    s = active_settings()
    write_bytes(f"{s.metadata_url}/pod/inputs.pb", serialize(literal_map({"df": lit})))
    assert run_task(wants_zzz, f"{s.metadata_url}/pod/inputs.pb", f"{s.metadata_url}/pod/0", s.raw_output_prefix) == "failed"
    doc = parse_error_document(read_bytes(f"{s.metadata_url}/pod/0/error.pb"), "error.pb")
    assert doc.error.code == "TypeMismatchError" and "FieldRef" not in doc.error.message.split("\n")[0]
    assert doc.error.kind == errors_pb2.ContainerError.NON_RECOVERABLE  # not retried
    assert doc.error.origin == execution_pb2.ExecutionError.USER


def test_declared_column_type_must_match_the_data_on_write_and_on_read() -> None:
    @task
    def ids_declared_as_text() -> Annotated[pd.DataFrame, {"id": str}]:
        return pd.DataFrame({"id": [1, 2]})

    before = raw_files()
    with pytest.raises(TypeMismatchError, match=r"column 'id' is declared as str, but the frame holds int64 values\. Fix"):
        ids_declared_as_text()
    assert raw_files() == before  # refused before anything was written
    with pytest.raises(TypeMismatchError, match=r"column 'id' is declared as str, but the stored frame .* holds int64 "
                                                 r"values\. Declare the columns and types that the producing task writes"):
        read_as(stored_ids(), Annotated[pd.DataFrame, {"id": str}])


FITTING = Annotated[pd.DataFrame, {"i": float, "c": str, "n": int, "l": list[int], "t": datetime.datetime}]


def test_declared_column_types_that_fit_the_data() -> None:
    @task
    def mixed() -> pd.DataFrame:
        return pd.DataFrame({"i": [1, 2], "c": pd.Categorical(["x", "y"]), "n": [None, None],
                             "l": [[1], [2, 3]], "t": pd.to_datetime(["2024-01-01", "2024-01-02"])})

    frame = mixed()

    @task
    def passes(df: pd.DataFrame) -> FITTING:  # ints as float, categories as str, no values, lists, times
        return df

    assert list(read_as(stored_ids(), Annotated[pd.DataFrame, {"id": typing.Optional[int]}]).columns) == ["id"]
    assert len(passes(df=frame)) == 2  # written and read with the declared types


def test_frame_literal_records_columns_and_size() -> None:
    from ferry.config import active_settings
    from ferry.runtime.execute import values_to_literals
    from ferry.types import TransferContext

    s = active_settings()
    lits = values_to_literals(make_pandas, {"o0": pd.DataFrame}, {"o0": pd.DataFrame({"x": [1, 2], "y": ["a", "b"]})},
                              TransferContext(s, s.raw_output_prefix), "outputs")
    sd = lits.literals["o0"].scalar.structured_dataset
    assert [c.name for c in sd.metadata.structured_dataset_type.columns] == ["x", "y"]
    assert int(lits.literals["o0"].metadata["size"]) > 0


def test_numpy_roundtrip() -> None:
    @task
    def double(x: np.ndarray) -> np.ndarray:
        return x * 2

    out = double(x=np.arange(12, dtype=np.float32).reshape(3, 4))
    assert out.dtype == np.float32 and out.shape == (3, 4) and out[2, 3] == 22
