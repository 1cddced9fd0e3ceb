"""Data frames (pandas, pyarrow, polars) as parquet StructuredDatasets.

Every library goes through an Arrow table, so a task returning one library's
frame feeds a task declaring another's. ``Annotated[pd.DataFrame, {"a": int}]``
declares columns: they go into the LiteralType and only they are read.
"""

from __future__ import annotations

import os
from typing import Any

from flyteidl.core import literals_pb2, types_pb2

from ferry.errors import TypeMismatchError, TypeTransformerError
from ferry.literals import Literal, LiteralType, SimpleType
from ferry.types.engine import (
    Transformer,
    expect_scalar,
    strip_annotated,
    type_name,
    value_type_name,
)

PARQUET = "parquet"

# (module prefix, class name) -> library key; matched without importing the library.
_FRAMES = {
    ("pandas", "DataFrame"): "pandas",
    ("pyarrow", "Table"): "pyarrow",
    ("polars", "DataFrame"): "polars",
    ("polars", "LazyFrame"): "polars-lazy",
}


def frame_library(python_type: Any) -> str | None:
    if not isinstance(python_type, type):
        return None
    root = python_type.__module__.split(".", 1)[0]
    return _FRAMES.get((root, python_type.__name__))


def declared_columns(python_type: Any) -> dict[str, Any]:
    _, extras = strip_annotated(python_type)
    for extra in extras:
        if isinstance(extra, dict):
            return extra
    return {}


def _arrow_literal_type(arrow_type: Any) -> LiteralType:
    import pyarrow as pa

    t = pa.types
    if t.is_boolean(arrow_type):
        return LiteralType(simple=SimpleType.BOOLEAN)
    if t.is_integer(arrow_type):
        return LiteralType(simple=SimpleType.INTEGER)
    if t.is_floating(arrow_type) or t.is_decimal(arrow_type):
        return LiteralType(simple=SimpleType.FLOAT)
    if t.is_string(arrow_type) or t.is_large_string(arrow_type) or t.is_string_view(arrow_type):
        return LiteralType(simple=SimpleType.STRING)
    if t.is_timestamp(arrow_type) or t.is_date(arrow_type):
        return LiteralType(simple=SimpleType.DATETIME)
    if t.is_duration(arrow_type):
        return LiteralType(simple=SimpleType.DURATION)
    if t.is_binary(arrow_type) or t.is_large_binary(arrow_type):
        return LiteralType(simple=SimpleType.BINARY)
    if t.is_list(arrow_type) or t.is_large_list(arrow_type):
        return LiteralType(collection_type=_arrow_literal_type(arrow_type.value_type))
    return LiteralType(simple=SimpleType.STRUCT)


def to_arrow(value: Any) -> Any:
    """Any supported frame -> pyarrow.Table."""
    lib = frame_library(type(value))
    if lib == "pyarrow":
        return value
    if lib == "pandas":
        import pyarrow as pa

        return pa.Table.from_pandas(value, preserve_index=_keeps_index(value))
    if lib == "polars":
        return value.to_arrow()
    if lib == "polars-lazy":
        return value.collect().to_arrow()
    raise TypeError(f"{value_type_name(value)} is not a pandas, pyarrow or polars frame")


def _keeps_index(frame: Any) -> bool:
    """Keep a pandas index only when it carries information (not a default RangeIndex)."""
    import pandas as pd

    index = frame.index
    return not (isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1 and index.name is None)


def from_arrow(table: Any, lib: str) -> Any:
    if lib == "pyarrow":
        return table
    if lib == "pandas":
        return table.to_pandas()
    import polars as pl

    frame = pl.from_arrow(table)
    return frame.lazy() if lib == "polars-lazy" else frame


class DataFrameTransformer(Transformer):
    name = "dataframe"

    def matches(self, python_type: Any) -> bool:
        return frame_library(python_type) is not None

    def literal_type(self, python_type: Any, engine: Any) -> LiteralType:
        columns = [
            types_pb2.StructuredDatasetType.DatasetColumn(name=name, literal_type=engine.literal_type(col_type))
            for name, col_type in declared_columns(python_type).items()
        ]
        return LiteralType(structured_dataset_type=types_pb2.StructuredDatasetType(columns=columns, format=PARQUET))

    def to_literal(self, value: Any, python_type: Any, engine: Any, ctx: Any, path: str) -> Literal:
        if frame_library(type(value)) is None:
            raise TypeMismatchError(f"{path}: expected a data frame ({type_name(python_type)}), got {value_type_name(value)}.")
        import pyarrow.parquet as pq

        from ferry.storage import publishing
        from ferry.types.hashing import file_hash

        table = to_arrow(value)
        wanted = declared_columns(python_type)
        missing = [c for c in wanted if c not in table.column_names]
        if missing:
            raise TypeMismatchError(
                f"{path}: the frame lacks declared column(s) {missing}; it has {table.column_names}."
            )
        uri = ctx.new_raw_uri("data.parquet")
        with publishing(uri, ctx.options(uri), "raw") as local:
            pq.write_table(table, local)
            size = os.path.getsize(local)
            digest = file_hash(local, size)
        sd_type = types_pb2.StructuredDatasetType(
            format=PARQUET,
            columns=[
                types_pb2.StructuredDatasetType.DatasetColumn(name=f.name, literal_type=_arrow_literal_type(f.type))
                for f in table.schema
            ],
        )
        lit = Literal()
        lit.scalar.structured_dataset.CopyFrom(
            literals_pb2.StructuredDataset(
                uri=uri, metadata=literals_pb2.StructuredDatasetMetadata(structured_dataset_type=sd_type)
            )
        )
        lit.metadata["size"] = str(size)
        lit.metadata["rows"] = str(table.num_rows)
        lit.hash = digest
        return lit

    def to_python(self, literal: Literal, python_type: Any, engine: Any, ctx: Any, path: str) -> Any:
        import pyarrow.parquet as pq

        from ferry.storage import filesystem, local_path_of, store_errors

        sd = expect_scalar(literal, "structured_dataset", python_type, path)
        base, _ = strip_annotated(python_type)
        columns = list(declared_columns(python_type)) or None
        with store_errors("read data frame", sd.uri, "raw"):
            local = local_path_of(sd.uri)
            if local is not None:
                table = pq.read_table(local, columns=columns)
            else:
                fs, fs_path = filesystem(sd.uri, ctx.options(sd.uri))
                table = pq.read_table(fs_path, columns=columns, filesystem=fs)
        lib = frame_library(base)
        if lib is None:
            raise TypeTransformerError(f"{path}: {type_name(python_type)} is not a data frame type.")
        return from_arrow(table, lib)
