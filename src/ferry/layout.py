"""Where an execution's metadata lives, and how one attempt's outcome is written and read back.

The one place that spells the attempt layout and the status protocol between the
task runtime, the executors and the engine:

    {metadata}/{execution}/inputs.pb | outputs.pb | closure.pb      the execution
    {metadata}/{execution}/{node}/{attempt}/inputs.pb                what the attempt was given
    {metadata}/{execution}/{node}/{attempt}/outputs.pb               written last: the attempt succeeded
    {metadata}/{execution}/{node}/{attempt}/error.pb                 a flyteidl ErrorDocument: it failed
    {metadata}/{execution}/{node}/{attempt}/futures.pb               a dynamic task's DynamicJobSpec: run it
    {metadata}/{execution}/{node}/{attempt}/running.json             heartbeat of an attempt still running
    {metadata}/{execution}/{node}/{attempt}/logs.txt                 what the attempt printed (its tail)
    {metadata}/{execution}/{node}/{attempt}/report.html              the report the task attached, if any
    {raw_output_prefix}/{random}/{execution}/{node}/{attempt}/...    what the attempt offloaded

An attempt's outcome is read from the store, never from an exit code: ``outputs.pb``
means success, ``error.pb`` failure (its fields say user or system, retryable or
not), neither means the process died (a retryable system error). Exit codes only
label the process's end, as ``EXIT_CODES`` says.

One exception keeps small attempts cheap: an attempt that runs inside the engine's own
process (the inline executor) needs no object to hand its inputs over or its outputs back,
so when they are small (``Settings.meta_in_records_bytes``) its ``inputs.pb`` and
``outputs.pb`` are kept in its node record instead, at the same names
(``NodeRecord.meta``). They die with the engine they ran in, so on resume such an attempt
is either recorded succeeded with its outputs, or lost.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from typing import Any

from flyteidl.core import dynamic_job_pb2, errors_pb2, execution_pb2

from ferry.errors import CorruptMetadataError, ObjectNotFoundError
from ferry.literals import LiteralMap, parse_literal_map
from ferry.storage import join, read_bytes

INPUTS = "inputs.pb"
OUTPUTS = "outputs.pb"
ERROR = "error.pb"
FUTURES = "futures.pb"  # a dynamic task's result: the subgraph to run; outputs.pb follows once it has run
CLOSURE = "closure.pb"  # the compiled workflow an execution runs (resume reads it)
LOGS = "logs.txt"  # the attempt's stdout and stderr, written before outputs.pb / error.pb
REPORT = "report.html"  # a task's own report (``ferry.reports``), written before outputs.pb / error.pb
HEARTBEAT = "running.json"  # written by the runtime while an attempt runs longer than FIRST_HEARTBEAT

# An attempt's liveness, for an engine that resumes after a crash: the runtime writes a heartbeat
# once the task has run FIRST_HEARTBEAT seconds, then every HEARTBEAT_EVERY; an attempt is dead when
# its heartbeat is older than LEASE, or when it has none and its inputs.pb is older than UNSTARTED_GRACE.
FIRST_HEARTBEAT = 1.0
HEARTBEAT_EVERY = 5.0
LEASE = 3 * HEARTBEAT_EVERY
UNSTARTED_GRACE = FIRST_HEARTBEAT + 5.0


class Status(str, enum.Enum):
    """How the task runtime ended an attempt."""

    SUCCEEDED = "succeeded"  # outputs.pb written by running the task
    CACHED = "cached"  # outputs.pb copied from a memoized entry; the task did not run
    FAILED = "failed"  # error.pb written
    NOT_LOADED = "not-loaded"  # the task could not be found or imported (error.pb written if possible)


EXIT_CODES = {Status.SUCCEEDED: 0, Status.FAILED: 1, Status.NOT_LOADED: 2, Status.CACHED: 3}
STATUS_OF_EXIT = {code: status for status, code in EXIT_CODES.items()}


def execution_prefix(metadata_url: str, execution_id: str) -> str:
    return join(metadata_url, execution_id)


def attempt_prefix(metadata_url: str, execution_id: str, path: str, attempt: int) -> str:
    return join(metadata_url, execution_id, path, str(attempt))


def raw_attempt_prefix(raw_output_prefix: str, execution_id: str, path: str, attempt: int) -> str:
    """A fresh raw folder for one attempt; the random part keeps writers (and S3 key prefixes) apart."""
    return join(raw_output_prefix, os.urandom(8).hex(), execution_id, path, str(attempt))


def attempt_identity(prefix: str, root: str, skip: int = 0) -> tuple[str, str, int] | None:
    """(execution, node path, attempt) of an attempt folder under ``root``: ``{root}/{execution}/{node}/{attempt}``
    for metadata, ``{root}/{random}/{execution}/{node}/{attempt}`` for raw data (``skip=1``); None if it is not one."""
    base = root.rstrip("/") + "/"
    if not prefix.startswith(base):
        return None
    parts = prefix[len(base):].strip("/").split("/")[skip:]
    if len(parts) < 3 or not parts[-1].isdigit():
        return None
    return parts[0], "/".join(parts[1:-1]), int(parts[-1])


@dataclass(frozen=True)
class ErrorInfo:
    """The fields of an attempt's error, as the engine acts on them."""

    message: str  # the whole message; its first line is the headline
    code: str = ""  # e.g. the exception's class name
    origin: str = "system"  # "user" (the task's code failed) or "system" (the machinery did)
    retryable: bool = True

    @property
    def headline(self) -> str:
        """The line a person reads first: the message's first line, or, for flytekit's "Trace: ...
        Message: ..." errors, the first line of their message part."""
        text = self.message.strip()
        if text.startswith("Trace:") and "\nMessage:" in text:
            text = text.split("\nMessage:", 1)[1].strip()
        return text.split("\n", 1)[0].strip()

    @classmethod
    def from_document(cls, doc: errors_pb2.ErrorDocument) -> "ErrorInfo":
        err = doc.error
        return cls(
            message=err.message,
            code=err.code,
            origin="user" if err.origin == execution_pb2.ExecutionError.USER else "system",
            retryable=err.kind == errors_pb2.ContainerError.RECOVERABLE,
        )

    def to_document(self) -> errors_pb2.ErrorDocument:
        return errors_pb2.ErrorDocument(error=errors_pb2.ContainerError(
            code=self.code,
            message=self.message,
            kind=errors_pb2.ContainerError.RECOVERABLE if self.retryable else errors_pb2.ContainerError.NON_RECOVERABLE,
            origin=execution_pb2.ExecutionError.USER if self.origin == "user" else execution_pb2.ExecutionError.SYSTEM,
        ))


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended: outputs, a dynamic task's subgraph to run, or an error."""

    outputs: LiteralMap | None = None
    error: ErrorInfo | None = None
    cached: bool = False
    worker: str = ""  # where it ran, for the records
    futures: dynamic_job_pb2.DynamicJobSpec | None = None

    @property
    def succeeded(self) -> bool:
        return self.outputs is not None or self.futures is not None


