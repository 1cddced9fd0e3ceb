"""Registered specs: tasks, workflows and launch plans, stored under versions and indexed in the records.

Each spec is the flyteidl admin message a Flyte package holds (``TaskSpec``,
``WorkflowSpec``, ``LaunchPlan``), written to
``{metadata}/registry/{tasks|workflows|launchplans}/{name}/{version}.pb`` and
indexed in the records database. A registration is checked whole before
anything is written (every reference resolves, launch plans fit their
workflow's interface, a version is never overwritten with other content), the
specs are written, and only then indexed in one transaction: nothing is ever
registered half-way. Registering the same content again is a no-op.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flyteidl.admin import launch_plan_pb2, task_pb2, workflow_pb2
from flyteidl.core import compiler_pb2, identifier_pb2, interface_pb2, tasks_pb2
from google.protobuf.message import Message

from ferry.config import Settings
from ferry.engine.records import Records, Registration
from ferry.engine.spec import Closure, describe_id, key, task_refs
from ferry.errors import FerryError, ObjectNotFoundError
from ferry.literals import literal_mismatch, serialize, type_text
from ferry.storage import join, read_bytes, write_bytes

FOLDERS = {"task": "tasks", "workflow": "workflows", "launch plan": "launchplans"}
KIND_OF_RESOURCE = {identifier_pb2.TASK: "task", identifier_pb2.WORKFLOW: "workflow",
                    identifier_pb2.LAUNCH_PLAN: "launch plan"}

M = TypeVar("M", bound=Message)  # a protobuf message read from the registry


class RegistrationError(FerryError):
    """A registration that would leave the registry inconsistent; nothing was registered."""


class NotRegisteredError(FerryError):
    """No registered spec by that name (or version)."""


@dataclass
class Bundle:
    """What one registration holds: admin specs whose ids all carry a version."""

    tasks: list[task_pb2.TaskSpec] = field(default_factory=list)
    workflows: list[workflow_pb2.WorkflowSpec] = field(default_factory=list)
    launch_plans: list[launch_plan_pb2.LaunchPlan] = field(default_factory=list)

    def entries(self) -> list[tuple[str, identifier_pb2.Identifier, Any]]:
        return ([("task", t.template.id, t) for t in self.tasks]
                + [("workflow", w.template.id, w) for w in self.workflows]
                + [("launch plan", lp.id, lp) for lp in self.launch_plans])


@dataclass
class RegisterReport:
    registered: list[str] = field(default_factory=list)  # "kind name@version" newly registered
    unchanged: list[str] = field(default_factory=list)  # already there with the same content


def digest(spec: Any) -> str:
    return hashlib.sha256(serialize(spec)).hexdigest()


def _interface_json(kind: str, spec: Any) -> str:
    if kind == "task":
        typed = spec.template.interface
    elif kind == "workflow":
        typed = spec.template.interface
    else:
        params = spec.spec.default_inputs.parameters
        inputs = {}
        for name, p in params.items():
            text = type_text(p.var.type)
            inputs[name] = text if p.required or not p.HasField("default") else f"{text} (has default)"
        fixed = list(spec.spec.fixed_inputs.literals)
        return json.dumps({"inputs": dict(sorted(inputs.items())), "fixed": sorted(fixed),
                           "workflow": describe_id(spec.spec.workflow_id)})
    return json.dumps({"inputs": {n: type_text(v.type) for n, v in sorted(typed.inputs.variables.items())},
                       "outputs": {n: type_text(v.type) for n, v in sorted(typed.outputs.variables.items())}})


class Registry:
    def __init__(self, settings: Settings, records: Records) -> None:
        self.settings = settings
        self.records = records
        self.options = settings.options_for(settings.metadata_url)

    def spec_uri(self, kind: str, name: str, version: str, spec_digest: str) -> str:
        """Content-addressed, so two registrations racing for one version never overwrite each other's spec."""
        return join(self.settings.metadata_url, "registry", FOLDERS[kind], name, f"{version}.{spec_digest[:16]}.pb")

    # ---- registering -------------------------------------------------------------------------

    def register(self, bundle: Bundle, raw_output_prefix: str | None = None) -> RegisterReport:
        """Check the whole bundle, write its new specs, then index them in one transaction."""
        report = RegisterReport()
        new: list[tuple[Registration, Any]] = []
        seen: dict[tuple[str, str, str], str] = {}
        for kind, ident, spec in bundle.entries():
            where = f"{kind} {describe_id(ident)}"
            if not ident.name or not ident.version:
                raise RegistrationError(f"The {where} has no {'name' if not ident.name else 'version'}; "
                                        "every registered spec needs both.")
            spec_digest = digest(spec)
            entry = (kind, ident.name, ident.version)
            if seen.setdefault(entry, spec_digest) != spec_digest:
                raise RegistrationError(f"The registration holds two different specs for the {where}.")
            existing = self.records.registrations(kind, ident.name, ident.version)
            if existing:
                if existing[0].digest != spec_digest:
                    raise RegistrationError(
                        f"The {where} is already registered with different content. Versions are immutable: "
                        "register under a new version (--version), or leave --version out to use a hash of the code."
                    )
                report.unchanged.append(where)
                continue
            if any(row.kind == kind and row.name == ident.name and row.version == ident.version for row, _ in new):
                continue
            new.append((Registration(kind, ident.name, ident.version, time.time(),
                                     self.spec_uri(kind, ident.name, ident.version, spec_digest), spec_digest,
                                     raw_output_prefix if kind == "launch plan" else None,
                                     _interface_json(kind, spec)), spec))
            report.registered.append(where)
        self._check(bundle)
        for row, spec in new:
            write_bytes(row.uri, serialize(spec), self.options, "metadata")
        self.records.add_registrations([row for row, _ in new])
        for row, _ in new:  # another registration may have won a race for the same version
            if self.records.registrations(row.kind, row.name, row.version)[0].digest != row.digest:
                raise RegistrationError(f"The {row.kind} {row.name}@{row.version} was registered at the same time "
                                        "with different content; register under a new version.")
        return report

    def _check(self, bundle: Bundle) -> None:
        """Every workflow's closure resolves and every launch plan fits its workflow: before anything is written."""
        tasks = {key(t.template.id): t.template for t in bundle.tasks}
        workflows = {key(w.template.id): w for w in bundle.workflows}
        for spec in bundle.workflows:
            try:
                Closure(self._closure(spec, tasks))
            except FerryError as exc:
                raise RegistrationError(f"Workflow {describe_id(spec.template.id)} can't be registered: {exc}") from None
        for lp in bundle.launch_plans:
            wf_id = lp.spec.workflow_id
            wf = workflows.get(key(wf_id)) or self._load_workflow(wf_id, f"launch plan {describe_id(lp.id)}")
            check_launch_plan(lp, wf.template.interface)

    # ---- loading -----------------------------------------------------------------------------

    def latest(self, kind: str, name: str, version: str | None = None) -> Registration:
        rows = self.records.registrations(kind, name, version)
        if rows:
            return rows[0]
        known = self.records.registrations(kind, name)
        if known and version:
            versions = ", ".join(r.version for r in known[:10])
            raise NotRegisteredError(f"The {kind} {name} has no version {version!r}; registered versions: {versions}.")
        names = sorted({r.name for r in self.records.registrations(kind)})
        more = f" and {len(names) - 20} more" if len(names) > 20 else ""
        hint = f" Registered {kind}s: {', '.join(names[:20])}{more}." if names else ""
        raise NotRegisteredError(f"No {kind} named {name!r} is registered.{hint} Register it with "
                                 "`ferry register FILE.py` (or run it once with `ferry run FILE.py NAME`).")

    def _read(self, registration: Registration, message: M) -> M:
        try:
            data = read_bytes(registration.uri, self.options, "metadata")
        except ObjectNotFoundError as exc:
            raise NotRegisteredError(f"The spec of {registration.kind} {registration.name}@{registration.version} "
                                     f"is missing from the metadata store ({registration.uri}): {exc}") from None
        try:
            message.ParseFromString(data)
        except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError
            raise RegistrationError(f"The spec at {registration.uri} is corrupt ({exc}); register it again "
                                    "under a new version.") from None
        return message

    def launch_plan(self, name: str, version: str | None = None) -> tuple[launch_plan_pb2.LaunchPlan, Registration]:
        registration = self.latest("launch plan", name, version)
        return self._read(registration, launch_plan_pb2.LaunchPlan()), registration

    def _load_workflow(self, ident: identifier_pb2.Identifier, needed_by: str) -> workflow_pb2.WorkflowSpec:
        try:
            registration = self.latest("workflow", ident.name, ident.version or None)
        except NotRegisteredError as exc:
            raise RegistrationError(f"The {needed_by} needs workflow {describe_id(ident)}: {exc}") from None
        return self._read(registration, workflow_pb2.WorkflowSpec())

    def _load_task(self, ident: identifier_pb2.Identifier) -> tasks_pb2.TaskTemplate:
        registration = self.latest("task", ident.name, ident.version or None)
        return self._read(registration, task_pb2.TaskSpec()).template

    def _closure(self, spec: workflow_pb2.WorkflowSpec,
                 known: dict[tuple[str, str], tasks_pb2.TaskTemplate]) -> compiler_pb2.CompiledWorkflowClosure:
        closure = compiler_pb2.CompiledWorkflowClosure()
        closure.primary.template.CopyFrom(spec.template)
        for sub in spec.sub_workflows:
            closure.sub_workflows.add().template.CopyFrom(sub)
        wanted: dict[tuple[str, str], identifier_pb2.Identifier] = {}
        for template in [spec.template, *spec.sub_workflows]:
            for ref in task_refs(template):
                wanted.setdefault(key(ref), ref)
        for task_key, ref in wanted.items():
            template = known.get(task_key)
            if template is None:
                try:
                    template = self._load_task(ref)
                except NotRegisteredError:
                    continue  # Closure() names the missing task
            closure.tasks.add().template.CopyFrom(template)
        return closure

    def closure(self, workflow_id: identifier_pb2.Identifier) -> compiler_pb2.CompiledWorkflowClosure:
        """The compiled workflow (with its subworkflows and every task it uses) a launch runs."""
        spec = self._load_workflow(workflow_id, "launch")
        closure = self._closure(spec, {})
        Closure(closure)  # every reference resolves
        return closure


