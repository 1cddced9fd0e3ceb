"""``@workflow``: compile a function body, once, into a flyteidl WorkflowTemplate.

At decoration the body runs with promises for inputs; every task call adds a
node whose inputs are flyteidl BindingData (promises to upstream outputs, or
constants). Each edge is type-checked then, so a mismatch fails at import with
both ends and both types named. Constants that live in the raw store (a local
File, a data frame) stay Python values until launch: compiling uploads nothing.
``template()`` renders the WorkflowTemplate the engine runs.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import typing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Generic, ParamSpec, TypeVar, cast, overload

from flyteidl.core import condition_pb2, identifier_pb2, interface_pb2, literals_pb2, types_pb2, workflow_pb2

from ferry.engine.bindings import START
from ferry.errors import InterfaceError
from ferry.interface import Interface, bind_inputs, extract
from ferry.literals import Literal, LiteralType
from ferry.sdk.constants import Bound, Constant, Convert, binding_from_literal, constant, has_constants, render
from ferry.sdk.promise import Condition, Promise
from ferry.sdk.task import Task, identifier
from ferry.sdk.typecheck import castable, describe_type

if TYPE_CHECKING:
    from ferry.sdk.container import ContainerTask

P = ParamSpec("P")
R = TypeVar("R", covariant=True)


@dataclass
class Case:
    """One arm of a branch: a condition (None for else) and the node it runs, or a failure message."""

    condition: condition_pb2.BooleanExpression | None
    node: "Node | None"
    fail_message: str = ""


@dataclass
class Node:
    id: str
    kind: str  # "task" | "workflow" | "branch" | "map"
    label: str  # task / workflow name, or the branch's name
    target: Any = None  # Task or Workflow (compile time only: the spec refers to it by id)
    bindings: dict[str, Bound] = field(default_factory=dict)
    upstream: set[str] = field(default_factory=set)
    outputs: dict[str, Any] = field(default_factory=dict)  # output name -> python type
    cases: list[Case] = field(default_factory=list)
    concurrency: int = 0
    min_success_ratio: float = 1.0
    bound: tuple[str, ...] = ()  # map inputs passed whole to every element

    @property
    def output_tuple(self) -> type | None:
        """The NamedTuple the called task or workflow returns, if it names its outputs."""
        return self.target.interface.output_tuple if self.target is not None else None

    def to_proto(self, version: str, convert: Convert | None) -> workflow_pb2.Node:
        node = workflow_pb2.Node(id=self.id, metadata=workflow_pb2.NodeMetadata(name=self.label),
                                 upstream_node_ids=sorted(self.upstream))
        for name, bound in self.bindings.items():
            node.inputs.add(var=name).binding.CopyFrom(render(bound, convert))
        if self.kind == "task":
            node.task_node.reference_id.CopyFrom(identifier(identifier_pb2.TASK, self.target.name, version))
        elif self.kind == "workflow":
            node.workflow_node.sub_workflow_ref.CopyFrom(identifier(identifier_pb2.WORKFLOW, self.target.name, version))
        elif self.kind == "map":
            inner = workflow_pb2.Node(id=f"{self.id}-element", metadata=workflow_pb2.NodeMetadata(name=self.target.name))
            inner.task_node.reference_id.CopyFrom(identifier(identifier_pb2.TASK, self.target.name, version))
            array = node.array_node
            array.node.CopyFrom(inner)
            array.parallelism = self.concurrency
            array.min_success_ratio = self.min_success_ratio
            array.bound_inputs.extend(self.bound)
            array.is_original_sub_node_interface.value = True
        else:
            self._branch(node.branch_node.if_else, version, convert)
        return node

    def _branch(self, block: workflow_pb2.IfElseBlock, version: str, convert: Convert | None) -> None:
        arms = [c for c in self.cases if c.condition is not None]
        for i, case in enumerate(arms):
            target = block.case if i == 0 else block.other.add()
            target.condition.CopyFrom(case.condition)
            assert case.node is not None
            target.then_node.CopyFrom(case.node.to_proto(version, convert))
        otherwise = self.cases[-1]
        if otherwise.node is not None:
            block.else_node.CopyFrom(otherwise.node.to_proto(version, convert))
        else:
            block.error.CopyFrom(types_pb2.Error(failed_node_id=self.id, message=otherwise.fail_message))


@dataclass
class _Compilation:
    workflow: str
    nodes: list[Node] = field(default_factory=list)
    counter: int = 0
    open_branches: list[str] = field(default_factory=list)

    def next_id(self) -> str:
        node_id = f"n{self.counter}"
        self.counter += 1
        return node_id


_compiling: contextvars.ContextVar[_Compilation | None] = contextvars.ContextVar("ferry_compiling", default=None)


def compiling() -> _Compilation | None:
    return _compiling.get()


def contains_promise(value: Any) -> bool:
    if isinstance(value, Promise):
        return True
    if isinstance(value, (list, tuple)):
        return any(contains_promise(v) for v in value)
    if isinstance(value, dict):
        return any(contains_promise(v) for v in value.values())
    return False


def to_binding(value: Any, expected: Any, where: str, upstream: set[str]) -> Bound:
    """A value given to a node input -> a binding, type-checking promises against ``expected``."""
    from ferry.types import default_engine

    if isinstance(value, Promise):
        want = default_engine().literal_type(expected)
        if not castable(value.literal_type, want):
            raise InterfaceError(
                f"Type mismatch: {value.ref} ({describe_type(value.python_type)}) is bound to {where} "
                f"({describe_type(expected)}). Change one of the two types, or convert in a task between them."
            )
        if value.node_id != START:
            upstream.add(value.node_id)
        return value.binding()
    origin = typing.get_origin(expected)
    if contains_promise(value):
        parts: list[Bound] | dict[str, Bound]
        if origin is list and isinstance(value, (list, tuple)):
            (item,) = typing.get_args(expected)
            parts = [to_binding(v, item, f"{where}[{i}]", upstream) for i, v in enumerate(value)]
            if any(has_constants(p) for p in parts):
                return parts
            return literals_pb2.BindingData(collection=literals_pb2.BindingDataCollection(bindings=parts))  # type: ignore[arg-type]
        if origin is dict and isinstance(value, dict):
            _, item = typing.get_args(expected)
            parts = {k: to_binding(v, item, f"{where}[{k!r}]", upstream) for k, v in value.items()}
            if any(has_constants(p) for p in parts.values()):
                return parts
            return literals_pb2.BindingData(map=literals_pb2.BindingDataMap(bindings=parts))  # type: ignore[arg-type]
        raise InterfaceError(f"{where} ({describe_type(expected)}) can't take {value!r}: only list[T] and dict[str, T] inputs compose promises.")
    converted = constant(value, expected, where)
    return converted if isinstance(converted, Constant) else binding_from_literal(converted)


def add_node(kind: str, label: str, target: Any, inputs: dict[str, Any], outputs: dict[str, Any],
             values: dict[str, Any], output_tuple: type | None = None, **extra: Any) -> Any:
    """Record a call as a node of the workflow being compiled; return its output promise(s)."""
    from ferry.types import default_engine

    state = compiling()
    assert state is not None
    node = Node(id=state.next_id(), kind=kind, label=label, target=target, outputs=outputs, **extra)
    for name, value in values.items():
        node.bindings[name] = to_binding(value, inputs[name], f"{label}.{name}", node.upstream)
    state.nodes.append(node)
    engine = default_engine()
    promises = [Promise(node.id, name, t, engine.literal_type(t)) for name, t in outputs.items()]
    if not promises:
        return Promise(node.id, "", type(None), LiteralType())  # only to order nodes / pass to then()
    if output_tuple is not None:
        return output_tuple(*promises)
    return promises[0] if len(promises) == 1 else tuple(promises)


def compile_body(owner: str, fn: Callable[..., Any], args: dict[str, Any],
                 interface: Interface) -> tuple[list[Node], dict[str, Bound], set[str]]:
    """Run a workflow body (or a dynamic task's, with values for arguments): its nodes and output bindings."""
    state = _Compilation(owner)
    token = _compiling.set(state)
    try:
        result = fn(**args)
    finally:
        _compiling.reset(token)
    if state.open_branches:
        raise InterfaceError(
            f"{owner}: conditional {state.open_branches[0]!r} has no else_(); end it with "
            ".else_().then(...) or .else_().fail('message')."
        )
    outputs = interface.outputs
    bindings: dict[str, Bound] = {}
    upstream: set[str] = set()
    for name, value in _result_values(owner, outputs, interface.output_tuple, result).items():
        bindings[name] = to_binding(value, outputs[name], f"{owner} output {name}", upstream)
    return state.nodes, bindings, upstream


def with_arms(nodes: list[Node]) -> list[Node]:
    """The nodes and the arms of their branches."""
    out: list[Node] = []
    for node in nodes:
        out.append(node)
        out.extend(c.node for c in node.cases if c.node is not None)
    return out


def used_by(nodes: list[Node]) -> tuple[list[Any], list["Workflow[..., Any]"]]:
    """Every task and subworkflow that ``nodes`` use, directly or through subworkflows, once each."""
    tasks: dict[str, Any] = {}
    subs: dict[str, Workflow[..., Any]] = {}

    def visit(these: list[Node]) -> None:
        for node in with_arms(these):
            if node.kind in ("task", "map"):
                tasks.setdefault(node.target.name, node.target)
            elif node.kind == "workflow" and node.target.name not in subs:
                subs[node.target.name] = node.target
                visit(node.target.nodes)

    visit(nodes)
    return list(tasks.values()), list(subs.values())


class Workflow(Generic[P, R]):
    """A compiled workflow: its interface, nodes and output bindings; ``template()`` is its spec.

    Generic over the body's parameters and return type, like ``Task``: calling it type-checks as
    calling the function (inside another workflow's body it returns promises standing in for ``R``).
    """

    ferry_kind = "workflow"

    def __init__(self, fn: Callable[P, R], *, name: str | None = None) -> None:
        from ferry.types import default_engine

        self.fn = fn
        self.name = name or f"{fn.__module__}.{fn.__qualname__}"
        self.interface: Interface = extract(fn, default_engine())
        self.nodes: list[Node] = []
        self.output_bindings: dict[str, Bound] = {}
        self.output_upstream: set[str] = set()
        self.defaults: dict[str, Literal | Constant] = {}
        self._templates: dict[str, workflow_pb2.WorkflowTemplate] = {}
        functools.update_wrapper(self, fn)
        self._compile()

    def _compile(self) -> None:
        from ferry.types import default_engine

        engine = default_engine()
        for name, value in self.interface.defaults.items():
            self.defaults[name] = constant(value, self.interface.inputs[name], f"{self.name}: default of {name}")
        args = {n: Promise(START, n, t, engine.literal_type(t)) for n, t in self.interface.inputs.items()}
        self.nodes, self.output_bindings, self.output_upstream = compile_body(
            f"Workflow {self.name}", self.fn, args, self.interface)

    @property
    def has_constants(self) -> bool:
        """Whether the body holds constants that are uploaded at launch (then every launch renders anew)."""
        return any(has_constants(b) for n in self._all_nodes() for b in n.bindings.values()) or any(
            has_constants(b) for b in self.output_bindings.values())

    def _all_nodes(self) -> list[Node]:
        return with_arms(self.nodes)

    def template(self, version: str = "", convert: Convert | None = None) -> workflow_pb2.WorkflowTemplate:
        """The flyteidl WorkflowTemplate; ``convert`` uploads the constants the body holds, if any."""
        static = not self.has_constants
        if static and version in self._templates:
            return self._templates[version]
        template = workflow_pb2.WorkflowTemplate(
            id=identifier(identifier_pb2.WORKFLOW, self.name, version),
            interface=self.interface.typed,
            nodes=[node.to_proto(version, convert) for node in self.nodes],
        )
        for name, bound in self.output_bindings.items():
            template.outputs.add(var=name).binding.CopyFrom(render(bound, convert))
        if static:
            self._templates[version] = template
        return template

    def parameters(self, convert: Convert | None) -> interface_pb2.ParameterMap:
        """Every input as a launch-plan parameter: required, or with its default."""
        params = interface_pb2.ParameterMap()
        for name, variable in self.interface.typed.inputs.variables.items():
            param = params.parameters[name]
            param.var.CopyFrom(variable)
            default = self.defaults.get(name)
            if default is None:
                param.required = True
            elif isinstance(default, Constant):
                if convert is None:
                    raise InterfaceError(f"{default.where}: this default must be uploaded before the workflow can run.")
                param.default.CopyFrom(convert(default))
            else:
                param.default.CopyFrom(default)
        return params

    def dependencies(self) -> tuple[list[Any], list["Workflow[..., Any]"]]:
        """Every task and subworkflow this workflow uses, directly or through its subworkflows, once each."""
        return used_by(self.nodes)

    def closure(self, convert: Convert | None, version: str = "") -> Any:
        """The CompiledWorkflowClosure the engine runs: this workflow, its subworkflows and tasks."""
        from ferry.sdk.compile import closure

        return closure(self, convert, version)

    def bundle(self, version: str, convert: Convert | None) -> Any:
        """The specs a registration of this workflow holds (with its default launch plan)."""
        from ferry.sdk.compile import bundle

        return bundle([self], version, convert)

    def code_version(self) -> str:
        """A hash of this workflow's code: the version ``ferry.run`` registers it under."""
        from ferry.sdk.compile import code_version

        return code_version([self])

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        return bind_inputs(self.name, self.interface, inspect.signature(self.fn), args, kwargs)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        values = self.bind(args, kwargs)
        if compiling() is not None:
            i = self.interface
            return cast(R, add_node("workflow", self.name, self, i.inputs, i.outputs, values, i.output_tuple))
        from ferry.client import call_workflow

        return cast(R, call_workflow(self, values))

    def __repr__(self) -> str:
        return f"<ferry workflow {self.name}>"


def _result_values(owner: str, outputs: dict[str, Any], output_tuple: type | None, result: Any) -> dict[str, Any]:
    if not outputs:
        return {}
    if len(outputs) == 1 and output_tuple is None:
        return {next(iter(outputs)): result}
    if not isinstance(result, tuple) or len(result) != len(outputs):
        raise InterfaceError(f"{owner} declares outputs {list(outputs)} but returns {result!r}.")
    return dict(zip(outputs, result, strict=True))


@overload
def workflow(fn: Callable[P, R], /) -> Workflow[P, R]: ...
@overload
def workflow(*, name: str | None = None) -> Callable[[Callable[P, R]], Workflow[P, R]]: ...


def workflow(fn: Callable[..., Any] | None = None, *, name: str | None = None) -> Any:
    """Declare a workflow: the body is compiled now, and runs with ``wf(...)`` or ``ferry.run(wf, ...)``."""
    if fn is None:
        return lambda f: Workflow(f, name=name)
    return Workflow(fn, name=name)


def task_workflow(task: Any) -> "Workflow[..., Any]":
    """A workflow of one node that runs ``task``: the same inputs, defaults, outputs and descriptions."""
    from ferry.sdk.container import ContainerTask

    def body(**inputs: Any) -> Any:
        return task(**inputs)

    fn = task.fn
    if isinstance(task, ContainerTask):  # its function takes **values: the signature is its declared interface's
        outputs = list(task.interface.outputs.items())
        returns = (outputs[0][1] if len(outputs) == 1 else typing.NamedTuple("outputs", outputs)) if outputs else None
        body.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, annotation=t) for n, t in task.interface.inputs.items()],
            return_annotation=returns)
        body.__annotations__ = {**task.interface.inputs, "return": returns}
        body.__doc__, body.__qualname__ = f"Runs {' '.join(task.command)}", task.name
        body.__module__ = getattr(task, "__module__", body.__module__)
        return Workflow(body, name=task.name)
    body.__signature__ = inspect.signature(fn)  # type: ignore[attr-defined]
    body.__annotations__ = typing.get_type_hints(fn, include_extras=True)
    body.__doc__, body.__module__, body.__qualname__ = fn.__doc__, fn.__module__, fn.__qualname__
    return Workflow(body, name=task.name)


