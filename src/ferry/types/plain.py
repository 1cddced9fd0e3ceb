"""Text and JSON-like data -> Python values of a declared type: command-line inputs, inputs files, a program's outputs.

The type engine resolves the type to its transformer (``TypeEngine.from_plain``), as it does for
literals; this module holds the forms the built-in transformers read (``builtin_from_plain``), and
a transformer of your own reads its type by overriding ``Transformer.from_plain``. What a person
types is a string; what an inputs file holds is JSON / YAML data. Each form accepts both:

- ``str`` as typed; ``int``, ``float``, ``bool`` (true/false, yes/no, 1/0); ``datetime`` / ``date`` in ISO 8601;
  ``timedelta`` in seconds; ``bytes`` as base64, or ``@path`` for a file's contents
- ``list`` / ``dict`` / dataclasses / pydantic models as JSON; ``Enum`` by value or name
- ``File`` / ``Directory`` as a local path or a URL; ``Optional[T]`` as T, or ``none`` / ``null``
- data frames from a parquet or CSV file (path or URL), or a JSON list of records ``[{"a": 1}, ...]``
- ``numpy.ndarray`` from a ``.npy`` file, or a JSON list
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import datetime as dt
import json
import os
import typing
from typing import Any, Callable, Iterator

from ferry.errors import TypeMismatchError
from ferry.types.engine import strip_annotated, type_name

NONE_WORDS = ("none", "null")


class Text(str):
    """A string as a person typed it (a command-line value): numbers and true/false may be read from it.
    Strings inside JSON data are only strings, so ``["1"]`` is not a list of ints."""


class _NotJSON(ValueError):
    """Text that had to be JSON for its type and isn't."""

    def __init__(self, text: str, python_type: Any, exc: json.JSONDecodeError) -> None:
        super().__init__(f"{text!r} is not valid JSON for {type_name(python_type)} ({exc.msg})")


def parse_value(name: str, text: Any, python_type: Any, *, typed: bool = True) -> Any:
    """Parse ``--name text`` for an input declared as ``python_type``; with ``typed=False``, ``text`` is data
    from an inputs file (JSON / YAML), whose strings are only strings."""
    from ferry.types import default_engine

    given = Text(text) if typed and isinstance(text, str) else text
    try:
        return default_engine().from_plain(given, python_type, f"--{name}")
    except TypeMismatchError as exc:
        cause = exc.__context__
        if isinstance(cause, _NotJSON):
            raise TypeMismatchError(f"--{name}: {cause}.") from None
        raise


def builtin_from_plain(transformer: Any, obj: Any, python_type: Any, engine: Any) -> Any:
    """The forms of the built-in transformers (``Transformer.from_plain``'s default)."""
    parse = _parser(transformer)
    if parse is None:
        from ferry.types.pickled import PickleTransformer

        if isinstance(transformer, PickleTransformer):
            raise TypeError(f"{type_name(python_type)} has no transformer (its values are pickled), so it can't be "
                            "given as text; register a transformer for it with a from_plain method")
        raise TypeError(f"its transformer ({type(transformer).__name__}) can't read text: give it a "
                        "from_plain(obj, python_type, engine) method")
    base, _ = strip_annotated(python_type)
    return parse(transformer, obj, base, engine)


def _parser(transformer: Any) -> Callable[[Any, Any, Any, Any], Any] | None:
    from ferry.types.arrays import NumpyTransformer
    from ferry.types.collections import DictTransformer, EnumTransformer, ListTransformer, UnionTransformer
    from ferry.types.dataframes import DataFrameTransformer
    from ferry.types.files import BlobTransformer
    from ferry.types.primitives import (
        BytesTransformer,
        DatetimeTransformer,
        DateTransformer,
        NoneTransformer,
        PrimitiveTransformer,
        TimedeltaTransformer,
    )
    from ferry.types.structs import StructTransformer

    table: list[tuple[type, Callable[[Any, Any, Any, Any], Any]]] = [
        (PrimitiveTransformer, _primitive), (DatetimeTransformer, _datetime), (DateTransformer, _date),
        (TimedeltaTransformer, _timedelta), (BytesTransformer, _bytes), (NoneTransformer, _none),
        (ListTransformer, _list), (DictTransformer, _dict), (UnionTransformer, _union), (EnumTransformer, _enum),
        (BlobTransformer, _blob), (DataFrameTransformer, _frame), (NumpyTransformer, _array),
        (StructTransformer, _struct),
    ]
    return next((parse for cls, parse in table if isinstance(transformer, cls)), None)


