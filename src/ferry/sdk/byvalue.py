"""Tasks that another process can't import travel by value: defined in a notebook cell or inside a function.

Such a task is pickled with cloudpickle (its function's code and what the code uses)
and, when its workflow is registered or launched, uploaded to the raw store like a
workflow constant, signed as every pickle ferry writes (``ferry.types.pickled``).
Its template then runs ``--task pickle:DIGEST@URI``: the runtime loads it from there,
only when the signature verifies (``ferry.runtime.load``). DIGEST names the pickled
code, so a changed cell is a new version, and a process that holds the task itself
(the inline executor, a direct call) runs it without loading anything.
"""

from __future__ import annotations

import hashlib
import pickle
import weakref
from typing import Any

from ferry.errors import InterfaceError
from ferry.literals import Literal, LiteralType
from ferry.runtime.load import PICKLED
from ferry.sdk.constants import Constant, Convert
from ferry.types.pickled import PickleTransformer


class PickledTask:
    """A task pickled by value; unpickling it gives the task back (the pickle ferry signs holds this)."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        return pickle.loads, (self.payload,)


class PickledTaskTransformer(PickleTransformer):
    """Uploads a PickledTask as a signed pickle blob (no warning: this pickle is ferry's own choice)."""

    name = "task-pickle"
    python_types = (PickledTask,)

    def literal_type(self, python_type: Any, engine: Any) -> LiteralType:
        lt = super().literal_type(python_type, engine)
        lt.metadata.update({"python_class": "ferry task"})
        return lt


def pickled_reference(task: Any, convert: Convert | None) -> str:
    """``pickle:DIGEST@URI`` of ``task`` uploaded through ``convert``; ``pickle:DIGEST`` when nothing is uploaded
    (no ``convert``, or one that only outlines, as when a version is computed)."""
    payload = _pickle(task)
    reference = f"{PICKLED}{hashlib.sha256(payload).hexdigest()[:16]}"
    if convert is None:
        return reference
    _register_transformer()
    literal: Literal = convert(Constant(PickledTask(payload), PickledTask, f"Task {task.name} (by value)"))
    uri = literal.scalar.blob.uri
    return f"{reference}@{uri}" if uri else reference


def _pickle(task: Any) -> bytes:
    import cloudpickle

    try:
        return bytes(cloudpickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception as exc:  # noqa: BLE001 - whatever the function holds that can't be pickled
        raise InterfaceError(
            f"Task {task.name} is defined where other processes can't import it (a notebook cell, a function), so "
            f"it travels by value, but it can't be pickled: {type(exc).__name__}: {exc}. Keep what it uses "
            "picklable (no open files, locks or connections in the globals it reads), or move it to a module."
        ) from exc


_taught: weakref.WeakSet[Any] = weakref.WeakSet()  # the engines that know PickledTask


def _register_transformer() -> None:
    from ferry.types import default_engine

    engine = default_engine()
    if engine not in _taught:
        engine.register(PickledTaskTransformer())
        _taught.add(engine)
