"""The one place that joins the two planes: Python values in, the engine in the middle, Python values out.

- ``wf(...)`` and ``task(...)`` called directly: the engine's walk over the
  compiled spec, each task run in this process through the task runtime, with
  literals kept in memory (no metadata store, no records).
- ``ferry.run(wf, inputs)``: register the workflow (under a hash of its code),
  turn the inputs into literals (uploading local files), launch it.
- ``ferry.launch(name, inputs)``: the same for a registered launch plan.
- ``Execution.outputs``: literals back into Python values.

The engine itself sees only specs and literals; this module holds everything
that needs the user's types, code or raw-store credentials.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

from flyteidl.core import tasks_pb2, workflow_pb2
from flyteidl.core.dynamic_job_pb2 import DynamicJobSpec

from ferry.config import Settings, active_settings
from ferry.engine.attempts import Listener, RetryPolicy, failure, run_with_retries
from ferry.engine.cache import cache_key, cache_uri
from ferry.engine.graph import DEFAULT_PARALLEL, GraphRunner, NodeFailedError, turns_in_process
from ferry.engine.spec import Closure
from ferry.errors import InterfaceError, TaskFailedError
from ferry.executors.base import ferry_reference
from ferry.layout import ErrorInfo, Outcome, execution_prefix, raw_attempt_prefix
from ferry.literals import Literal, LiteralMap, parse_literal
from ferry.runtime import memo
from ferry.runtime.execute import error_info, execute, outputs_to_result, values_to_literals
from ferry.runtime.load import load_task
from ferry.storage import join
from ferry.types import TransferContext, default_engine
from ferry.workdirs import empty_folder

if TYPE_CHECKING:  # the records (SQLAlchemy) load when an execution is launched, not with ``import ferry``
    from ferry.engine.execution import ExecutionResult, Launch
    from ferry.engine.records import Records
    from ferry.engine.registry import Bundle, RegisterReport
    from ferry.executors.base import Executor

Convert = Callable[[Any], Literal]  # a workflow constant (sdk.workflow.Constant) -> its literal


def converter(ctx: TransferContext) -> Convert:
    """Turns a workflow's constants into literals, uploading under ``ctx``'s raw prefix."""
    engine = default_engine()
    return lambda c: engine.to_literal(c.value, c.python_type, ctx, c.where)


def _context(settings: Settings, raw_prefix: str, execution_id: str, what: str) -> TransferContext:
    return TransferContext(settings, raw_attempt_prefix(raw_prefix, execution_id, what, 0))


# ---- direct calls: in memory ---------------------------------------------------------------------

class InMemoryRunner:
    """Runs each task node in this process, with the one retry policy, each attempt in its own folder."""

    def __init__(self, settings: Settings, execution_id: str, tasks: dict[str, Any]) -> None:
        self.settings = settings
        self.execution_id = execution_id
        self.tasks = tasks  # task name -> the @task object
        self.raised: dict[str, BaseException] = {}  # path -> what the function raised on its last attempt

    def run_task(self, path: str, template: tasks_pb2.TaskTemplate, inputs: LiteralMap,
                 node: workflow_pb2.Node) -> LiteralMap | DynamicJobSpec:
        task = self.tasks.get(template.id.name) or load_task(ferry_reference(template) or template.id.name)
        memo_uri = cache_uri(self.settings, cache_key(template, inputs)) if template.metadata.discoverable else ""
        if memo_uri and (hit := memo.lookup(memo_uri, self.settings)) is not None:
            return hit
        n, outcome = run_with_retries(RetryPolicy.of(template, node), lambda n: self._attempt(path, task, inputs, n))
        if outcome.futures is not None:
            return outcome.futures
        if outcome.outputs is None:
            raise failure(path, template.id.name, n, outcome.error or ErrorInfo("no outputs"))
        if memo_uri:
            memo.store(memo_uri, outcome.outputs, self.settings)
        return outcome.outputs

    def _attempt(self, path: str, task: Any, inputs: LiteralMap, n: int) -> Outcome:
        ctx = TransferContext(self.settings, raw_attempt_prefix(self.settings.raw_output_prefix, self.execution_id,
                                                                 path, n), work_dir=empty_folder(),
                              execution_id=self.execution_id, node=path, attempt=n)
        try:
            result = execute(task, inputs, ctx)
            if isinstance(result, DynamicJobSpec):
                return Outcome(futures=result)
            return Outcome(outputs=result)
        except Exception as exc:  # noqa: BLE001 - judged by the retry policy like any attempt's error
            self.raised[path] = exc
            return Outcome(error=error_info(exc))
        finally:
            ctx.cleanup()

    def dynamic_done(self, path: str, outputs: LiteralMap) -> None:
        pass

    def event(self, path: str, kind: str, label: str, status: str, detail: str = "") -> None:
        pass

    def abort(self) -> None:
        pass

    def takes_turns(self, task: tasks_pb2.TaskTemplate) -> bool:
        return turns_in_process(task)

    def load_offloaded(self, path: str, literal: Literal) -> Literal:
        from ferry.storage import read_bytes

        uri = literal.offloaded_metadata.uri
        data = read_bytes(uri, self.settings.options_for(uri, fallback="raw"), "raw")  # this process reads any store
        return parse_literal(data, f"offloaded literal {uri}")


def _direct_error(exc: BaseException | None) -> BaseException | None:
    """What a direct call raises when its task failed for good: what the function raised, or ferry's error."""
    if isinstance(exc, TaskFailedError) and exc.kind == "user" and exc.__cause__ is not None:
        return exc.__cause__
    return exc