def parse_error_document(data: bytes, source: str) -> errors_pb2.ErrorDocument:
    doc = errors_pb2.ErrorDocument()
    try:
        doc.ParseFromString(data)
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise CorruptMetadataError(f"{source} is not a valid flyteidl ErrorDocument ({exc}).") from exc
    return doc


@dataclass(frozen=True)
class Heartbeat:
    """Who runs an attempt and since when: written by the runtime, read by an engine resuming."""

    host: str
    pid: int
    started: float
    beat: float

    def to_bytes(self) -> bytes:
        import json

        return json.dumps(self.__dict__).encode()

    @classmethod
    def read(cls, prefix: str, options: dict[str, Any] | None) -> "Heartbeat | None":
        import json

        try:
            return cls(**json.loads(read_bytes(join(prefix, HEARTBEAT), options, "metadata")))
        except ObjectNotFoundError:
            return None
        except (ValueError, TypeError) as exc:
            raise CorruptMetadataError(f"{join(prefix, HEARTBEAT)} is not a heartbeat ({exc}).") from exc


def read_outcome(prefix: str, options: dict[str, Any] | None) -> Outcome | None:
    """What the attempt at ``prefix`` left: its outputs, its error, or None if it left neither."""
    outputs_uri = join(prefix, OUTPUTS)
    try:
        return Outcome(outputs=parse_literal_map(read_bytes(outputs_uri, options, "metadata"), outputs_uri))
    except ObjectNotFoundError:
        pass
    error_uri = join(prefix, ERROR)
    try:
        data = read_bytes(error_uri, options, "metadata")
        return Outcome(error=ErrorInfo.from_document(parse_error_document(data, error_uri)))
    except ObjectNotFoundError:
        pass
    futures_uri = join(prefix, FUTURES)
    try:
        data = read_bytes(futures_uri, options, "metadata")
    except ObjectNotFoundError:
        return None
    spec = dynamic_job_pb2.DynamicJobSpec()
    try:
        spec.ParseFromString(data)
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError
        raise CorruptMetadataError(f"{futures_uri} is not a DynamicJobSpec ({exc}).") from exc
    return Outcome(futures=spec)
