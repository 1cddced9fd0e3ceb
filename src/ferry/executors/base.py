"""The executor interface: run one task attempt, given only URIs, and say how the process ended."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class TaskRequest:
    """Everything a task attempt needs, as a pod would get it: a task reference and URIs."""

    task_ref: str  # MODULE:NAME or FILE.py:NAME
    inputs_uri: str
    output_prefix: str
    raw_output_prefix: str
    scope: str  # execution/node/attempt
    task: Any = None  # the Task object, for in-process executors only
    cache_uri: str = ""  # memoized outputs to reuse or fill
    datasets: tuple[str, ...] = ()  # persistent-store objects among the inputs (placement hints)
    resources: Any = None  # e.g. {"CPU": 2, "MEMORY": 4e9, "GPU": 1}


@dataclass(frozen=True)
class TaskResult:
    """How the attempt ended. The outcome itself is in outputs.pb / error.pb under output_prefix."""

    exit_code: int
    detail: str = ""  # e.g. the tail of stderr when a process died without writing error.pb
    worker: str = ""  # where it ran (process id, Dask worker address)
    cached: bool = False  # outputs came from the memoization cache
    note: str = ""  # anything else worth recording, e.g. node-cache hits


class Executor(Protocol):
    name: str
    # An executor that places attempts near their data sets ``placement = True``; only then does the
    # engine walk each attempt's inputs for persistent-store URIs (``TaskRequest.datasets``).

    def run(self, request: TaskRequest) -> TaskResult:
        """Run one attempt and block until it ends. Safe to call from several threads."""
        ...

    def cancel_all(self) -> None:
        """Stop every running attempt (Ctrl-C)."""
        ...

    def close(self) -> None: ...
