"""``@workflow``: compile a function body, once, into a graph of typed nodes.

At decoration the body runs with promises for inputs; every task call adds a
node whose inputs are flyteidl BindingData (promises to upstream outputs, or
constants). Each edge is type-checked then, so a mismatch fails at import
with both ends and both types named.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import typing
from dataclasses import dataclass, field
from typing import Any, Callable

from flyteidl.core import condition_pb2, literals_pb2

from ferry.errors import InterfaceError
from ferry.interface import Interface, bind_inputs, extract
from ferry.literals import Literal, LiteralType
from ferry.sdk.promise import START, Condition, Promise
from ferry.sdk.typecheck import castable, describe_type


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
    target: Any = None  # Task or Workflow
    bindings: dict[str, literals_pb2.BindingData] = field(default_factory=dict)
    upstream: set[str] = field(default_factory=set)
    outputs: dict[str, Any] = field(default_factory=dict)  # output name -> python type
    cases: list[Case] = field(default_factory=list)
    concurrency: int = 0
    min_success_ratio: float = 1.0
    bound: tuple[str, ...] = ()  # map inputs passed whole to every element


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


def binding_from_literal(lit: Literal) -> literals_pb2.BindingData:
    kind = lit.WhichOneof("value")
    if kind == "collection":
        return literals_pb2.BindingData(collection=literals_pb2.BindingDataCollection(
            bindings=[binding_from_literal(x) for x in lit.collection.literals]))
    if kind == "map":
        return literals_pb2.BindingData(map=literals_pb2.BindingDataMap(
            bindings={k: binding_from_literal(v) for k, v in lit.map.literals.items()}))
    if kind == "offloaded_metadata":
        return literals_pb2.BindingData(offloaded_metadata=lit.offloaded_metadata)
    return literals_pb2.BindingData(scalar=lit.scalar)


def to_binding(value: Any, expected: Any, where: str, upstream: set[str]) -> literals_pb2.BindingData:
    """A value given to a node input -> BindingData, type-checking promises against ``expected``."""
    from ferry.types import default_engine

    engine = default_engine()
    if isinstance(value, Promise):
        want = engine.literal_type(expected)
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
        if origin is list and isinstance(value, (list, tuple)):
            (item,) = typing.get_args(expected)
            return literals_pb2.BindingData(collection=literals_pb2.BindingDataCollection(
                bindings=[to_binding(v, item, f"{where}[{i}]", upstream) for i, v in enumerate(value)]))
        if origin is dict and isinstance(value, dict):
            _, item = typing.get_args(expected)
            return literals_pb2.BindingData(map=literals_pb2.BindingDataMap(
                bindings={k: to_binding(v, item, f"{where}[{k!r}]", upstream) for k, v in value.items()}))
        raise InterfaceError(f"{where} ({describe_type(expected)}) can't take {value!r}: only list[T] and dict[str, T] inputs compose promises.")
    return binding_from_literal(engine.to_literal(value, expected, _compile_context(), where))


def _compile_context() -> Any:
    from ferry.config import active_settings
    from ferry.types import TransferContext

    settings = active_settings()
    return TransferContext(settings, raw_prefix=settings.raw_output_prefix, scope="constants")


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


class Workflow:
    """A compiled workflow: its interface, nodes and output bindings."""

    def __init__(self, fn: Callable[..., Any], *, name: str | None = None) -> None:
        from ferry.types import default_engine

        self.fn = fn
        self.name = name or f"{fn.__module__}.{fn.__qualname__}"
        self.interface: Interface = extract(fn, default_engine())
        self.nodes: list[Node] = []
        self.output_bindings: dict[str, literals_pb2.BindingData] = {}
        self.output_upstream: set[str] = set()
        self.default_literals: dict[str, Literal] = {}
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]
        self._compile()

    @property
    def reference(self) -> str:
        from ferry.sdk.loader import reference_of

        return reference_of(self.fn)

    def _compile(self) -> None:
        from ferry.types import default_engine

        engine = default_engine()
        for name, value in self.interface.defaults.items():
            where = f"{self.name}: default of {name}"
            self.default_literals[name] = engine.to_literal(value, self.interface.inputs[name], _compile_context(), where)
        state = _Compilation(self.name)
        token = _compiling.set(state)
        try:
            args = {n: Promise(START, n, t, engine.literal_type(t)) for n, t in self.interface.inputs.items()}
            result = self.fn(**args)
        finally:
            _compiling.reset(token)
        if state.open_branches:
            raise InterfaceError(
                f"Workflow {self.name}: conditional {state.open_branches[0]!r} has no else_(); end it with "
                ".else_().then(...) or .else_().fail('message')."
            )
        self.nodes = state.nodes
        outputs = self.interface.outputs
        values = _result_values(self.name, outputs, self.interface.output_tuple, result)
        for name, value in values.items():
            self.output_bindings[name] = to_binding(value, outputs[name], f"{self.name} output {name}", self.output_upstream)

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        return bind_inputs(self.name, self.interface, inspect.signature(self.fn), args, kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        values = self.bind(args, kwargs)
        if compiling() is not None:
            return add_node("workflow", self.name, self, self.interface.inputs, self.interface.outputs, values,
                            self.interface.output_tuple)
        from ferry.engine.local import run_in_memory

        return run_in_memory(self, values)

    def __repr__(self) -> str:
        return f"<ferry workflow {self.name}>"


def _result_values(name: str, outputs: dict[str, Any], output_tuple: type | None, result: Any) -> dict[str, Any]:
    if not outputs:
        return {}
    if len(outputs) == 1 and output_tuple is None:
        return {next(iter(outputs)): result}
    if not isinstance(result, tuple) or len(result) != len(outputs):
        raise InterfaceError(f"Workflow {name} declares outputs {list(outputs)} but returns {result!r}.")
    return dict(zip(outputs, result, strict=True))


def workflow(fn: Callable[..., Any] | None = None, *, name: str | None = None) -> Any:
    """Declare a workflow: the body is compiled now, and runs with ``wf(...)`` or ``ferry.run(wf, ...)``."""
    if fn is None:
        return lambda f: Workflow(f, name=name)
    return Workflow(fn, name=name)


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
        self._bindings: dict[str, literals_pb2.BindingData] = {}
        state.open_branches.append(name)

    def if_(self, condition: Condition) -> "conditional":
        return self._when(condition)

    def elif_(self, condition: Condition) -> "conditional":
        if not self.cases:
            raise InterfaceError(f"conditional {self.name!r}: elif_() comes after if_().then(...).")
        return self._when(condition)

    def _when(self, condition: Condition) -> "conditional":
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

    def __init__(self, task: Any, concurrency: int = 0, min_success_ratio: float = 1.0,
                 bound_inputs: tuple[str, ...] = ()) -> None:
        if not 0 < min_success_ratio <= 1:
            raise InterfaceError(f"map_task: min_success_ratio must be in (0, 1], got {min_success_ratio}.")
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
        return add_node("map", self.name, self.task, self.inputs, self.outputs, kwargs,
                        concurrency=self.concurrency, min_success_ratio=self.min_success_ratio,
                        bound=self.bound_inputs)


def map_task(task: Any, concurrency: int = 0, min_success_ratio: float = 1.0, bound_inputs: tuple[str, ...] = ()) -> MapTask:
    return MapTask(task, concurrency, min_success_ratio, bound_inputs)
