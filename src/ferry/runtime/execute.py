"""The data plane: run one task from an input LiteralMap to an output LiteralMap.

This is the only place that turns literals into Python values for a task.
``execute`` works in memory; ``run_task`` is what a pod runs: it reads
``inputs.pb``, and writes ``outputs.pb`` (or ``error.pb``) last, atomically.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import traceback as tb
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

from flyteidl.core.dynamic_job_pb2 import DynamicJobSpec

from ferry.errors import (
    CorruptMetadataError,
    FerryError,
    LiteralTooLargeError,
    StorageError,
    TaskFailedError,
    TypeMismatchError,
)
from ferry.interface import Interface
from ferry.layout import ERROR, FUTURES, OUTPUTS, ErrorInfo, Status, attempt_identity
from ferry.literals import Literal, LiteralMap, literal_map, parse_literal_map, serialize
from ferry.types import TransferContext, default_engine, using_context
from ferry.types.collections import serialized_list
from ferry.workdirs import empty_folder


class Task(Protocol):
    """What the runtime needs of a task: its name, typed interface and function (``@task`` objects)."""

    @property
    def name(self) -> str: ...

    @property
    def interface(self) -> Interface: ...

    @property
    def fn(self) -> Callable[..., Any]: ...


def values_to_literals(
    task: Task, variables: dict[str, Any], values: dict[str, Any], ctx: TransferContext, direction: str
) -> LiteralMap:
    """Convert Python values to literals, then enforce the metadata limit on each."""
    engine = default_engine()
    out: dict[str, Literal] = {}
    offloading = ctx.settings.offload_large_literals
    for name, var_type in variables.items():
        if offloading and (data := serialized_list(values[name], var_type, engine)) is not None:
            # a large list of numbers, already encoded: no message per element if it is offloaded
            out[name] = ctx.offload(data, name) if len(data) > ctx.settings.max_literal_bytes \
                else Literal.FromString(data)
            continue
        out[name] = engine.to_literal(values[name], var_type, ctx, f"{task.name}: {direction}.{name}")
    enforce_literal_limit(task, out, ctx, direction)
    return literal_map(out)


def enforce_literal_limit(task: Task, literals: dict[str, Literal], ctx: TransferContext, direction: str) -> None:
    """Each inline literal must fit the metadata limit, or be offloaded when that is enabled."""
    limit = ctx.settings.max_literal_bytes
    for name, lit in literals.items():
        size = lit.ByteSize()
        if size <= limit:
            continue
        if not ctx.settings.offload_large_literals:
            raise LiteralTooLargeError(
                f"Task {task.name}: {direction} {name!r} is {size:,} bytes serialized, over the "
                f"{limit:,}-byte metadata limit. Metadata is for small values: pass large data as a "
                "File, a Directory or a data frame, raise FERRY_MAX_LITERAL_BYTES, or set "
                "FERRY_OFFLOAD_LARGE_LITERALS=1 (the default) to write it as a file of its own beside the "
                "task's metadata."
            )
        literals[name] = offload_literal(lit, name, ctx)


def offload_literal(lit: Literal, name: str, ctx: TransferContext) -> Literal:
    """Write a literal as a file of its own and return a LiteralOffloadedMetadata reference to it."""
    return ctx.offload(serialize(lit), name)


def literals_to_values(task: Task, inputs: LiteralMap, ctx: TransferContext) -> dict[str, Any]:
    engine = default_engine()
    declared = task.interface.inputs
    unknown = sorted(set(inputs.literals) - set(declared))
    if unknown:
        raise TypeMismatchError(
            f"Task {task.name}: unexpected input(s) {unknown}; it declares {sorted(declared)}."
        )
    values: dict[str, Any] = {}
    for name, var_type in declared.items():
        if name in inputs.literals:
            values[name] = engine.to_python(inputs.literals[name], var_type, ctx, f"{task.name}: inputs.{name}")
        elif name in task.interface.defaults:
            values[name] = task.interface.defaults[name]
        else:
            raise TypeMismatchError(f"Task {task.name}: missing input {name!r} (declared as {var_type}).")
    return values


def result_to_dict(task: Task, result: Any) -> dict[str, Any]:
    """The function's return value, by output name."""
    outputs = task.interface.outputs
    if not outputs:
        return {}
    if len(outputs) == 1 and task.interface.output_tuple is None:
        return {next(iter(outputs)): result}
    if not isinstance(result, tuple) or len(result) != len(outputs):
        raise TypeMismatchError(
            f"Task {task.name}: returned {type(result).__name__}, but declares {len(outputs)} outputs "
            f"{list(outputs)}; return a tuple of that length."
        )
    return dict(zip(outputs, result, strict=True))


