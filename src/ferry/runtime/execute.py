"""The data plane: run one task from an input LiteralMap to an output LiteralMap.

This is the only place that turns literals into Python values for a task.
``execute`` works in memory; ``run_task`` is what a pod runs: it reads
``inputs.pb``, and writes ``outputs.pb`` (or ``error.pb``) last, atomically.
"""

from __future__ import annotations

import os
import tempfile
import traceback as tb
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flyteidl.core import errors_pb2, execution_pb2

from ferry.errors import (
    CorruptMetadataError,
    FerryError,
    LiteralTooLargeError,
    StorageError,
    TaskFailedError,
    TypeMismatchError,
)
from ferry.literals import Literal, LiteralMap, literal_map, parse_literal_map, serialize
from ferry.types import TransferContext, default_engine, using_context

if TYPE_CHECKING:
    from ferry.sdk.task import Task

OUTPUTS = "outputs.pb"
ERROR = "error.pb"


def values_to_literals(
    task: "Task", variables: dict[str, Any], values: dict[str, Any], ctx: TransferContext, direction: str
) -> LiteralMap:
    """Convert Python values to literals, then enforce the metadata limit on each."""
    engine = default_engine()
    out: dict[str, Literal] = {}
    for name, var_type in variables.items():
        out[name] = engine.to_literal(values[name], var_type, ctx, f"{task.name}: {direction}.{name}")
    enforce_literal_limit(task, out, ctx, direction)
    return literal_map(out)


def enforce_literal_limit(task: "Task", literals: dict[str, Literal], ctx: TransferContext, direction: str) -> None:
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
                "FERRY_OFFLOAD_LARGE_LITERALS=1 to offload it to the raw store automatically."
            )
        literals[name] = offload_literal(lit, name, ctx)


def offload_literal(lit: Literal, name: str, ctx: TransferContext) -> Literal:
    """Write a literal to the raw store and return a LiteralOffloadedMetadata reference to it."""
    from ferry.storage import write_bytes

    uri = ctx.new_raw_uri(f"{name}.literal.pb")
    data = serialize(lit)
    write_bytes(uri, data, ctx.options(uri), "raw")
    ref = Literal()
    ref.offloaded_metadata.uri = uri
    ref.offloaded_metadata.size_bytes = len(data)
    return ref


def literals_to_values(task: "Task", inputs: LiteralMap, ctx: TransferContext) -> dict[str, Any]:
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


def result_to_dict(task: "Task", result: Any) -> dict[str, Any]:
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


def outputs_to_result(task: "Task", outputs: LiteralMap, ctx: TransferContext) -> Any:
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


def execute(task: "Task", inputs: LiteralMap, ctx: TransferContext) -> LiteralMap:
    """Literals in, run the function, literals out. User exceptions become TaskFailedError(kind="user")."""
    with using_context(ctx):
        values = literals_to_values(task, inputs, ctx)
        try:
            result = task.fn(**values)
        except Exception as exc:  # noqa: BLE001 - any exception of the user's function
            raise TaskFailedError(
                f"Task {task.name} failed: {type(exc).__name__}: {exc}",
                kind="user",
                task=task.name,
                traceback=tb.format_exc(),
            ) from exc
        return values_to_literals(task, task.interface.outputs, result_to_dict(task, result), ctx, "outputs")


def error_document(exc: BaseException) -> errors_pb2.ErrorDocument:
    """An ErrorDocument that tells user errors from system ones, and retryable from final.

    The function raised: user, retryable (``@task(retries=N)``). Bad input or
    interface: user, final. Store unreachable: system, retryable. Other store
    errors: system, final. Anything else broke in the runtime: system, retryable.
    """
    if isinstance(exc, TaskFailedError):
        origin, recoverable, code = "user", True, type(exc.__cause__ or exc).__name__
    elif isinstance(exc, StorageError):
        origin, recoverable, code = "system", exc.retryable, type(exc).__name__
    elif isinstance(exc, FerryError):
        origin, recoverable, code = "user", False, type(exc).__name__
    else:
        origin, recoverable, code = "system", True, type(exc).__name__
    trace = exc.traceback if isinstance(exc, TaskFailedError) and exc.traceback else "".join(tb.format_exception(exc))
    return errors_pb2.ErrorDocument(
        error=errors_pb2.ContainerError(
            code=code,
            message=f"{exc}\n\n{trace}",
            kind=errors_pb2.ContainerError.RECOVERABLE if recoverable else errors_pb2.ContainerError.NON_RECOVERABLE,
            origin=execution_pb2.ExecutionError.USER if origin == "user" else execution_pb2.ExecutionError.SYSTEM,
        )
    )


def run_task(
    task: "Task",
    inputs_uri: str,
    output_prefix: str,
    raw_output_prefix: str,
    *,
    settings: Any = None,
    scope: str = "",
    chdir: bool = False,
    cache_uri: str = "",
    report: dict[str, Any] | None = None,
) -> str:
    """Run one task as a pod would: "succeeded", "cached" (outputs reused) or "failed" (error.pb written).

    Needs only the URIs and the settings' store credentials. ``outputs.pb`` is
    written last and atomically, so its presence means the attempt succeeded.
    With ``cache_uri``, a valid memoized entry is reused without running the function.
    ``report``, if given, receives the persistent-store objects the task read ("datasets").
    """
    from ferry.config import active_settings
    from ferry.runtime import memo
    from ferry.storage import join, read_bytes, write_bytes

    settings = settings or active_settings()
    meta_options = settings.options_for(output_prefix)
    # A pod gets a fresh working folder; in-process runs create theirs only if they download.
    work_dir = Path(tempfile.mkdtemp(prefix="ferry-task-")) if chdir else None
    ctx = TransferContext(settings, raw_prefix=raw_output_prefix, scope=scope or "task", work_dir=work_dir)
    previous = os.getcwd()
    try:
        if work_dir is not None:
            os.chdir(work_dir)
        cached = memo.lookup(cache_uri, settings) if cache_uri else None
        if cached is not None:
            write_bytes(join(output_prefix, OUTPUTS), serialize(cached), meta_options, "metadata")
            return "cached"
        inputs = parse_literal_map(read_bytes(inputs_uri, settings.options_for(inputs_uri), "metadata"), inputs_uri,
                                   nonempty=any(n not in task.interface.defaults for n in task.interface.inputs))
        outputs = execute(task, inputs, ctx)
        write_bytes(join(output_prefix, OUTPUTS), serialize(outputs), meta_options, "metadata")
        if cache_uri:
            memo.store(cache_uri, outputs, settings)
        return "succeeded"
    except Exception as exc:  # noqa: BLE001 - every failure is reported in error.pb
        write_bytes(join(output_prefix, ERROR), serialize(error_document(exc)), meta_options, "metadata")
        return "failed"
    finally:
        if work_dir is not None:
            os.chdir(previous)
        if report is not None:
            report["datasets"] = sorted(ctx.datasets)
        ctx.cleanup()


def read_error(data: bytes) -> errors_pb2.ErrorDocument:
    doc = errors_pb2.ErrorDocument()
    doc.ParseFromString(data)
    return doc
