"""Launch a registered launch plan, run its compiled workflow, and resume it after a crash.

A launch is prepared first (``prepare``: the launch plan and the closure it
runs, the execution id, the raw-output prefix and which setting chose it), so
that a client can turn its inputs into literals under that prefix; ``start``
then records the execution and walks the spec. A server instead ``enqueue``s
it and runs it later with ``run_claimed``. Everything here reads and
writes metadata only: the engine never imports user code and never opens raw data.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

from flyteidl.admin import launch_plan_pb2
from flyteidl.core import compiler_pb2

from ferry.config import Settings, active_settings, as_url
from ferry.engine.attempts import Listener, StoreRunner
from ferry.engine.graph import DEFAULT_PARALLEL, GraphRunner
from ferry.engine.records import ExecutionRecord, Records, Registration
from ferry.engine.registry import Registry
from ferry.engine.spec import Closure, describe_id, parse_closure
from ferry.errors import FerryError
from ferry.layout import CLOSURE, INPUTS, OUTPUTS, execution_prefix
from ferry.literals import (
    LiteralMap,
    TypedInterface,
    literal_mismatch,
    none_literal,
    none_variant,
    parse_literal_map,
    serialize,
    type_text,
)
from ferry.storage import join, read_bytes, write_bytes

if TYPE_CHECKING:
    from ferry.executors.base import Executor

IN_TASK_ENV = "FERRY_IN_TASK"  # set in task processes, where starting a run would recurse


class LaunchError(FerryError):
    """A launch the engine refuses before anything is recorded: missing or unknown inputs, a fixed input overridden."""


@dataclass
class ExecutionResult:
    """How an execution ended, as meta values."""

    id: str
    status: str  # succeeded | failed | aborted
    outputs: LiteralMap | None = None
    error: str | None = None
    interface: TypedInterface | None = None  # the workflow's, so that outputs can be read by their types


@dataclass
class Launch:
    """A launch plan resolved and ready to start: everything but the inputs."""

    id: str
    launch_plan: launch_plan_pb2.LaunchPlan
    registration: Registration
    closure: compiler_pb2.CompiledWorkflowClosure
    raw_output_prefix: str
    raw_output_source: str  # "execution", "launch plan", "registration" or "settings"
    settings: Settings
    records: Records  # open until the launch has run or is queued (``start`` and ``enqueue`` close it)

    @property
    def name(self) -> str:
        return describe_id(self.launch_plan.id)

    @property
    def workflow(self) -> str:
        return self.launch_plan.spec.workflow_id.name

    def refuse_fixed(self, names: Iterable[str]) -> None:
        """A LaunchError if any of ``names`` is an input this launch plan fixes."""
        overridden = sorted(set(names) & set(self.launch_plan.spec.fixed_inputs.literals))
        if overridden:
            raise LaunchError(f"{self.name} fixes input(s) {overridden}; a launch can't change them. "
                              "Use another launch plan, or the workflow's own.")

    def inputs(self, given: LiteralMap) -> LiteralMap:
        """The literals the workflow runs on: given ones, then defaults, then fixed ones; checked against the types."""
        spec = self.launch_plan.spec
        params, fixed = spec.default_inputs.parameters, spec.fixed_inputs.literals
        unknown = sorted(set(given.literals) - set(params) - set(fixed))
        if unknown:
            raise LaunchError(f"{self.name} has no input(s) {unknown}; its inputs are: "
                              + (", ".join(params) or "(none)") + ".")
        self.refuse_fixed(given.literals)
        out = LiteralMap()
        for name, param in params.items():
            if name in given.literals:
                why = literal_mismatch(given.literals[name], param.var.type)
                if why:
                    raise LaunchError(f"{self.name}: input {name!r} ({type_text(param.var.type)}): {why}.")
                out.literals[name].CopyFrom(given.literals[name])
            elif param.HasField("default"):
                out.literals[name].CopyFrom(param.default)
            elif (none := none_variant(param.var.type)) is not None:  # an Optional left out is None, as in Python
                out.literals[name].scalar.union.value.CopyFrom(none_literal())
                out.literals[name].scalar.union.type.CopyFrom(none)
            else:
                raise LaunchError(f"{self.name} needs input {name!r} ({type_text(param.var.type)}).")
        for name, lit in fixed.items():
            out.literals[name].CopyFrom(lit)
        return out


def new_execution_id() -> str:
    return time.strftime("%Y%m%d%H%M%S-") + uuid.uuid4().hex[:6]


def prepare(name: str, version: str | None = None, *, raw_output_prefix: str | None = None,
            settings: Settings | None = None, execution_id: str | None = None, records: Records | None = None) -> Launch:
    """Resolve launch plan ``name`` (its newest version unless one is given) and where its raw data goes.

    The raw-output prefix is the first of: this execution's, the launch plan's own,
    the registration's default (``ferry register --raw-output-prefix``), the settings'.
    """
    if os.environ.get(IN_TASK_ENV):
        raise FerryError(
            f"An execution of {name} was started inside a task process, most likely because the workflow file "
            "starts a run when imported. Guard it with `if __name__ == \"__main__\":`."
        )
    settings = settings or active_settings()
    records = records or Records(settings.database_url)
    try:
        registry = Registry(settings, records)
        lp, registration = registry.launch_plan(name, version)
        closure = registry.closure(lp.spec.workflow_id)
    except BaseException:
        records.close()
        raise
    choices = [("execution", raw_output_prefix), ("launch plan", lp.spec.raw_output_data_config.output_location_prefix),
               ("registration", registration.raw_output_prefix), ("settings", settings.raw_output_prefix)]
    source, prefix = next((s, p) for s, p in choices if p)
    return Launch(execution_id or new_execution_id(), lp, registration, closure, as_url(prefix), source, settings,
                  records)


def start(launch: Launch, inputs: LiteralMap, *, executor: "str | Executor" = "inline",
          max_parallel: int = DEFAULT_PARALLEL, listener: Listener | None = None,
          executor_options: dict[str, Any] | None = None) -> ExecutionResult:
    """Record the execution, write its inputs and closure to the metadata store, and run it to the end."""
    from ferry.executors import check_executor

    settings, records = launch.settings, launch.records
    try:
        if isinstance(executor, str):
            check_executor(executor)  # a name that can't run is refused, not recorded as a failed execution
        literals = launch.inputs(inputs)
    except BaseException:
        records.close()
        raise
    executor_name = executor if isinstance(executor, str) else executor.name
    _record(launch, literals, executor_name, "running")
    return _drive(Closure(launch.closure), literals, settings, records, launch.id, launch.raw_output_prefix,
                  executor, executor_options or {}, max_parallel, listener, resume=False)


def enqueue(launch: Launch, inputs: LiteralMap, *, executor: str = "process") -> ExecutionRecord:
    """Check the inputs, write them and the closure, and record the execution as queued: a server runs it
    (``ferry.engine.queue``). Nothing is recorded when the inputs are wrong. Closes ``launch.records``, as ``start`` does."""
    from ferry.executors import check_executor

    try:
        check_executor(executor)
        return _record(launch, launch.inputs(inputs), executor, "queued")
    finally:
        launch.records.close()


def _record(launch: Launch, literals: LiteralMap, executor_name: str, status: str) -> ExecutionRecord:
    """Write the closure and the inputs to the metadata store, then record the execution (last: never half-made)."""
    settings = launch.settings
    prefix = execution_prefix(settings.metadata_url, launch.id)
    meta = settings.options_for(settings.metadata_url)
    inputs_uri, closure_uri = join(prefix, INPUTS), join(prefix, CLOSURE)
    write_bytes(closure_uri, serialize(launch.closure), meta, "metadata")
    write_bytes(inputs_uri, serialize(literals), meta, "metadata")
    now = time.time()
    queued = status == "queued"
    record = ExecutionRecord(
        launch.id, launch.workflow, launch.name, status, now, None, prefix, launch.raw_output_prefix,
        executor_name, inputs_uri, None, None, launch.name, launch.raw_output_source, closure_uri,
        queued=now if queued else None, claims=0 if queued else None,
    )
    launch.records.create_execution(record)
    return record


def _load(records: Records, execution_id: str, settings: Settings) -> tuple[ExecutionRecord, Closure, LiteralMap]:
    """A recorded execution with the closure and inputs it runs, read back from the metadata store."""
    record = records.get_execution(execution_id)
    if record.status == "succeeded":
        raise FerryError(f"Execution {record.id} already succeeded; nothing to resume.")
    meta = settings.options_for(settings.metadata_url)
    closure_uri = record.closure_uri or join(record.metadata_prefix, CLOSURE)
    closure = parse_closure(read_bytes(closure_uri, meta, "metadata"), closure_uri)
    literals = parse_literal_map(read_bytes(record.inputs_uri or "", meta, "metadata"), record.inputs_uri or "")
    return record, closure, literals


def resume(execution_id: str, *, executor: "str | Executor | None" = None, max_parallel: int = DEFAULT_PARALLEL,
           settings: Settings | None = None, listener: Listener | None = None) -> ExecutionResult:
    """Continue an execution whose engine stopped, from its stored closure: finished nodes are not run again."""
    settings = settings or active_settings()
    records = Records(settings.database_url)
    try:
        record, closure, literals = _load(records, execution_id, settings)
    except BaseException:
        records.close()
        raise
    records.set_status(record.id, "running")
    return _drive(closure, literals, settings, records, record.id, record.raw_output_prefix,
                  executor or record.executor, {}, max_parallel, listener, resume=True)


class Control:
    """A handle on an execution run in the background (by a server): another thread can abort it, and the
    server's lease on it fences the run. ``owner`` and ``lease_until`` are the server's name and until when
    its claim holds (renewed while it runs); past that, another server may own the execution, so this one
    starts no more attempts and records nothing of how the execution ended: it hands the execution over."""

    def __init__(self, owner: str | None = None, lease_until: float = float("inf")) -> None:
        self._lock = threading.Lock()
        self._runner: StoreRunner | None = None
        self.reason = ""  # set once aborted
        self.owner = owner
        self.lease_until = lease_until
        self.handed_over = False

    def attach(self, runner: StoreRunner) -> None:
        with self._lock:
            self._runner = runner
            runner.fence = self.fence
            if self.reason:
                runner.abort()

    def abort(self, reason: str) -> None:
        """Stop the running attempts and start no more; the execution ends "aborted" with ``reason``."""
        with self._lock:
            self.reason = self.reason or reason
            if self._runner is not None:
                self._runner.abort()

    def hand_over(self, reason: str) -> None:
        """Stop as ``abort`` does, but leave the execution's row to the server that owns it now (or will)."""
        self.handed_over = True
        self.abort(reason)

    def fence(self) -> str | None:
        """Why no attempt may start now (the lease ran out), or None."""
        if time.time() <= self.lease_until:
            return None
        self.hand_over(f"the lease of {self.owner} on the execution ran out")
        return self.reason