def _nested(engine: Any, obj: Any, python_type: Any, where: str) -> Any:
    """An item of a list, dict or struct, by its own transformer; errors say where it is."""
    try:
        return engine.transformer_for(python_type).from_plain(obj, python_type, engine)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{where}: {exc}") from None


def _json(obj: Any, python_type: Any) -> Any:
    """Text is JSON for container types; data from an inputs file already is."""
    if not isinstance(obj, str):
        return obj
    try:
        return json.loads(obj)
    except json.JSONDecodeError as exc:
        raise _NotJSON(obj, python_type, exc) from None


def _shown(obj: Any) -> str:
    try:
        return json.dumps(str(obj) if isinstance(obj, Text) else obj)
    except (TypeError, ValueError):
        return repr(obj)


# ---- primitives ----------------------------------------------------------------------------------

def _primitive(transformer: Any, obj: Any, base: Any, engine: Any) -> Any:
    kind = transformer.python_type
    if kind is bool:
        if isinstance(obj, bool):
            return obj
        if not isinstance(obj, Text):
            raise ValueError(f"expected true or false, got {_shown(obj)}")
        lowered = str(obj).strip().lower()
        if lowered not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError("expected true or false")
        return lowered in ("true", "1", "yes")
    if kind is str:
        if not isinstance(obj, str):
            raise ValueError(f"expected a string, got {_shown(obj)}")
        return str(obj)
    if isinstance(obj, bool) or not isinstance(obj, (Text, int, float)):
        raise ValueError(f"expected a number, got {_shown(obj)}")
    if kind is int and isinstance(obj, float):
        raise ValueError("expected a whole number")
    return kind(obj.strip() if isinstance(obj, str) else obj)


def _datetime(transformer: Any, obj: Any, base: Any, engine: Any) -> dt.datetime:
    if not isinstance(obj, str):
        raise ValueError(f"expected an ISO 8601 date and time (2026-01-31T12:00:00), got {_shown(obj)}")
    return dt.datetime.fromisoformat(obj)


def _date(transformer: Any, obj: Any, base: Any, engine: Any) -> dt.date:
    if not isinstance(obj, str):
        raise ValueError(f"expected an ISO 8601 date (2026-01-31), got {_shown(obj)}")
    return dt.date.fromisoformat(obj)


def _timedelta(transformer: Any, obj: Any, base: Any, engine: Any) -> dt.timedelta:
    if isinstance(obj, bool) or not isinstance(obj, (Text, int, float)):
        raise ValueError(f"expected a number of seconds, got {_shown(obj)}")
    return dt.timedelta(seconds=float(obj))


def _bytes(transformer: Any, obj: Any, base: Any, engine: Any) -> bytes:
    if not isinstance(obj, str):
        raise ValueError(f"expected base64 text or @FILE, got {_shown(obj)}")
    if obj.startswith("@"):
        try:
            with open(os.path.expanduser(obj[1:]), "rb") as fh:
                return fh.read()
        except OSError as exc:
            raise ValueError(f"can't read the file {obj[1:]!r}: {exc.strerror}") from None
    try:
        return base64.b64decode(obj, validate=True)
    except binascii.Error:
        raise ValueError("expected base64 text, or @FILE for a file's contents") from None


def _none(transformer: Any, obj: Any, base: Any, engine: Any) -> None:
    if obj is None or (isinstance(obj, str) and obj.strip().lower() in NONE_WORDS):
        return None
    raise ValueError(f"expected none, got {_shown(obj)}")


# ---- collections ---------------------------------------------------------------------------------

def _list(transformer: Any, obj: Any, base: Any, engine: Any) -> list[Any]:
    args = typing.get_args(base)
    item = args[0] if args else Any
    data = _json(obj, base)
    if not isinstance(data, list):
        raise ValueError(f"expected a JSON list, got {type(data).__name__}")
    return [_nested(engine, x, item, f"item {i}") for i, x in enumerate(data)]


def _dict(transformer: Any, obj: Any, base: Any, engine: Any) -> dict[str, Any]:
    args = typing.get_args(base)
    item = args[1] if len(args) == 2 else Any
    data = _json(obj, base)
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    return {str(k): _nested(engine, v, item, f"key {k!r}") for k, v in data.items()}


