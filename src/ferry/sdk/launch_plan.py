"""``ferry.LaunchPlan``: a workflow with default and fixed inputs and its own raw-output prefix.

Every workflow has a default launch plan of its own name; a module may declare
more, e.g. ``nightly = LaunchPlan(wf, name="nightly", default_inputs={"n": 7},
raw_output_prefix="s3://team-raw/nightly")``. They are registered with the
module and launched by name (``ferry launch nightly``). Inputs are checked
against the workflow's types when the launch plan is declared.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flyteidl.admin import launch_plan_pb2
from flyteidl.core import identifier_pb2

from ferry.errors import InterfaceError
from ferry.literals import Literal
from ferry.sdk.constants import Constant, Convert, constant
from ferry.sdk.task import identifier

if TYPE_CHECKING:
    from ferry.sdk.workflow import Workflow


class LaunchPlan:
    """How to launch a workflow: its default inputs, fixed inputs, and where its raw data goes."""

    ferry_kind = "launch plan"

    def __init__(self, workflow: "Workflow[..., Any]", name: str | None = None, *, default_inputs: dict[str, Any] | None = None,
                 fixed_inputs: dict[str, Any] | None = None, raw_output_prefix: str | None = None) -> None:
        if getattr(workflow, "ferry_kind", None) != "workflow":
            raise InterfaceError(f"LaunchPlan takes a @workflow, got {workflow!r}.")
        self.workflow = workflow
        self.name = name or workflow.name
        inputs = workflow.interface.inputs
        given = {**(default_inputs or {}), **(fixed_inputs or {})}
        unknown = sorted(set(given) - set(inputs))
        if unknown:
            raise InterfaceError(f"Launch plan {self.name}: {unknown} are not inputs of {workflow.name} "
                                 f"(its inputs: {', '.join(inputs) or 'none'}).")
        both = sorted(set(default_inputs or {}) & set(fixed_inputs or {}))
        if both:
            raise InterfaceError(f"Launch plan {self.name}: {both} are both default and fixed inputs; keep one.")
        where = f"Launch plan {self.name}"
        self.defaults: dict[str, Literal | Constant] = {
            k: constant(v, inputs[k], f"{where}: default of {k}") for k, v in (default_inputs or {}).items()}
        self.fixed: dict[str, Literal | Constant] = {
            k: constant(v, inputs[k], f"{where}: fixed {k}") for k, v in (fixed_inputs or {}).items()}
        self.raw_output_prefix = raw_output_prefix
        if raw_output_prefix is not None:
            from ferry.config import as_url

            self.raw_output_prefix = as_url(raw_output_prefix)

    def spec(self, version: str, convert: Convert | None) -> launch_plan_pb2.LaunchPlan:
        """The flyteidl admin LaunchPlan (as a Flyte package holds it)."""
        lp = launch_plan_pb2.LaunchPlan(id=identifier(identifier_pb2.LAUNCH_PLAN, self.name, version))
        spec = lp.spec
        spec.workflow_id.CopyFrom(identifier(identifier_pb2.WORKFLOW, self.workflow.name, version))
        params = self.workflow.parameters(convert)
        for name, value in self.defaults.items():
            param = params.parameters[name]
            param.required = False
            param.default.CopyFrom(_literal(value, convert))
        for name, value in self.fixed.items():
            del params.parameters[name]
            spec.fixed_inputs.literals[name].CopyFrom(_literal(value, convert))
        spec.default_inputs.CopyFrom(params)
        if self.raw_output_prefix:
            spec.raw_output_data_config.output_location_prefix = self.raw_output_prefix
        return lp

    def __repr__(self) -> str:
        return f"<ferry launch plan {self.name} of {self.workflow.name}>"


def _literal(value: Literal | Constant, convert: Convert | None) -> Literal:
    if isinstance(value, Constant):
        if convert is None:
            raise InterfaceError(f"{value.where}: this value must be uploaded before it can be launched.")
        return convert(value)
    return value