def run_claimed(execution_id: str, *, settings: Settings | None = None, executor: "str | Executor | None" = None,
                max_parallel: int = DEFAULT_PARALLEL, executor_options: dict[str, Any] | None = None,
                listener: Listener | None = None, control: Control | None = None) -> ExecutionResult:
    """Run an execution a server took from the queue (``enqueue``) to the end: from its start, or resumed
    (finished nodes not run again) when some node already ran, e.g. under a server that died."""
    settings = settings or active_settings()
    records = Records(settings.database_url)
    try:
        record, closure, literals = _load(records, execution_id, settings)
        resumed = records.has_nodes(record.id)
    except BaseException:
        records.close()
        raise
    return _drive(closure, literals, settings, records, record.id, record.raw_output_prefix,
                  executor or record.executor, executor_options or {}, max_parallel, listener, resume=resumed,
                  control=control)


def make_executor(executor: "str | Executor", settings: Settings, options: dict[str, Any]) -> "Executor":
    if not isinstance(executor, str):
        return executor
    from ferry.executors import make_executor as by_name

    if executor in ("process", "dask") and not options.get("address"):
        options = {"env": worker_environment(settings), **options}
        if executor == "dask":
            options.setdefault("cache_base", str(settings.cache_dir / "dask-workers"))
    return by_name(executor, **options)