def outputs_to_result(task: Task, outputs: LiteralMap, ctx: TransferContext) -> Any:
    """Output literals -> what the function returns (None, a value, a tuple, or its NamedTuple).

    Works for anything with ``name`` and ``interface``: tasks and workflows alike."""
    engine = default_engine()
    names = task.interface.outputs
    values = []
    for name, var_type in names.items():
        if name not in outputs.literals:
            raise CorruptMetadataError(f"Task {task.name}: outputs lack {name!r}; they have {sorted(outputs.literals)}.")
        values.append(engine.to_python(outputs.literals[name], var_type, ctx, f"{task.name}: outputs.{name}"))
    if not names:
        return None
    if task.interface.output_tuple is not None:
        return task.interface.output_tuple(*values)
    return values[0] if len(values) == 1 else tuple(values)


def execute(task: Task, inputs: LiteralMap, ctx: TransferContext) -> LiteralMap | DynamicJobSpec:
    """Literals in, run the function, literals out. User exceptions become TaskFailedError(kind="user").

    The function runs in ``ctx.work_dir`` when there is one, so that what it writes by relative
    path lands in its attempt's own folder. A dynamic task (one with ``expand``) returns the
    DynamicJobSpec its body builds instead of outputs.
    """
    ctx.task = task.name
    with using_context(ctx):
        values = literals_to_values(task, inputs, ctx)
        expand = getattr(task, "expand", None)
        try:
            with working_folder(ctx.work_dir):
                if expand is not None:
                    engine = default_engine()
                    return expand(values, lambda c: engine.to_literal(c.value, c.python_type, ctx, c.where))  # type: ignore[no-any-return]
                result = task.fn(**values)
        except Exception as exc:  # noqa: BLE001 - any exception of the user's function
            raise TaskFailedError(
                f"Task {task.name} failed: {type(exc).__name__}: {exc}",
                kind="user",
                task=task.name,
                traceback=tb.format_exc(),
            ) from exc
        return values_to_literals(task, task.interface.outputs, result_to_dict(task, result), ctx, "outputs")


def error_info(exc: BaseException) -> ErrorInfo:
    """What the engine needs to know of a failure: user or system, retryable or final.

    The function raised: user, retryable (``@task(retries=N)``). Bad input or
    interface: user, final. Store unreachable: system, retryable. Other store
    errors: system, final. Anything else broke in the runtime: system, retryable.
    """
    if isinstance(exc, TaskFailedError):
        origin, retryable, code = "user", True, type(exc.__cause__ or exc).__name__
    elif isinstance(exc, StorageError):
        origin, retryable, code = "system", exc.retryable, type(exc).__name__
    elif isinstance(exc, FerryError):
        origin, retryable, code = "user", False, type(exc).__name__
    else:
        origin, retryable, code = "system", True, type(exc).__name__
    trace = exc.traceback if isinstance(exc, TaskFailedError) and exc.traceback else "".join(tb.format_exception(exc))
    return ErrorInfo(message=f"{exc}\n\n{trace}", code=code, origin=origin, retryable=retryable)