def check_launch_plan(lp: launch_plan_pb2.LaunchPlan, interface: interface_pb2.TypedInterface) -> None:
    """A launch plan's defaults and fixed inputs must fit its workflow's interface."""
    where = f"Launch plan {describe_id(lp.id)}"
    declared = interface.inputs.variables
    params = lp.spec.default_inputs.parameters
    fixed = lp.spec.fixed_inputs.literals
    for name in [*params, *fixed]:
        if name not in declared:
            raise RegistrationError(f"{where}: {name!r} is not an input of workflow {describe_id(lp.spec.workflow_id)} "
                                    f"(its inputs: {', '.join(declared) or 'none'}).")
    for name in set(params) & set(fixed):
        raise RegistrationError(f"{where}: input {name!r} is both fixed and a parameter; keep one.")
    for name, var in declared.items():
        if name not in params and name not in fixed:
            raise RegistrationError(f"{where}: input {name!r} is neither a parameter nor fixed; give it a default, "
                                    "a fixed value, or leave it a required parameter.")
        value = fixed.get(name) if name in fixed else (params[name].default if params[name].HasField("default") else None)
        if value is not None:
            why = literal_mismatch(value, var.type)
            if why:
                raise RegistrationError(f"{where}: the value of {name!r} doesn't fit its type {type_text(var.type)}: {why}.")
        if name in params and type_text(params[name].var.type) != type_text(var.type):
            raise RegistrationError(f"{where}: parameter {name!r} is declared {type_text(params[name].var.type)} but "
                                    f"the workflow's input is {type_text(var.type)}.")