# ---- conditionals ------------------------------------------------------------------------------

class conditional:  # noqa: N801 - reads as a keyword in workflow bodies
    """``conditional("name").if_(x > 3).then(t1(x=x)).elif_(...).then(...).else_().then(t3(x=x))``.

    Conditions are evaluated by the engine on primitive meta values. Every arm
    must produce the same outputs; the last ``then`` (or ``fail``) returns them.
    """

    def __init__(self, name: str) -> None:
        state = compiling()
        if state is None:
            raise InterfaceError("conditional() is used inside a @workflow body.")
        self.name = name
        self.state = state
        self.cases: list[Case] = []
        self._pending: Condition | None = None
        self._else = False
        self._upstream: set[str] = set()
        self._bindings: dict[str, Bound] = {}
        state.open_branches.append(name)

    # A condition is typed ``Condition | bool``: to a type checker, ``x > 3`` on a promise typed ``int`` is a bool.
    def if_(self, condition: Condition | bool) -> "conditional":
        return self._when(condition)

    def elif_(self, condition: Condition | bool) -> "conditional":
        if not self.cases:
            raise InterfaceError(f"conditional {self.name!r}: elif_() comes after if_().then(...).")
        return self._when(condition)

    def _when(self, condition: Condition | bool) -> "conditional":
        if not isinstance(condition, Condition):
            raise InterfaceError(
                f"conditional {self.name!r}: the condition must compare a workflow value, e.g. .if_(x > 3); got {condition!r}."
            )
        for ref, promise in condition.promises.items():
            self._bindings[ref] = promise.binding()
            if promise.node_id != START:
                self._upstream.add(promise.node_id)
        self._pending = condition
        return self

    def else_(self) -> "conditional":
        self._else = True
        return self

    def then(self, result: Any) -> Any:
        node = self._take_node(result)
        self.cases.append(Case(None if self._else else self._condition(), node))
        return self._finish() if self._else else self

    def fail(self, message: str) -> Any:
        if not self._else:
            raise InterfaceError(f"conditional {self.name!r}: fail() ends the chain after else_().")
        self.cases.append(Case(None, None, message))
        return self._finish()

    def _condition(self) -> condition_pb2.BooleanExpression:
        if self._pending is None:
            raise InterfaceError(f"conditional {self.name!r}: call if_(condition) before then().")
        expr, self._pending = self._pending.expr, None
        return expr

    def _take_node(self, result: Any) -> Node:
        promise = result[0] if isinstance(result, tuple) and result else result
        if not isinstance(promise, Promise):
            raise InterfaceError(f"conditional {self.name!r}: then() takes a task or workflow call, e.g. then(t1(x=x)).")
        node = next((n for n in self.state.nodes if n.id == promise.node_id), None)
        if node is None or node is not self.state.nodes[-1]:
            raise InterfaceError(f"conditional {self.name!r}: then() must wrap the call itself: then(t1(x=x)).")
        self.state.nodes.pop()
        return node

    def _finish(self) -> Any:
        from ferry.types import default_engine

        arms = [c.node for c in self.cases if c.node is not None]
        first = arms[0].outputs if arms else {}
        engine = default_engine()
        for arm in arms[1:]:
            if list(arm.outputs) != list(first) or any(
                not castable(engine.literal_type(arm.outputs[k]), engine.literal_type(first[k])) for k in first
            ):
                raise InterfaceError(
                    f"conditional {self.name!r}: every branch must return the same outputs; "
                    f"{arms[0].label} returns {_sig(first)} but {arm.label} returns {_sig(arm.outputs)}."
                )
        for arm in arms:
            self._upstream |= arm.upstream
        self.state.open_branches.remove(self.name)
        node = Node(id=self.state.next_id(), kind="branch", label=self.name, bindings=self._bindings,
                    upstream=self._upstream, outputs=dict(first), cases=self.cases)
        self.state.nodes.append(node)
        promises = [Promise(node.id, k, t, engine.literal_type(t)) for k, t in first.items()]
        if not promises:
            return Promise(node.id, "", type(None), LiteralType())
        if arms[0].output_tuple is not None:  # every arm's outputs have the same names
            return arms[0].output_tuple(*promises)
        return promises[0] if len(promises) == 1 else tuple(promises)