def call_workflow(wf: Any, values: dict[str, Any]) -> Any:
    """What ``wf(...)`` does: the engine's walk over the compiled spec, tasks run here, literals in memory."""
    settings = active_settings()
    execution_id = f"local-{uuid.uuid4().hex[:12]}"
    ctx = _context(settings, settings.raw_output_prefix, execution_id, "inputs")
    convert = converter(_context(settings, settings.raw_output_prefix, execution_id, "constants"))
    inputs = values_to_literals(wf, {n: wf.interface.inputs[n] for n in values}, values, ctx, "inputs")
    for name, param in wf.parameters(convert).parameters.items():
        if name not in inputs.literals and param.HasField("default"):
            inputs.literals[name].CopyFrom(param.default)
    tasks, _ = wf.dependencies()
    runner = InMemoryRunner(settings, execution_id, {t.name: t for t in tasks})
    try:
        outputs = GraphRunner(Closure(wf.closure(convert)), runner).run(inputs)
    except NodeFailedError as exc:
        raised = _direct_error(runner.raised.get(exc.path))
        if raised is not None:
            raise raised from None  # like a direct task call: the function's own exception, or ferry's
        raise
    return outputs_to_result(wf, outputs, ctx)


def call_task(task: Any, values: dict[str, Any]) -> Any:
    """What ``my_task(a=1)`` does: the conversions a pod would make, with the same retries, in its own folder."""
    settings = active_settings()
    execution_id = f"local-{uuid.uuid4().hex[:12]}"
    ctx = _context(settings, settings.raw_output_prefix, execution_id, "inputs")
    given = {name: values[name] for name in task.interface.inputs if name in values}
    inputs = values_to_literals(task, {n: task.interface.inputs[n] for n in given}, given, ctx, "inputs")
    runner = InMemoryRunner(settings, execution_id, {task.name: task})
    template = task.template()
    try:
        result = runner.run_task("task", template, inputs, workflow_pb2.Node())
        if isinstance(result, DynamicJobSpec):  # a dynamic task called directly: run what it built, here
            result = GraphRunner(Closure.empty(), runner).run_dynamic(template, result, "task", inputs)
        outputs = result
    except NodeFailedError:
        raised = _direct_error(runner.raised.get("task"))
        if raised is not None:
            raise raised from None
        raise
    return outputs_to_result(task, outputs, ctx)


# ---- registered executions -----------------------------------------------------------------------

