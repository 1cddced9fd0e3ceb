"""ferry: typed Python tasks and workflows; small values travel inline, large ones by reference."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ferry.version import __version__ as __version__

__all__ = ["ContainerTask", "Directory", "Execution", "File", "LaunchPlan", "Settings", "conditional", "current_context",
           "dataset", "dynamic", "launch", "map_task", "resume", "run", "task", "workflow"]
if TYPE_CHECKING:  # what type checkers see; at run time the names load on first use (below)
    from ferry.client import Execution, launch, resume, run
    from ferry.config import Settings
    from ferry.sdk.container import ContainerTask
    from ferry.sdk.context import current_context
    from ferry.sdk.dynamic import dynamic
    from ferry.sdk.launch_plan import LaunchPlan
    from ferry.sdk.task import task
    from ferry.sdk.workflow import conditional, map_task, workflow
    from ferry.types.files import Directory, File, dataset

_LAZY = {
    "task": "ferry.sdk.task",
    "File": "ferry.types.files",
    "Directory": "ferry.types.files",
    "Settings": "ferry.config",
    "workflow": "ferry.sdk.workflow",
    "conditional": "ferry.sdk.workflow",
    "map_task": "ferry.sdk.workflow",
    "LaunchPlan": "ferry.sdk.launch_plan",
    "ContainerTask": "ferry.sdk.container",
    "dynamic": "ferry.sdk.dynamic",
    "run": "ferry.client",
    "launch": "ferry.client",
    "resume": "ferry.client",
    "Execution": "ferry.client",
    "dataset": "ferry.types.files",
    "current_context": "ferry.sdk.context",
}


def __getattr__(name: str) -> Any:
    """Import public names on first use, so that ``import ferry`` stays fast."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ferry' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
