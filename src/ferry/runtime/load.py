"""Find the task an attempt names; if it can't be found, say so in error.pb like any other failure."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from ferry.errors import FerryError

if TYPE_CHECKING:
    from ferry.sdk.task import Task

_loaded: dict[str, "Task"] = {}  # a worker process imports each task once


def load_task(reference: str, output_prefix: str) -> "Task | None":
    """The task at MODULE:NAME or FILE.py:NAME, or None after writing error.pb (and telling stderr)."""
    from ferry.config import active_settings
    from ferry.literals import serialize
    from ferry.runtime.execute import ERROR, error_document
    from ferry.sdk.loader import load_object, split_reference
    from ferry.sdk.task import Task
    from ferry.storage import join, write_bytes

    if reference in _loaded:
        return _loaded[reference]
    try:
        task = load_object(*split_reference(reference), Task, "task")
    except FerryError as exc:
        print(f"ferry.runtime: {exc}", file=sys.stderr)
        try:
            write_bytes(join(output_prefix, ERROR), serialize(error_document(exc)),
                        active_settings().options_for(output_prefix), "metadata")
        except FerryError:
            pass  # the metadata store itself is unreachable: the engine reports a system error
        return None
    _loaded[reference] = task
    return task
