"""``@task``: a typed Python function that ferry can run anywhere, and its flyteidl TaskTemplate.

The interface is extracted when the function is decorated, so an untyped or
unsupported parameter fails at import, not at run time. ``template()`` is the
spec the engine runs: a container whose command is the ferry task runtime,
``python -m ferry.runtime --task MODULE:NAME --inputs {{.input}} ...``.
Calling a task with Python values runs it through the same path as a pod.
"""

from __future__ import annotations

import datetime as dt
import functools
import inspect
from typing import TYPE_CHECKING, Any, Callable, Generic, ParamSpec, TypeVar, cast, overload

from flyteidl.core import identifier_pb2, literals_pb2, tasks_pb2

from ferry.executors.base import RUNTIME_FLAVOR, runtime_args
from ferry.interface import Interface, bind_inputs, extract
from ferry.runtime.load import PICKLED

if TYPE_CHECKING:
    from ferry.sdk.constants import Convert

P = ParamSpec("P")
R = TypeVar("R", covariant=True)
PROJECT, DOMAIN = "ferry", "default"  # the Identifier scope of everything ferry registers


def task_metadata(flavor: str, cache: bool, cache_version: str, retries: int, timeout: float | None) -> tasks_pb2.TaskMetadata:
    """A TaskTemplate's metadata: memoization, the runtime that runs it (``flavor``), retries and timeout."""
    from ferry.version import __version__

    metadata = tasks_pb2.TaskMetadata(
        discoverable=cache, discovery_version=cache_version,
        runtime=tasks_pb2.RuntimeMetadata(type=tasks_pb2.RuntimeMetadata.OTHER, version=__version__, flavor=flavor),
        retries=literals_pb2.RetryStrategy(retries=retries),
    )
    if timeout:
        metadata.timeout.FromTimedelta(dt.timedelta(seconds=timeout))
    return metadata


def identifier(kind: identifier_pb2.ResourceType, name: str, version: str = "") -> identifier_pb2.Identifier:
    return identifier_pb2.Identifier(resource_type=kind, project=PROJECT, domain=DOMAIN, name=name, version=version)


class Task(Generic[P, R]):
    """A decorated function with its typed interface and run options.

    Generic over the function's parameters and return type, so that a type checker sees a call of the
    task as a call of the function. Inside a ``@workflow`` body the call returns promises that stand in
    for the values (``R`` to the checker, as in flytekit): they are passed on to other calls, compared
    in conditions, and their NamedTuple fields read.
    """

    ferry_kind = "task"

    def __init__(
        self,
        fn: Callable[P, R],
        *,
        retries: int = 0,
        cache: bool = False,
        cache_version: str = "",
        name: str | None = None,
        timeout: float | dt.timedelta | None = None,
        cpu: float | str | None = None,
        memory: str | int | None = None,
        gpu: int | None = None,
    ) -> None:
        from ferry.errors import InterfaceError
        from ferry.types import default_engine

        self.fn = fn
        self.name = name or f"{fn.__module__}.{fn.__qualname__}"
        if retries < 0:
            raise InterfaceError(f"Task {self.name}: retries must be 0 or more, got {retries}.")
        self.retries = retries
        self.cache = cache
        self.cache_version = cache_version
        self.timeout = _seconds(self.name, timeout)
        self.resources = resource_requests(self.name, cpu, memory, gpu)
        self.interface: Interface = extract(fn, default_engine())
        self._signature = inspect.signature(fn)
        self._templates: dict[str, tasks_pb2.TaskTemplate] = {}
        functools.update_wrapper(self, fn)

    def template(self, version: str = "", convert: Convert | None = None) -> tasks_pb2.TaskTemplate:
        """The flyteidl TaskTemplate of this task (built once per version).

        A task that other processes can't import travels by value (``ferry.sdk.byvalue``): ``convert``, given
        when its workflow is registered or launched, uploads it; such a template is built anew each time, so
        that it holds the code and the globals it reads as they are now.
        """
        from ferry.runtime.load import importable_reference, source_digest

        cached = self._templates.get(version)
        if cached is not None:
            return cached
        reference = importable_reference(self.fn)
        if reference is not None:
            digest = source_digest(self.fn)  # the runtime refuses to run this version if the file changes
            reference = f"{reference}#{digest}" if digest else reference
        else:
            from ferry.sdk.byvalue import pickled_reference

            reference = pickled_reference(self, convert)
        metadata = task_metadata(RUNTIME_FLAVOR, self.cache, self.cache_version, self.retries, self.timeout)
        container = tasks_pb2.Container(args=runtime_args(reference))
        for name, value in self.resources.items():
            container.resources.requests.add(name=getattr(tasks_pb2.Resources, name), value=value)
        template = tasks_pb2.TaskTemplate(
            id=identifier(identifier_pb2.TASK, self.name, version), type="python-task", metadata=metadata,
            interface=self.interface.typed, container=container,
        )
        if not reference.startswith(PICKLED):
            self._templates[version] = template
        return template

    def __getstate__(self) -> dict[str, Any]:
        """What a task pickled by value holds: everything but the templates built from it."""
        return {**self.__dict__, "_templates": {}}

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Positional and keyword arguments -> {input name: value}, with a clear error when they don't fit."""
        return bind_inputs(f"Task {self.name}", self.interface, self._signature, args, kwargs)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        from ferry.sdk.workflow import add_node, compiling

        values = self.bind(args, kwargs)
        if compiling() is not None:  # inside a @workflow body: record a node, return promises
            i = self.interface
            return cast(R, add_node("task", self.name, self, i.inputs, i.outputs, values, i.output_tuple))
        from ferry.client import call_task

        return cast(R, call_task(self, values))

    def as_workflow(self) -> Any:
        """A workflow of one node that runs this task (what ``ferry run FILE TASK`` and ``ferry.run(task)`` run)."""
        from ferry.sdk.workflow import task_workflow

        return task_workflow(self)

    def __repr__(self) -> str:
        return f"<ferry task {self.name}>"


