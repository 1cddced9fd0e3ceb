"""Executors decide where the task runtime runs; the data path is the same for all of them."""

from __future__ import annotations

from typing import Any

from ferry.errors import ConfigError, install_line
from ferry.executors.base import Executor, TaskRequest, TaskResult

__all__ = ["Executor", "TaskRequest", "TaskResult", "check_executor", "make_executor"]

EXECUTORS = {
    "inline": "ferry.executors.inline:InlineExecutor",
    "process": "ferry.executors.process:ProcessExecutor",
    "dask": "ferry.executors.dask:DaskExecutor",
}


def check_executor(name: str) -> str:
    """Where executor ``name`` is defined (``module:class``), or a ConfigError naming the known ones."""
    target = EXECUTORS.get(name)
    if target is None:
        raise ConfigError(f"Unknown executor {name!r}; choose one of {', '.join(sorted(EXECUTORS))}.")
    return target


def make_executor(name: str, **options: Any) -> Executor:
    """An executor by name (``inline``, ``process``, ``dask``), with its options."""
    import importlib

    module, _, cls = check_executor(name).partition(":")
    try:
        loaded = importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(f"The {name} executor needs a package that is not installed ({exc}). "
                          f"Install it with: {install_line('dask')}.") from exc
    executor: Executor = getattr(loaded, cls)(**options)
    return executor