def _union(transformer: Any, obj: Any, base: Any, engine: Any) -> Any:
    variants = typing.get_args(base)
    none_ok = type(None) in variants
    if none_ok and (obj is None or (isinstance(obj, str) and obj.strip().lower() in NONE_WORDS)):
        return None
    reasons = []
    for variant in variants:
        if variant is type(None):
            continue
        try:
            return engine.transformer_for(variant).from_plain(obj, variant, engine)
        except (TypeError, ValueError) as exc:
            reasons.append(f"{type_name(variant)}: {exc}")
    raise ValueError(f"matches no variant of {type_name(base)} ({'; '.join(reasons)})")


def _enum(transformer: Any, obj: Any, base: Any, engine: Any) -> Any:
    for member in base:
        if obj == member.value or (isinstance(obj, Text) and obj == str(member.value)):
            return member
    for member in base:
        if obj == member.name:
            return member
    raise ValueError(f"expected one of {', '.join(str(m.value) for m in base)}")


def _struct(transformer: Any, obj: Any, base: Any, engine: Any) -> Any:
    data = _json(obj, base)
    if hasattr(base, "model_validate"):  # pydantic
        return base.model_validate(data)
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object with the fields of {type_name(base)}, got {type(data).__name__}")
    hints = typing.get_type_hints(base, include_extras=True)
    names = [f.name for f in dataclasses.fields(base)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ValueError(f"{type_name(base)} has no field(s) {unknown}; its fields: {', '.join(names)}")
    return base(**{k: _nested(engine, v, hints[k], f"field {k!r}") for k, v in data.items()})


# ---- references: files, frames, arrays -------------------------------------------------------------

def _blob(transformer: Any, obj: Any, base: Any, engine: Any) -> Any:
    if not isinstance(obj, str) or not obj:
        raise ValueError(f"expected a local path or a URL, got {_shown(obj)}")
    return base(os.path.expanduser(obj) if "://" not in obj else obj)


def _frame(transformer: Any, obj: Any, base: Any, engine: Any) -> Any:
    """A data frame from a parquet or CSV file (local path or URL), or from a JSON list of records."""
    from ferry.types.dataframes import frame_library, from_arrow, library

    lib = frame_library(base) or "pyarrow"
    pa = library("pyarrow", lib)
    if isinstance(obj, list) or (isinstance(obj, str) and obj.lstrip().startswith("[")):
        records = _json(obj, base)
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise ValueError("expected a JSON list of records ([{\"column\": value, ...}, ...])")
        return from_arrow(pa.Table.from_pylist(records), lib)
    if not isinstance(obj, str) or not obj:
        raise ValueError(f"expected the path or URL of a parquet or CSV file, got {_shown(obj)}")
    with _opened(obj) as fh:
        head = fh.read(4)
        fh.seek(0)
        if head == b"PAR1" or obj.endswith((".parquet", ".pq")):
            table = library("pyarrow.parquet", lib).read_table(fh)
        else:
            table = library("pyarrow.csv", lib).read_csv(fh)
    return from_arrow(table, lib)


def _array(transformer: Any, obj: Any, base: Any, engine: Any) -> Any:
    """An ndarray from a .npy file (local path or URL; never unpickled), or from a JSON list."""
    from ferry.types.arrays import numpy

    np = numpy()
    if isinstance(obj, list) or (isinstance(obj, str) and obj.lstrip().startswith("[")):
        return np.array(_json(obj, base))
    if not isinstance(obj, str) or not obj:
        raise ValueError(f"expected the path or URL of a .npy file, or a JSON list, got {_shown(obj)}")
    with _opened(obj) as fh:
        return np.load(fh, allow_pickle=False)


@contextlib.contextmanager
def _opened(where: str) -> Iterator[Any]:
    """A local file or a store object, opened for reading; a local file that can't be opened is a ValueError."""
    if "://" in where:
        from ferry.config import active_settings
        from ferry.storage import open_read

        with open_read(where, active_settings().options_for(where, fallback="raw"), "raw") as fh:
            yield fh
        return
    try:
        fh = open(os.path.expanduser(where), "rb")
    except OSError as exc:
        raise ValueError(f"can't open {where!r}: {exc.strerror}") from None
    with fh:
        yield fh