def write_error(output_prefix: str, exc: BaseException, settings: Any) -> ErrorInfo:
    """Print the error and its traceback to stderr, as a pod's log would show them, and write error.pb."""
    info = report_error(exc)
    write_error_document(output_prefix, info, settings.options_for(output_prefix))
    return info


def report_error(exc: BaseException) -> ErrorInfo:
    info = error_info(exc)
    print(f"ferry.runtime: {info.origin} error ({info.code}): {info.message}", file=sys.stderr, flush=True)
    return info


def write_error_document(output_prefix: str, info: ErrorInfo, options: dict[str, Any]) -> None:
    from ferry.storage import join, write_bytes

    write_bytes(join(output_prefix, ERROR), serialize(info.to_document()), options, "metadata")


def run_task(
    task: Task,
    inputs_uri: str,
    output_prefix: str,
    raw_output_prefix: str,
    *,
    settings: Any = None,
    cache_uri: str = "",
    report: dict[str, Any] | None = None,
    capture: str = "thread",
    inputs: LiteralMap | None = None,
    write_outputs: bool = True,
) -> Status:
    """Run one task as a pod would; ``outputs.pb`` is written last and atomically, or ``error.pb``.

    Needs only the URIs and the settings' store credentials. ``raw_output_prefix``
    is this attempt's own folder. With ``cache_uri``, a valid memoized entry is
    reused without running the function. The function runs in a working folder of its own
    (empty when it starts), so tasks writing relative paths never see each other's files.
    What the attempt prints is kept in ``logs.txt`` beside its outputs (``capture``: "fd" when
    the attempt has the process to itself, "thread" when it shares it), and the report it attached
    (``ferry.reports.current_report()``) in ``report.html``.
    ``report``, if given, receives the persistent-store objects the task read ("datasets") and the
    attempt's result ("outputs", "futures" or "error"), so that a caller in the same process needn't read them
    back; ``inputs`` likewise spares reading inputs.pb when the caller holds them. With ``write_outputs``
    False the caller (an engine running the attempt in its own process) keeps the outputs it finds in
    ``report``: no outputs.pb is written.
    """
    import ferry.reports as reports
    from ferry.config import active_settings
    from ferry.runtime import memo
    from ferry.runtime.logs import capture as capturing
    from ferry.runtime.logs import write_logs
    from ferry.storage import join, read_bytes, write_bytes

    if not write_outputs and report is None:
        raise ValueError("run_task(write_outputs=False) needs a report to hand the outputs back in")
    settings = settings or active_settings()
    meta_options = settings.options_for(output_prefix)
    execution_id, node, attempt = attempt_identity(output_prefix, settings.metadata_url) or ("", "", 0)
    ctx = TransferContext(settings, raw_prefix=raw_output_prefix, work_dir=empty_folder(), execution_id=execution_id,
                          node=node, attempt=attempt, meta_prefix=output_prefix)
    result: LiteralMap | DynamicJobSpec | None = None
    info: ErrorInfo | None = None
    try:
        cached = memo.lookup(cache_uri, settings) if cache_uri else None
        if cached is not None:
            if write_outputs:
                write_bytes(join(output_prefix, OUTPUTS), serialize(cached), meta_options, "metadata")
            if report is not None:
                report["outputs"] = cached
            return Status.CACHED
        with capturing(capture) as printed, reports.collecting(task.name) as attached:
            try:
                if inputs is None:
                    data = read_bytes(inputs_uri, settings.options_for(inputs_uri), "metadata")
                    inputs = parse_literal_map(data, inputs_uri, nonempty=any(n not in task.interface.defaults
                                                                              for n in task.interface.inputs))
                with beating(output_prefix, meta_options):
                    result = execute(task, inputs, ctx)
            except Exception as exc:  # noqa: BLE001 - every failure is reported in error.pb
                info = report_error(exc)
        write_logs(output_prefix, printed, meta_options)
        reports.save(attached, output_prefix, meta_options)  # beside the outputs, before outputs.pb / error.pb
        if isinstance(result, DynamicJobSpec):  # the engine runs the subgraph, then writes outputs.pb
            write_bytes(join(output_prefix, FUTURES), serialize(result), meta_options, "metadata")
            if report is not None:
                report["futures"] = result
            return Status.SUCCEEDED
        if result is not None:
            if write_outputs:
                write_bytes(join(output_prefix, OUTPUTS), serialize(result), meta_options, "metadata")
            if cache_uri:
                memo.store(cache_uri, result, settings)
            if report is not None:
                report["outputs"] = result
            return Status.SUCCEEDED
    except Exception as exc:  # noqa: BLE001 - the store failed us after the task ran
        info = report_error(exc)
    finally:
        if report is not None:
            report["datasets"] = sorted(ctx.datasets)
        ctx.cleanup()
    assert info is not None
    write_error_document(output_prefix, info, meta_options)
    if report is not None:
        report["error"] = info
    return Status.FAILED


