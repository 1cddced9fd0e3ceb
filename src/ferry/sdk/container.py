"""``ferry.ContainerTask``: a program in any language as a task, its data moved by ferry.

    count = ContainerTask("count", command=["sh", "-c", "wc -l < {{.inputs.f}} > {{.outputDir}}/n"],
                          inputs={"f": File}, outputs={"n": int})

Its spec is a raw container (flyteidl TaskTemplate) whose command is the ferry
program runner (``python -m ferry.runtime.container ... -- COMMAND``): it puts the
inputs in files, runs the program, and turns the files the program writes into
outputs (see ``ferry.runtime.container`` for the forms). The program needs no ferry.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from flyteidl.core import identifier_pb2, tasks_pb2

from ferry.errors import FerryError, InterfaceError
from ferry.executors.base import PROGRAM_FLAVOR
from ferry.interface import Interface, bind_inputs
from ferry.literals import TypedInterface, Variable, serialize
from ferry.runtime.container import Program, fill_script, shell_script_index
from ferry.sdk.task import _seconds, identifier, resource_requests, task_metadata


class ContainerTask:
    """A task that runs ``command``; ``inputs`` and ``outputs`` declare its typed interface."""

    ferry_kind = "task"

    def __init__(self, name: str, command: list[str], inputs: dict[str, Any] | None = None,
                 outputs: dict[str, Any] | None = None, *, retries: int = 0, timeout: float | dt.timedelta | None = None,
                 cpu: float | str | None = None, memory: str | int | None = None, gpu: int | None = None,
                 image: str = "", cache: bool = False, cache_version: str = "") -> None:
        from ferry.types import default_engine

        if not command or not all(isinstance(a, str) for a in command):
            raise InterfaceError(f"ContainerTask {name}: command must be a non-empty list of strings, got {command!r}.")
        self.name = name
        self.command = list(command)
        self.retries = retries
        self.timeout = _seconds(name, timeout)
        self.resources = resource_requests(name, cpu, memory, gpu)
        self.image = image
        self.cache = cache
        self.cache_version = cache_version
        engine = default_engine()
        typed = TypedInterface()
        for direction, declared in (("input", inputs or {}), ("output", outputs or {})):
            target = typed.inputs.variables if direction == "input" else typed.outputs.variables
            for var, var_type in declared.items():
                try:
                    target[var].CopyFrom(Variable(type=engine.literal_type(var_type)))
                except FerryError as exc:
                    raise InterfaceError(f"ContainerTask {name}: {direction} {var!r}: {exc}") from exc
        self.interface = Interface(dict(inputs or {}), dict(outputs or {}), {}, typed)
        self._check_placeholders()
        program = Program(name, self.command, self.interface)
        self.fn = program.fn

    def _check_placeholders(self) -> None:
        import re

        for arg in self.command:
            for used in re.findall(r"\{\{\.inputs\.(\w+)\}\}", arg):
                if used not in self.interface.inputs:
                    raise InterfaceError(f"ContainerTask {self.name}: the command uses {{{{.inputs.{used}}}}}, but "
                                         f"{used!r} is not one of its inputs ({', '.join(self.interface.inputs) or 'none'}).")
        script = shell_script_index(self.command)
        if script is not None:
            try:  # a placeholder where its value can't be quoted fails now, not at run time
                fill_script(self.command[script], {k: "" for k in re.findall(r"\{\{\.\w+(?:\.\w+)?\}\}", self.command[script])})
            except FerryError as exc:
                raise InterfaceError(f"ContainerTask {self.name}: {exc}") from None

    def template(self, version: str = "", convert: Any = None) -> tasks_pb2.TaskTemplate:
        """A raw-container TaskTemplate: the program runner, the interface it converts by, and the command.
        (``convert`` is there to match ``Task.template``; a program has nothing to upload.)"""
        metadata = task_metadata(PROGRAM_FLAVOR, self.cache, self.cache_version, self.retries, self.timeout)
        interface = base64.b64encode(serialize(self.interface.typed)).decode()
        args = ["python", "-m", "ferry.runtime.container", "--name", self.name, "--interface", interface,
                "--inputs", "{{.input}}", "--output-prefix", "{{.outputPrefix}}",
                "--raw-output-prefix", "{{.rawOutputDataPrefix}}", "--", *self.command]
        container = tasks_pb2.Container(image=self.image, args=args)
        for name, value in self.resources.items():
            container.resources.requests.add(name=getattr(tasks_pb2.Resources, name), value=value)
        return tasks_pb2.TaskTemplate(id=identifier(identifier_pb2.TASK, self.name, version), type="raw-container",
                                      metadata=metadata, interface=self.interface.typed, container=container)

    def __call__(self, **kwargs: Any) -> Any:
        import inspect

        from ferry.sdk.workflow import add_node, compiling

        signature = inspect.Signature([inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY)
                                       for n in self.interface.inputs])
        values = bind_inputs(f"ContainerTask {self.name}", self.interface, signature, (), kwargs)
        if compiling() is not None:
            i = self.interface
            return add_node("task", self.name, self, i.inputs, i.outputs, values)
        from ferry.client import call_task

        return call_task(self, values)

    def as_workflow(self) -> Any:
        """A workflow of one node that runs this task (what ``ferry run FILE TASK`` and ``ferry.run(task)`` run)."""
        from ferry.sdk.workflow import task_workflow

        return task_workflow(self)

    def __repr__(self) -> str:
        return f"<ferry container task {self.name}: {' '.join(self.command)}>"