def register(make: Callable[[Convert | None], "Bundle"], *, raw_output_prefix: str | None = None,
             settings: Settings | None = None, skip_if_registered: bool = False,
             records: "Records | None" = None) -> "RegisterReport":
    """Register the specs ``make(convert)`` builds; constants are uploaded under the raw-output prefix first.

    With ``skip_if_registered`` (a version that is a hash of the code), a bundle whose every spec is
    already registered is not built again, so its constants are not uploaded again.
    """
    from ferry.engine.records import Records
    from ferry.engine.registry import RegisterReport, Registry
    from ferry.engine.spec import describe_id

    settings = settings or active_settings()
    own = records is None
    records = records or Records(settings.database_url)
    try:
        registry = Registry(settings, records)
        if skip_if_registered:
            outline = make(_no_constants)
            entries = outline.entries()
            if all(records.registrations(kind, ident.name, ident.version) for kind, ident, _ in entries):
                return RegisterReport(unchanged=[f"{kind} {describe_id(ident)}" for kind, ident, _ in entries])
        raw = raw_output_prefix or settings.raw_output_prefix
        convert = converter(_context(settings, raw, "registrations", "constants"))
        return registry.register(make(convert), raw_output_prefix=raw_output_prefix)
    finally:
        if own:
            records.close()


def _no_constants(constant: Any) -> Literal:
    """For an outline of a bundle (its names and versions), constants need no upload."""
    return Literal()


@dataclass
class Execution:
    """An execution's id, status, error and outputs (converted to Python values on first access)."""

    id: str
    status: str
    output_literals: LiteralMap | None
    error: str | None
    settings: Settings
    workflow: Any = None  # the workflow, when the caller has its code: outputs as it returns them
    typed: Any = None  # else the spec's TypedInterface: outputs by their registered types, in a dict

    def __repr__(self) -> str:  # (the dataclass's would print the settings and every literal)
        return f"<ferry Execution {self.id} {self.status}>"

    @classmethod
    def of(cls, result: "ExecutionResult", settings: Settings, workflow: Any = None) -> "Execution":
        return cls(result.id, result.status, result.outputs, result.error, settings, workflow, result.interface)

    @property
    def outputs(self) -> Any:
        """The workflow's outputs as Python values (Files stay lazy references)."""
        if self.output_literals is None:
            raise TaskFailedError(f"Execution {self.id} {self.status}: {self.error}", kind="user", task=self.id)
        ctx = _context(self.settings, self.settings.raw_output_prefix, self.id, "outputs")
        if self.workflow is not None:
            return outputs_to_result(self.workflow, self.output_literals, ctx)
        from ferry.types.guess import python_type

        declared = self.typed.outputs.variables if self.typed is not None else {}
        engine = default_engine()
        return {name: engine.to_python(lit, python_type(declared[name].type), ctx, name) if name in declared
                else lit for name, lit in sorted(self.output_literals.literals.items())}


def run(wf: Any, inputs: dict[str, Any] | None = None, *, executor: "str | Executor" = "inline",
        raw_output_prefix: str | None = None, max_parallel: int = DEFAULT_PARALLEL, settings: Settings | None = None,
        listener: Listener | None = None, executor_options: dict[str, Any] | None = None,
        execution_id: str | None = None) -> Execution:
    """Run ``wf`` with ``inputs`` through the engine: registered under a hash of its code, then launched.

    Returns an Execution whose ``status`` is succeeded or failed (or raises KeyboardInterrupt on Ctrl-C:
    a caller that wants to name the aborted execution chooses its id, ``execution_id``).
    """
    from ferry.engine.execution import prepare, start
    from ferry.engine.records import Records
    from ferry.executors.base import ferry_reference
    from ferry.runtime.load import kind_of, remember

    kind = kind_of(wf)
    if kind == "task":  # one task: a workflow of one node, as `ferry run FILE TASK` runs it
        wf = wf.as_workflow()
    elif kind != "workflow":
        raise InterfaceError(f"ferry.run runs a @workflow or a @task (or a ContainerTask); got {wf!r}.")
    if inputs is not None and not isinstance(inputs, Mapping):
        raise InterfaceError(f"ferry.run's inputs are a dict {{name: value}}; got {type(inputs).__name__} {inputs!r}.")
    settings = settings or active_settings()
    values = wf.bind((), dict(inputs or {}))
    version = wf.code_version()
    for task in wf.dependencies()[0]:  # the inline executor, in this process, runs the objects the caller holds
        reference = ferry_reference(task.template(version))
        if reference is not None:
            remember(task, reference)
    records = Records(settings.database_url)  # one connection for the registration, the launch and the run
    try:
        register(lambda convert: wf.bundle(version, convert), settings=settings, skip_if_registered=True,
                 records=records)
    except BaseException:
        records.close()
        raise
    launch_ = prepare(wf.name, version, raw_output_prefix=raw_output_prefix, settings=settings, records=records,
                      execution_id=execution_id)
    literals = _inputs(launch_, wf.interface.inputs, values, wf)
    result = start(launch_, literals, executor=executor, max_parallel=max_parallel, listener=listener,
                   executor_options=executor_options)
    return Execution.of(result, settings, wf)