def _sig(outputs: dict[str, Any]) -> str:
    return "(" + ", ".join(f"{k}: {describe_type(t)}" for k, t in outputs.items()) + ")"


# ---- map tasks ---------------------------------------------------------------------------------

class MapTask:
    """``map_task(t)(xs=list_promise)``: run ``t`` once per element, up to ``concurrency`` at a time.

    Every input given is a list (one element per run) except those named in
    ``bound_inputs``, passed whole to every run. With ``min_success_ratio`` < 1,
    failed elements become None in the outputs.
    """

    def __init__(self, task: "Task[..., Any] | ContainerTask", concurrency: int = 0, min_success_ratio: float = 1.0,
                 bound_inputs: tuple[str, ...] = ()) -> None:
        if not 0 < min_success_ratio <= 1:
            raise InterfaceError(f"map_task: min_success_ratio must be in (0, 1], got {min_success_ratio}.")
        if getattr(task, "ferry_kind", None) != "task":
            raise InterfaceError(f"map_task takes a @task, got {task!r}.")
        self.task = task
        self.concurrency = concurrency
        self.min_success_ratio = min_success_ratio
        self.bound_inputs = tuple(bound_inputs)
        unknown = set(self.bound_inputs) - set(task.interface.inputs)
        if unknown:
            raise InterfaceError(f"map_task({task.name}): bound_inputs {sorted(unknown)} are not inputs of the task.")
        optional = min_success_ratio < 1
        self.inputs = {n: (t if n in self.bound_inputs else list[t]) for n, t in task.interface.inputs.items()}  # type: ignore[valid-type]
        self.outputs = {n: list[typing.Optional[t]] if optional else list[t] for n, t in task.interface.outputs.items()}  # type: ignore[valid-type]
        self.name = f"map_task({task.name})"

    def __call__(self, **kwargs: Any) -> Any:
        if compiling() is None:
            raise InterfaceError(f"{self.name} is called inside a @workflow body.")
        unknown = set(kwargs) - set(self.inputs)
        if unknown:
            raise InterfaceError(f"{self.name}: unknown input(s) {sorted(unknown)}; it takes {list(self.inputs)}.")
        missing = [n for n in self.inputs if n not in kwargs and n not in self.task.interface.defaults]
        if missing:
            raise InterfaceError(f"{self.name}: missing input(s) {missing}.")
        return add_node("map", self.name, self.task, self.inputs, self.outputs, kwargs, self.task.interface.output_tuple,
                        concurrency=self.concurrency, min_success_ratio=self.min_success_ratio,
                        bound=self.bound_inputs)


def map_task(task: "Task[..., Any] | ContainerTask", concurrency: int = 0, min_success_ratio: float = 1.0,
             bound_inputs: tuple[str, ...] = ()) -> MapTask:
    """Run ``task`` once per element of the lists it is given (see ``MapTask``)."""
    return MapTask(task, concurrency, min_success_ratio, bound_inputs)
