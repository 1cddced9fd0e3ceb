"""The executor interface: run one task attempt, given its TaskTemplate and URIs, and say how the process ended.

What an executor reads from the template is spelled here once: whether it is a
ferry task (run by the warm ferry runtime) or any other container command
(run with its ``{{.input}}``-style templates filled in), its timeout, and its
resource requests, which every executor honours or refuses with a clear error.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from flyteidl.core import tasks_pb2

from ferry.errors import ConfigError
from ferry.layout import STATUS_OF_EXIT, Outcome, Status
from ferry.literals import LiteralMap
from ferry.units import parse_quantity

RUNTIME_FLAVOR = "ferry"  # TaskTemplate.metadata.runtime.flavor of tasks the ferry runtime runs
PROGRAM_FLAVOR = "ferry-container"  # ... of ContainerTasks, run by ferry's program runner


def runtime_args(reference: str) -> list[str]:
    """The container args of a ferry task; the engine fills in the ``{{.x}}`` templates per attempt."""
    return ["python", "-m", "ferry.runtime", "--task", reference, "--inputs", "{{.input}}",
            "--output-prefix", "{{.outputPrefix}}", "--raw-output-prefix", "{{.rawOutputDataPrefix}}"]


@dataclass(frozen=True)
class TaskRequest:
    """Everything a task attempt needs, as a pod would get it: the task's spec and URIs."""

    task: tasks_pb2.TaskTemplate
    inputs_uri: str
    output_prefix: str  # where outputs.pb / error.pb go
    raw_output_prefix: str  # this attempt's own raw folder
    cache_uri: str = ""  # memoized outputs to reuse or fill
    datasets: tuple[str, ...] = ()  # persistent-store objects among the inputs (placement hints)
    inputs: LiteralMap | None = None  # the inputs.pb LiteralMap, for an executor running the attempt in this very process
    keep_outcome: bool = False  # an in-process attempt hands its outputs back in TaskResult.outcome, writing no outputs.pb
    on_start: Callable[[], None] | None = field(default=None, compare=False, repr=False)

    def started(self) -> None:
        """Say the attempt has left the executor's queue: it runs now (or has been handed to the cluster)."""
        if self.on_start is not None:
            self.on_start()

    @property
    def reference(self) -> str | None:
        return ferry_reference(self.task)

    @property
    def timeout(self) -> float | None:
        return timeout_of(self.task)

    @property
    def resources(self) -> dict[str, float]:
        return resources_of(self.task)

    def command(self) -> list[str]:
        """The template's container command and args with the attempt's values filled in."""
        raw = self.raw_output_prefix
        if flytekit_task(self.task) and raw.startswith("file://"):
            raw = raw[len("file://"):]  # flytekit writes local outputs under a plain path, and reads only those
        values = {
            "{{.input}}": self.inputs_uri, "{{.Input}}": self.inputs_uri,
            "{{.inputPrefix}}": self.inputs_uri.rsplit("/", 1)[0],
            "{{.outputPrefix}}": self.output_prefix, "{{.OutputPrefix}}": self.output_prefix,
            "{{.rawOutputDataPrefix}}": raw, "{{.RawOutputDataPrefix}}": raw,
            "{{.checkpointOutputPrefix}}": self.output_prefix + "/checkpoint", "{{.prevCheckpointPrefix}}": '""',
        }
        out = []
        for arg in [*self.task.container.command, *self.task.container.args]:
            for name, value in values.items():
                arg = arg.replace(name, value)
            out.append(arg)
        return out


@dataclass(frozen=True)
class TaskResult:
    """How the attempt's process ended. The outcome itself is in outputs.pb / error.pb under output_prefix."""

    status: Status | None  # None: the process ended without saying (killed, crashed)
    detail: str = ""  # e.g. the tail of stderr, or why the attempt was stopped
    worker: str = ""  # where it ran (process id, Dask worker)
    note: str = ""  # anything else worth recording, e.g. node-cache hits
    exit_code: int | None = None
    timed_out: bool = False  # stopped at the task's timeout
    outcome: Outcome | None = None  # the attempt's Outcome, when it ran in this process (no need to read it back)

    @classmethod
    def from_exit(cls, code: int, detail: str = "", worker: str = "") -> "TaskResult":
        return cls(STATUS_OF_EXIT.get(code), detail, worker, exit_code=code)

    def describe(self) -> str:
        if self.exit_code is None:
            return "no exit code"
        if self.exit_code < 0:
            return f"killed by signal {-self.exit_code}"
        return f"exit code {self.exit_code}"


