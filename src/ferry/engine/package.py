"""Flyte's own packages (``pyflyte --pkgs MODULE package``): the admin specs in a tarball, registered as they are.

A package holds ``{n}_{name}_{kind}.pb`` files: kind 1 a ``TaskSpec``, 2 a ``WorkflowSpec``,
3 a ``LaunchPlan``. Their identifiers carry no project, domain or version (or
``{{ registration.* }}`` placeholders); registration stamps ferry's and the version on
every identifier, references included. Each task runs through its container command
(``pyflyte-execute ...``), which the engine fills in per attempt like any other.
"""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path
from typing import Any

from flyteidl.admin import launch_plan_pb2, task_pb2, workflow_pb2
from flyteidl.core import identifier_pb2

from ferry.engine.registry import Bundle, RegistrationError
from ferry.engine.spec import describe_id

PROJECT, DOMAIN = "ferry", "default"
KINDS = {"1": ("task", task_pb2.TaskSpec), "2": ("workflow", workflow_pb2.WorkflowSpec),
         "3": ("launch plan", launch_plan_pb2.LaunchPlan)}
RUNNABLE = {"python-task", "raw-container", "container"}  # task types whose spec is a container ferry can run


def is_package(path: str) -> bool:
    return path.endswith((".tgz", ".tar.gz", ".tar"))


def package_version(path: str) -> str:
    """The default version of a package: a hash of its bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def read_package(path: str, version: str) -> Bundle:
    """The specs of a Flyte package, stamped with ferry's project, domain and ``version``; checked first."""
    if not Path(path).is_file():
        raise RegistrationError(f"No such package: {path}. Make one with `pyflyte --pkgs MODULE package`.")
    bundle = Bundle()
    try:
        with tarfile.open(path) as tar:
            members = [m for m in tar.getmembers() if m.isfile() and m.name.endswith(".pb")]
            if not members:
                raise RegistrationError(f"{path} holds no .pb specs; it is not a Flyte package "
                                        "(make one with `pyflyte --pkgs MODULE package`).")
            for member in sorted(members, key=lambda m: m.name):
                spec = _parse(path, member.name, tar.extractfile(member).read())  # type: ignore[union-attr]
                _stamp(spec, version)
                if isinstance(spec, task_pb2.TaskSpec):
                    _check_runnable(spec)
                    bundle.tasks.append(spec)
                elif isinstance(spec, workflow_pb2.WorkflowSpec):
                    bundle.workflows.append(spec)
                else:
                    bundle.launch_plans.append(spec)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise RegistrationError(f"{path} is not a readable package ({type(exc).__name__}: {exc}); "
                                "make it again with `pyflyte --pkgs MODULE package`.") from None
    return bundle


def _parse(path: str, name: str, data: bytes) -> Any:
    kind = Path(name).stem.rpartition("_")[2]
    if kind not in KINDS:
        raise RegistrationError(f"{path}: {name} is not a task (_1.pb), workflow (_2.pb) or launch plan (_3.pb) spec.")
    what, message = KINDS[kind]
    spec = message()
    try:
        spec.ParseFromString(data)
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError
        raise RegistrationError(f"{path}: {name} is not a valid {what} spec ({exc}); the package is corrupt.") from None
    return spec


def _check_runnable(spec: task_pb2.TaskSpec) -> None:
    template = spec.template
    if template.type not in RUNNABLE or not template.HasField("container"):
        target = template.WhichOneof("target") or "no target"
        raise RegistrationError(
            f"Task {describe_id(template.id)} is a {template.type!r} task ({target}); ferry runs tasks whose spec is "
            f"a container command ({', '.join(sorted(RUNNABLE))}). Backend plugins (Spark, SQL, sensors, K8s pods) "
            "need Flyte's own services; replace it with a Python task, or leave it out of the package."
        )


def _stamp(message: Any, version: str) -> None:
    """Give every identifier in ``message`` ferry's project and domain and ``version`` (where it has none)."""
    if isinstance(message, identifier_pb2.Identifier):
        if not message.project or message.project.startswith("{{"):
            message.project = PROJECT
        if not message.domain or message.domain.startswith("{{"):
            message.domain = DOMAIN
        if not message.version or message.version.startswith("{{"):
            message.version = version
        return
    for field, value in message.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        if field.is_repeated:
            items = value.values() if field.message_type.GetOptions().map_entry else value
            for item in items:
                if hasattr(item, "ListFields"):
                    _stamp(item, version)
        else:
            _stamp(value, version)
