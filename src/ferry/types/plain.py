"""Plain text and JSON -> Python values of a declared type (command-line inputs, a program's outputs)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import types
import typing
from typing import Any

from ferry.errors import TypeMismatchError
from ferry.types.engine import strip_annotated, type_name


def parse_value(name: str, text: str, python_type: Any) -> Any:
    """Parse ``--name text`` for an input declared as ``python_type``."""
    base, _ = strip_annotated(python_type)
    try:
        if base is str:
            return text
        if _is_blob(base) or base in (int, float, bool, dt.datetime, dt.date, dt.timedelta) or (
                isinstance(base, type) and issubclass(base, enum.Enum)):
            return from_plain(text, base)
        return from_plain(json.loads(text), base)
    except json.JSONDecodeError as exc:
        raise TypeMismatchError(f"--{name}: {text!r} is not valid JSON for {type_name(python_type)} ({exc.msg}).") from None
    except (TypeError, ValueError) as exc:
        raise TypeMismatchError(f"--{name}: can't read {text!r} as {type_name(python_type)}: {exc}") from None


def _is_blob(t: Any) -> bool:
    from ferry.types.files import _Blob

    return isinstance(t, type) and issubclass(t, _Blob)


def from_plain(obj: Any, python_type: Any) -> Any:
    """JSON-like data (or a string) -> a value of ``python_type``."""
    base, _ = strip_annotated(python_type)
    origin = typing.get_origin(base)
    if base is bool:
        if isinstance(obj, bool):
            return obj
        lowered = str(obj).lower()
        if lowered not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError("expected true or false")
        return lowered in ("true", "1", "yes")
    if base in (int, float, str):
        if isinstance(obj, bool) or (base is str and not isinstance(obj, str)):
            raise ValueError(f"expected {'a string' if base is str else 'a number'}, got {json.dumps(obj)}")
        if base is int and isinstance(obj, float):
            raise ValueError("expected a whole number")
        return base(obj)
    if base is dt.datetime:
        return dt.datetime.fromisoformat(obj)
    if base is dt.date:
        return dt.date.fromisoformat(obj)
    if base is dt.timedelta:
        return dt.timedelta(seconds=float(obj))
    if _is_blob(base):
        return base(obj)
    if isinstance(base, type) and issubclass(base, enum.Enum):
        return base(obj)
    if origin is list:
        (item,) = typing.get_args(base)
        if not isinstance(obj, list):
            raise ValueError(f"expected a JSON list, got {type(obj).__name__}")
        return [_item(i, x, item) for i, x in enumerate(obj)]
    if origin is dict:
        _, item = typing.get_args(base)
        if not isinstance(obj, dict):
            raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
        return {k: from_plain(v, item) for k, v in obj.items()}
    if origin in (typing.Union, types.UnionType):
        if obj is None and type(None) in typing.get_args(base):
            return None
        for arg in typing.get_args(base):
            try:
                return from_plain(obj, arg)
            except (TypeError, ValueError):
                continue
        raise ValueError(f"matches no variant of {type_name(base)}")
    if isinstance(base, type) and dataclasses.is_dataclass(base):
        hints = typing.get_type_hints(base)
        return base(**{k: from_plain(v, hints[k]) for k, v in obj.items()})
    if hasattr(base, "model_validate"):
        return base.model_validate(obj)
    if base is type(None) and obj is None:
        return None
    raise TypeError(f"{type_name(base)} can't be given on the command line")


def _item(index: int, obj: Any, python_type: Any) -> Any:
    try:
        return from_plain(obj, python_type)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"item {index}: {exc}") from None
