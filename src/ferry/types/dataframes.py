"""Data frames (pandas, pyarrow, polars) as parquet StructuredDatasets.

Every library goes through an Arrow table, so a task returning one library's
frame feeds a task declaring another's. ``Annotated[pd.DataFrame, {"a": int}]``
declares columns: they go into the LiteralType, only they are read, and a
missing column or one whose data has another type is a TypeMismatchError, on
write and on read.
"""

from __future__ import annotations

import os
from typing import Any

from flyteidl.core import literals_pb2, types_pb2

from ferry.errors import MissingDependencyError, TypeMismatchError, TypeTransformerError
from ferry.literals import Literal, LiteralType, SimpleType
from ferry.storage.registry import import_module
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


# library key -> (what it is called in messages, the extra that installs it with pyarrow)
_EXTRAS = {"pandas": ("A pandas data frame", "pandas"), "pyarrow": ("A pyarrow table", "pyarrow"),
           "polars": ("A polars data frame", "polars"), "polars-lazy": ("A polars LazyFrame", "polars")}


def library(module: str, lib: str) -> Any:
    """Import ``module`` for frames of library ``lib``; a missing one is a user error naming the extra to install."""
    try:
        return import_module(module)
    except MissingDependencyError:
        raise
    except ImportError as exc:
        what, extra = _EXTRAS.get(lib, ("A data frame", "pyarrow"))
        raise MissingDependencyError(module.split(".")[0], extra, what, str(exc)) from exc


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
    t = import_module("pyarrow").types
    if t.is_dictionary(arrow_type):  # pandas categoricals: the type of the values
        return _arrow_literal_type(arrow_type.value_type)
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


def _fits(declared: LiteralType, arrow_type: Any) -> bool:
    """Whether a column of ``arrow_type`` holds values of the declared type (ints widen to float)."""
    t = import_module("pyarrow").types
    if t.is_null(arrow_type):  # no values at all
        return True
    if t.is_dictionary(arrow_type):
        return _fits(declared, arrow_type.value_type)
    kind = declared.WhichOneof("type")
    if kind == "union_type":
        return any(_fits(variant, arrow_type) for variant in declared.union_type.variants)
    if kind == "collection_type":
        is_list = t.is_list(arrow_type) or t.is_large_list(arrow_type) or t.is_fixed_size_list(arrow_type)
        return is_list and _fits(declared.collection_type, arrow_type.value_type)
    if kind == "enum_type":
        return bool(t.is_string(arrow_type) or t.is_large_string(arrow_type) or t.is_string_view(arrow_type))
    if kind != "simple" or declared.simple == SimpleType.STRUCT:
        return True  # nested structures and custom types are not checked column by column
    found = _arrow_literal_type(arrow_type)
    if found.WhichOneof("type") != "simple":
        return False
    return found.simple == declared.simple or (declared.simple == SimpleType.FLOAT and found.simple == SimpleType.INTEGER)


def check_columns(schema: Any, python_type: Any, engine: Any, path: str, where: str, fix: str) -> None:
    """Every declared column is in ``schema`` with data of its declared type; else a TypeMismatchError."""
    declared = declared_columns(python_type)
    missing = [name for name in declared if name not in schema.names]
    if missing:
        raise TypeMismatchError(
            f"{path}: {where} lacks declared column(s) {missing}; it has {schema.names}. {fix}"
        )
    for name, column_type in declared.items():
        arrow_type = schema.field(name).type
        if not _fits(engine.literal_type(column_type), arrow_type):
            raise TypeMismatchError(
                f"{path}: column {name!r} is declared as {type_name(column_type)}, but {where} holds "
                f"{arrow_type} values. {fix}"
            )


def to_arrow(value: Any) -> Any:
    """Any supported frame -> pyarrow.Table."""
    lib = frame_library(type(value))
    if lib == "pyarrow":
        return value
    if lib == "pandas":
        return library("pyarrow", lib).Table.from_pandas(value, preserve_index=_keeps_index(value))
    if lib == "polars":
        return value.to_arrow()
    if lib == "polars-lazy":
        return value.collect().to_arrow()
    raise TypeError(f"{value_type_name(value)} is not a pandas, pyarrow or polars frame")


def _keeps_index(frame: Any) -> bool:
    """Keep a pandas index only when it carries information (not a default RangeIndex)."""
    index = frame.index
    return not (isinstance(index, import_module("pandas").RangeIndex) and index.start == 0 and index.step == 1 and index.name is None)


def from_arrow(table: Any, lib: str) -> Any:
    if lib == "pyarrow":
        return table
    if lib == "pandas":
        return table.to_pandas()
    frame = library("polars", lib).from_arrow(table)
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
        from ferry.storage import publishing
        from ferry.types.hashing import file_hash

        table = to_arrow(value)
        pq = library("pyarrow.parquet", frame_library(type(value)) or "pyarrow")
        check_columns(table.schema, python_type, engine, path, "the frame",
                      "Fix the frame (add or convert the column) or the declared columns to match the data.")
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
        from ferry.storage import filesystem, local_path_of, store_errors
        from ferry.types.files import store_roots

        sd = expect_scalar(literal, "structured_dataset", python_type, path)
        base, _ = strip_annotated(python_type)
        lib = frame_library(base)
        if lib is None:
            raise TypeTransformerError(f"{path}: {type_name(python_type)} is not a data frame type.")
        pa, pq = library("pyarrow", lib), library("pyarrow.parquet", lib)
        columns = list(declared_columns(python_type)) or None
        where = f"the stored frame {sd.uri}"
        fix = ("Declare the columns and types that the producing task writes, or convert them there "
               "(see `ferry executions show` for the frame's columns).")
        with store_errors("read data frame", sd.uri, "raw"):
            source, fs = local_path_of(sd.uri, store_roots(ctx)), None
            if source is None:
                fs, source = filesystem(sd.uri, ctx.options(sd.uri))
            try:
                table = pq.read_table(source, columns=columns, filesystem=fs)
            except pa.ArrowInvalid:  # a declared column the file lacks; else the file is damaged
                check_columns(pq.read_schema(source, filesystem=fs), python_type, engine, path, where, fix)
                raise
        check_columns(table.schema, python_type, engine, path, where, fix)
        return from_arrow(table, lib)