class Executor(Protocol):
    name: str
    # An executor that places attempts near their data sets ``placement = True``; only then does the
    # engine walk each attempt's inputs for persistent-store URIs (``TaskRequest.datasets``).

    def run(self, request: TaskRequest) -> TaskResult:
        """Run one attempt and block until it ends, calling ``request.started()`` once it leaves the
        executor's own queue (resources free, a worker taken). Safe to call from several threads."""
        ...

    def cancel_all(self) -> None:
        """Stop every running attempt (Ctrl-C)."""
        ...

    # An executor that can run attempts in the engine's own process has ``in_process(task) -> bool``; for
    # those attempts the engine may keep small inputs and outputs in its records (``keep_outcome``), and
    # runs a map's elements one after another when they would only take turns (``takes_turns``).

    def close(self) -> None: ...


def ferry_reference(task: tasks_pb2.TaskTemplate) -> str | None:
    """MODULE:NAME of a task the ferry runtime runs; None for any other container."""
    if task.metadata.runtime.flavor != RUNTIME_FLAVOR:
        return None
    args = list(task.container.args)
    try:
        return str(args[args.index("--task") + 1])
    except (ValueError, IndexError):
        return None


def is_program(task: tasks_pb2.TaskTemplate) -> bool:
    """Whether a task is a ContainerTask run by ferry's program runner (a warm worker can run it)."""
    return task.metadata.runtime.flavor == PROGRAM_FLAVOR


def flytekit_task(task: tasks_pb2.TaskTemplate) -> bool:
    """Whether a task's spec was made by flytekit (run by ``pyflyte-execute``)."""
    return task.metadata.runtime.type == tasks_pb2.RuntimeMetadata.FLYTE_SDK


def timeout_of(task: tasks_pb2.TaskTemplate) -> float | None:
    seconds = task.metadata.timeout.ToTimedelta().total_seconds() if task.metadata.HasField("timeout") else 0.0
    return seconds or None


def resources_of(task: tasks_pb2.TaskTemplate) -> dict[str, float]:
    """Requests as numbers: {"CPU": 2.0, "MEMORY": bytes, "GPU": 1.0}; limits count as requests when no request is set."""
    names = {tasks_pb2.Resources.CPU: "CPU", tasks_pb2.Resources.MEMORY: "MEMORY", tasks_pb2.Resources.GPU: "GPU"}
    out: dict[str, float] = {}
    for entry in [*task.container.resources.limits, *task.container.resources.requests]:  # requests win
        name = names.get(entry.name)
        if name is None:
            continue
        try:
            out[name] = parse_quantity(entry.value, cpu=name == "CPU")
        except ValueError:
            raise ConfigError(f"Task {task.id.name}: resource {name} = {entry.value!r} is not a quantity.") from None
    return out


def machine_capacity() -> dict[str, float]:
    """What this machine offers tasks that run on it: its CPUs, its memory, no GPUs unless FERRY_GPUS says."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {"CPU": float(os.cpu_count() or 1), "MEMORY": float(memory), "GPU": float(os.environ.get("FERRY_GPUS", 0))}


class ResourcePool:
    """Requests honoured on one machine: an attempt waits until what it asks for is free; one that
    asks for more than the machine has is refused with the numbers."""

    def __init__(self, capacity: dict[str, float], executor: str) -> None:
        self.capacity = capacity
        self.executor = executor
        self.free = dict(capacity)
        self._lock = threading.Lock()
        # attempts waiting, oldest first, each woken alone once what it asks for is set aside for it (not every
        # waiter at each release, to find that most still don't fit)
        self._waiting: list[tuple[dict[str, float], threading.Event]] = []

    def check(self, task: str, wanted: dict[str, float]) -> None:
        too_big = {k: v for k, v in wanted.items() if v > self.capacity.get(k, 0)}
        if too_big:
            raise ConfigError(
                f"Task {task} requests {too_big}, more than the {self.executor} executor has here "
                f"({ {k: self.capacity.get(k, 0) for k in too_big} }). Lower the request, or run on a Dask cluster "
                "whose workers offer it (--executor dask)."
            )

    def _take(self, wanted: dict[str, float]) -> bool:
        if any(self.free.get(k, 0) < v for k, v in wanted.items()):
            return False
        for k, v in wanted.items():
            self.free[k] -= v
        return True

    def acquire(self, wanted: dict[str, float]) -> None:
        with self._lock:
            if self._take(wanted):
                return
            granted = threading.Event()
            self._waiting.append((wanted, granted))
        granted.wait()

    def release(self, wanted: dict[str, float]) -> None:
        with self._lock:
            for k, v in wanted.items():
                self.free[k] += v
            still = []
            for waiter, granted in self._waiting:  # oldest first; a smaller request behind a big one may go ahead
                if self._take(waiter):
                    granted.set()
                else:
                    still.append((waiter, granted))
            self._waiting = still