def _seconds(name: str, timeout: float | dt.timedelta | None) -> float | None:
    from ferry.errors import InterfaceError

    if timeout is None:
        return None
    seconds = timeout.total_seconds() if isinstance(timeout, dt.timedelta) else float(timeout)
    if seconds <= 0:
        raise InterfaceError(f"Task {name}: timeout must be positive (seconds or a timedelta), got {timeout!r}.")
    return seconds


def resource_requests(name: str, cpu: float | str | None, memory: str | int | None, gpu: int | None) -> dict[str, str]:
    """Resource requests as flyteidl spells them (``{"CPU": "2", "MEMORY": "4294967296", "GPU": "1"}``),
    checked now so that a typo fails at import."""
    from ferry.errors import InterfaceError
    from ferry.units import parse_quantity

    out: dict[str, str] = {}
    for key, value, unit in (("CPU", cpu, "CPUs, e.g. 2 or '500m'"), ("MEMORY", memory, "a size, e.g. '4GiB' or '512Mi'"),
                             ("GPU", gpu, "a whole number of GPUs")):
        if value is None:
            continue
        try:
            amount = parse_quantity(str(value), cpu=key == "CPU")
        except ValueError:
            raise InterfaceError(f"Task {name}: {key.lower()}={value!r} is not {unit}.") from None
        if amount < 0 or (key == "GPU" and amount != int(amount)):
            raise InterfaceError(f"Task {name}: {key.lower()}={value!r} must be {unit}, not negative.")
        out[key] = f"{amount:g}" if key != "MEMORY" else str(int(amount))
    return out


@overload
def task(fn: Callable[P, R], /) -> Task[P, R]: ...
@overload
def task(*, retries: int = 0, cache: bool = False, cache_version: str = "", name: str | None = None,
         timeout: float | dt.timedelta | None = None, cpu: float | str | None = None,
         memory: str | int | None = None, gpu: int | None = None) -> Callable[[Callable[P, R]], Task[P, R]]: ...


def task(fn: Any = None, **options: Any) -> Any:
    """Declare a task: ``@task`` or ``@task(retries=2, cache=True, cache_version="1", timeout=60, cpu=2, memory="4GiB")``."""
    if fn is None:
        return lambda f: Task(f, **options)
    return Task(fn, **options)