@contextlib.contextmanager
def beating(output_prefix: str, options: dict[str, Any]) -> Iterator[None]:
    """Have the attempt's heartbeat written while the task runs (from FIRST_HEARTBEAT seconds on), so that
    an engine resuming after a crash can tell this attempt is alive and wait for it instead of starting
    another. One thread per process writes every running attempt's beats: an attempt costs no thread."""
    key = object()
    with _heart.lock:
        _heart.running[key] = (output_prefix, options, time.time())
        if _heart.thread is None:
            _heart.thread = threading.Thread(target=_heart.beat, name="ferry-heartbeat", daemon=True)
            _heart.thread.start()
    try:
        yield
    finally:
        with _heart.lock:  # a beat being written now may land after outputs.pb: harmless, the outcome wins
            del _heart.running[key]


class _Heart:
    """The process's heartbeat writer: attempts running longer than FIRST_HEARTBEAT get a beat every HEARTBEAT_EVERY."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running: dict[object, tuple[str, dict[str, Any], float]] = {}
        self.last: dict[object, float] = {}
        self.thread: threading.Thread | None = None

    def beat(self) -> None:
        import socket

        from ferry.layout import FIRST_HEARTBEAT, HEARTBEAT, HEARTBEAT_EVERY, Heartbeat
        from ferry.storage import join, write_bytes

        host, pid = socket.gethostname(), os.getpid()
        while True:
            time.sleep(min(FIRST_HEARTBEAT, HEARTBEAT_EVERY) / 4)
            now = time.time()
            with self.lock:
                due = [(key, prefix, options, started) for key, (prefix, options, started) in self.running.items()
                       if now - started >= FIRST_HEARTBEAT and now - self.last.get(key, 0.0) >= HEARTBEAT_EVERY]
                self.last = {key: self.last[key] for key in self.last if key in self.running}
            for key, prefix, options, started in due:
                try:
                    doc = Heartbeat(host, pid, started, time.time())
                    write_bytes(join(prefix, HEARTBEAT), doc.to_bytes(), options, "metadata")
                    self.last[key] = now
                except FerryError:
                    pass  # the store is unreachable: the next beat may get through


_heart = _Heart()


_cwd_lock = threading.RLock()


def process_cwd() -> str:
    """The process's own working folder, never an attempt's: what a child process should start in (a child
    started while another thread's attempt is in its folder would inherit that folder, soon deleted)."""
    with _cwd_lock:
        return os.getcwd()


@contextlib.contextmanager
def working_folder(folder: Path | None) -> Iterator[None]:
    """Run in ``folder`` (None: stay). The working folder is per process, so functions of attempts that
    run on several threads of one process take turns (their reads and writes of the stores don't)."""
    if folder is None:
        yield
        return
    with _cwd_lock:
        previous = os.getcwd()
        os.chdir(folder)
        try:
            yield
        finally:
            os.chdir(previous)
