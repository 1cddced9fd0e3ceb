"""Compile tasks, workflows and launch plans into the specs the engine runs and the registry keeps.

``bundle`` gives the flyteidl admin specs of a registration (what a Flyte
package holds); ``closure`` gives the CompiledWorkflowClosure of one workflow,
for a run that needs no registration (``wf(...)``). ``code_version`` is the
default version: a hash of the code, so registering unchanged code is a no-op.
"""

from __future__ import annotations

import hashlib
import sys
from typing import TYPE_CHECKING, Any, Iterable

from flyteidl.admin import task_pb2, workflow_pb2
from flyteidl.core import compiler_pb2, literals_pb2

from ferry.engine.registry import Bundle
from ferry.errors import InterfaceError
from ferry.literals import Literal, serialize
from ferry.runtime.load import kind_of
from ferry.sdk.constants import Constant, Convert
from ferry.sdk.launch_plan import LaunchPlan
from ferry.sdk.task import task_template

if TYPE_CHECKING:
    from ferry.sdk.workflow import Workflow


def _closed_over(entities: Iterable[Any]) -> tuple[list[Any], list["Workflow[..., Any]"], list[LaunchPlan]]:
    """The tasks, workflows and launch plans of ``entities`` and everything they use, once each."""
    tasks: dict[str, Any] = {}
    workflows: dict[str, "Workflow[..., Any]"] = {}
    plans: dict[str, LaunchPlan] = {}

    def add_workflow(wf: "Workflow[..., Any]") -> None:
        if workflows.setdefault(wf.name, wf) is not wf:
            raise InterfaceError(f"Two different workflows are named {wf.name}; give one another name.")
        used_tasks, subs = wf.dependencies()
        for t in used_tasks:
            if tasks.setdefault(t.name, t) is not t:
                raise InterfaceError(f"Two different tasks are named {t.name}; give one another name.")
        for sub in subs:
            workflows.setdefault(sub.name, sub)
        plans.setdefault(wf.name, LaunchPlan(wf))  # every workflow has a launch plan of its own name

    for entity in entities:
        kind = kind_of(entity)
        if kind == "task":
            if tasks.setdefault(entity.name, entity) is not entity:
                raise InterfaceError(f"Two different tasks are named {entity.name}; give one another name.")
        elif kind == "workflow":
            add_workflow(entity)
        elif kind == "launch plan":
            add_workflow(entity.workflow)
            if entity.name in plans and plans[entity.name].workflow is not entity.workflow and entity.name != entity.workflow.name:
                raise InterfaceError(f"Two launch plans are named {entity.name}; give one another name.")
            plans[entity.name] = entity
    return list(tasks.values()), list(workflows.values()), list(plans.values())


def bundle(entities: Iterable[Any], version: str, convert: Convert | None) -> Bundle:
    """The admin specs of ``entities`` (and all they use) under ``version``."""
    tasks, workflows, plans = _closed_over(entities)
    out = Bundle()
    out.tasks = [task_pb2.TaskSpec(template=task_template(t, version, convert)) for t in tasks]
    for wf in workflows:
        _, subs = wf.dependencies()
        out.workflows.append(workflow_pb2.WorkflowSpec(
            template=wf.template(version, convert), sub_workflows=[s.template(version, convert) for s in subs]))
    out.launch_plans = [lp.spec(version, convert) for lp in plans]
    return out


def closure(wf: "Workflow[..., Any]", convert: Convert | None, version: str = "") -> compiler_pb2.CompiledWorkflowClosure:
    """The compiled closure of one workflow: itself, its subworkflows and every task they use."""
    tasks, subs = wf.dependencies()
    out = compiler_pb2.CompiledWorkflowClosure()
    out.primary.template.CopyFrom(wf.template(version, convert))
    for sub in subs:
        out.sub_workflows.add().template.CopyFrom(sub.template(version, convert))
    for t in tasks:
        out.tasks.add().template.CopyFrom(t.template(version))
    return out


def _placeholder(c: Constant) -> Literal:
    return Literal(scalar=literals_pb2.Scalar(primitive=literals_pb2.Primitive(string_value=f"<constant {c.where}>")))


def code_version(entities: Iterable[Any], *options: str) -> str:
    """A hash of the code behind ``entities`` (their modules' source files and compiled specs) and of the
    registration's ``options``, so registering the same code with the same options again is a no-op."""
    entities = list(entities)
    digest = hashlib.sha256("\0".join(options).encode())
    files = set()
    tasks, workflows, _ = _closed_over(entities)
    for entity in [*tasks, *workflows]:
        module = sys.modules.get(getattr(entity.fn, "__module__", ""))
        path = getattr(module, "__file__", None)
        if path:
            files.add(path)
    for path in sorted(files):
        try:
            with open(path, "rb") as fh:
                digest.update(path.encode() + b"\0" + fh.read() + b"\0")
        except OSError:
            pass
    for spec in bundle(entities, "", _placeholder).entries():
        digest.update(serialize(spec[2]))
    return digest.hexdigest()[:16]
