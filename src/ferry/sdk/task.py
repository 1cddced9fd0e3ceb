"""``@task``: a typed Python function that ferry can run anywhere.

The interface is extracted when the function is decorated, so an untyped or
unsupported parameter fails at import, not at run time. Calling a task with
Python values runs it through the same path as a pod: values -> literals ->
values -> function -> literals -> values.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, TypeVar, overload

from ferry.interface import Interface, bind_inputs, extract

F = TypeVar("F", bound=Callable[..., Any])


class Task:
    """A decorated function with its typed interface and run options."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        retries: int = 0,
        cache: bool = False,
        cache_version: str = "",
        name: str | None = None,
        cpu: float | None = None,
        memory: str | int | None = None,
        gpu: int | None = None,
    ) -> None:
        from ferry.types import default_engine

        self.fn = fn
        self.resources = _resources(cpu, memory, gpu)
        self.name = name or f"{fn.__module__}.{fn.__qualname__}"
        self.retries = retries
        self.cache = cache
        self.cache_version = cache_version
        self.interface: Interface = extract(fn, default_engine())
        self._signature = inspect.signature(fn)
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]

    @property
    def reference(self) -> str:
        from ferry.sdk.loader import reference_of

        return reference_of(self.fn)

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Positional and keyword arguments -> {input name: value}, with a clear error when they don't fit."""
        return bind_inputs(f"Task {self.name}", self.interface, self._signature, args, kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from ferry.sdk.workflow import add_node, compiling

        values = self.bind(args, kwargs)
        if compiling() is not None:  # inside a @workflow body: record a node, return promises
            i = self.interface
            return add_node("task", self.name, self, i.inputs, i.outputs, values, i.output_tuple)
        from ferry.sdk.local import call_task

        return call_task(self, values)

    def __repr__(self) -> str:
        return f"<ferry task {self.name}>"


def _resources(cpu: float | None, memory: str | int | None, gpu: int | None) -> dict[str, float]:
    """Resource requests, as executors that place tasks (Dask) understand them."""
    from ferry.config import parse_size
    from ferry.errors import InterfaceError

    out: dict[str, float] = {}
    if cpu is not None:
        out["CPU"] = float(cpu)
    if memory is not None:
        try:
            out["MEMORY"] = float(parse_size(str(memory)))
        except ValueError:
            raise InterfaceError(f"memory={memory!r} is not a size; use e.g. '2GiB' or a number of bytes.") from None
    if gpu is not None:
        out["GPU"] = float(gpu)
    if any(v < 0 for v in out.values()):
        raise InterfaceError(f"Resource requests can't be negative: {out}.")
    return out


@overload
def task(fn: F) -> Task: ...
@overload
def task(*, retries: int = 0, cache: bool = False, cache_version: str = "", name: str | None = None,
         cpu: float | None = None, memory: str | int | None = None, gpu: int | None = None) -> Callable[[F], Task]: ...


def task(fn: Any = None, **options: Any) -> Any:
    """Declare a task: ``@task`` or ``@task(retries=2, cache=True, cache_version="1", cpu=2, memory="4GiB")``."""
    if fn is None:
        return lambda f: Task(f, **options)
    return Task(fn, **options)