TASK_ENV_BASE = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TMP", "TEMP",
                 "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "LD_LIBRARY_PATH", "SYSTEMROOT")


def worker_environment(settings: Settings) -> dict[str, str | None]:
    """Environment changes (None removes a variable) for the task processes this engine starts.

    With a worker settings file (FERRY_WORKER_CONFIG), tasks get a minimal environment: the
    variables any program needs (``TASK_ENV_BASE``, ``LC_*``), those the worker settings name
    (``task_env = ["OMP_NUM_THREADS", ...]``) and FERRY_CONFIG pointing at that file; nothing else of
    the engine's (its credentials, its FERRY_* settings) reaches them. Without one, they get the
    engine's environment with the engine's settings, carrying only the store options the engine holds.
    """
    if settings.worker_config:
        from ferry.config import read_settings_file

        named = read_settings_file(settings.worker_config).get("task_env", [])
        if not isinstance(named, list) or not all(isinstance(n, str) for n in named):
            from ferry.errors import ConfigError

            raise ConfigError(f"{settings.worker_config}: task_env must be a list of variable names, "
                              'e.g. task_env = ["OMP_NUM_THREADS"].')
        keep = set(TASK_ENV_BASE) | set(named)
        env: dict[str, str | None] = {k: None for k in os.environ if k not in keep and not k.startswith("LC_")}
        env.update({"FERRY_CONFIG": os.path.abspath(settings.worker_config), "FERRY_HOME": str(settings.home)})
        return env
    held = tuple(k for k, v in settings.store_options.items() if v)
    return dict(settings.to_env(stores=held))