def _inputs(launch_: "Launch", types: dict[str, Any], values: dict[str, Any], owner: Any) -> LiteralMap:
    """Python inputs as literals, local files uploaded under the launch's raw-output prefix; every object they
    refer to must exist, so that a typo in a URI fails now rather than in a task."""
    from ferry.storage.references import check_input_references

    ctx = _context(launch_.settings, launch_.raw_output_prefix, launch_.id, "inputs")
    ctx.meta_prefix = join(execution_prefix(launch_.settings.metadata_url, launch_.id), "inputs")  # the engine reads these
    literals = values_to_literals(owner, {n: types[n] for n in values}, values, ctx, "inputs")
    try:
        check_input_references(literals, launch_.settings)
    except BaseException:
        launch_.records.close()
        raise
    return literals


def launch(name: str, inputs: dict[str, Any] | None = None, *, version: str | None = None,
           executor: "str | Executor" = "inline", raw_output_prefix: str | None = None,
           max_parallel: int = DEFAULT_PARALLEL, settings: Settings | None = None,
           listener: Listener | None = None, executor_options: dict[str, Any] | None = None) -> Execution:
    """Launch registered launch plan ``name`` (its newest version unless ``version``) with Python ``inputs``.

    Inputs are converted by the types the launch plan declares: no need for the workflow's code.
    """
    from ferry.engine.execution import prepare

    if version is None and "@" in name:  # NAME@VERSION, as the command line and the API take it
        name, _, version = name.partition("@")
    launch_ = prepare(name, version, raw_output_prefix=raw_output_prefix, settings=settings)
    return start_launch(launch_, dict(inputs or {}), executor=executor, max_parallel=max_parallel,
                        listener=listener, executor_options=executor_options)


def input_types(launch_: "Launch") -> dict[str, Any]:
    """The Python type of each input a launch takes (fixed inputs excluded), read from its spec."""
    from ferry.types.guess import python_type

    return {n: python_type(p.var.type) for n, p in launch_.launch_plan.spec.default_inputs.parameters.items()}


def start_launch(launch_: "Launch", values: dict[str, Any], *, executor: "str | Executor" = "inline",
                 max_parallel: int = DEFAULT_PARALLEL, listener: Listener | None = None,
                 executor_options: dict[str, Any] | None = None) -> Execution:
    """Convert ``values`` by the launch plan's types (local files uploaded) and run the launch."""
    from ferry.engine.execution import start

    types = input_types(launch_)
    known = {n: v for n, v in values.items() if n in types}
    literals = _inputs(launch_, types, known, _Named(launch_.name))
    for unknown in set(values) - set(known):  # the engine names what is wrong
        literals.literals[unknown].CopyFrom(Literal())
    result = start(launch_, literals, executor=executor, max_parallel=max_parallel, listener=listener,
                   executor_options=executor_options)
    return Execution.of(result, launch_.settings)


def resume(execution_id: str, *, executor: "str | Executor | None" = None, max_parallel: int = DEFAULT_PARALLEL,
           settings: Settings | None = None, listener: Listener | None = None) -> Execution:
    """Continue an execution whose engine stopped: finished nodes are not run again."""
    from ferry.engine.execution import resume as resume_execution

    settings = settings or active_settings()
    result = resume_execution(execution_id, executor=executor, max_parallel=max_parallel, settings=settings,
                              listener=listener)
    return Execution.of(result, settings)


@dataclass
class _Named:
    name: str