def _drive(closure: Closure, literals: LiteralMap, settings: Settings, records: Records, execution_id: str,
           raw_prefix: str, executor: "str | Executor", executor_options: dict[str, Any], max_parallel: int,
           listener: Listener | None, *, resume: bool, control: Control | None = None) -> ExecutionResult:
    """Walk the graph, then record how it ended, whatever happened: nothing stays "running" by mistake."""
    outputs_uri = join(settings.metadata_url, execution_id, OUTPUTS)
    owner = control.owner if control is not None else None  # a server's run ends the row only while it owns it
    try:
        running = make_executor(executor, settings, executor_options)
        runner = StoreRunner(settings, running, records, execution_id, raw_prefix, resume=resume, listener=listener)
        if control is not None:
            control.attach(runner)
        try:
            outputs = GraphRunner(closure, runner, max_parallel).run(literals)
        finally:
            if running is not executor:  # made for this run; an executor the caller passed in stays theirs
                running.close()
        write_bytes(outputs_uri, serialize(outputs), settings.options_for(outputs_uri), "metadata")
    except KeyboardInterrupt:
        records.abort_open_nodes(execution_id, "aborted by the user (Ctrl-C)")
        records.finish_execution(execution_id, "aborted", error="aborted by the user (Ctrl-C)")
        raise
    except FerryError as exc:
        if control is not None and control.handed_over:  # another server resumes it: its row is not ours
            return ExecutionResult(execution_id, "aborted", None, control.reason)
        if control is not None and control.reason:
            records.abort_open_nodes(execution_id, control.reason)
            records.finish_execution(execution_id, "aborted", error=control.reason, owner=owner)
            return ExecutionResult(execution_id, "aborted", None, control.reason)
        records.finish_execution(execution_id, "failed", error=str(exc), owner=owner)
        return ExecutionResult(execution_id, "failed", None, str(exc))
    except Exception as exc:  # noqa: BLE001 - a bug of the engine's own: the execution fails, it doesn't hang
        message = f"system error in the engine: {type(exc).__name__}: {exc}"
        records.finish_execution(execution_id, "failed", error=message, owner=owner)
        return ExecutionResult(execution_id, "failed", None, message)
    else:
        records.finish_execution(execution_id, "succeeded", outputs_uri, owner=owner)
        return ExecutionResult(execution_id, "succeeded", outputs, interface=closure.primary.template.interface)
    finally:
        records.close()
