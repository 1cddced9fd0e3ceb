"""Run task nodes through the metadata store and an executor, with retries, records and resume.

Per attempt: write ``{metadata}/{execution}/{node}/{attempt}/inputs.pb``, let
the executor run the task runtime, then read ``outputs.pb`` or ``error.pb``.
The engine reads and writes only metadata; it never opens raw data.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from flyteidl.core import errors_pb2, execution_pb2

from ferry.config import Settings
from ferry.engine.cache import cache_key, cache_uri
from ferry.engine.graph import NodeFailedError
from ferry.engine.records import Records
from ferry.errors import FerryError, ObjectNotFoundError, StorageError
from ferry.executors.base import Executor, TaskRequest
from ferry.literals import LiteralMap, parse_literal_map, references, serialize
from ferry.runtime.execute import ERROR, OUTPUTS
from ferry.storage import exists, join, read_bytes, write_bytes

if TYPE_CHECKING:
    from ferry.sdk.task import Task

@dataclass
class Outcome:
    """How one attempt ended, as read back from the metadata store."""

    outputs: LiteralMap | None = None
    cached: bool = False
    error: str = ""
    retryable: bool = False
    origin: str = "system"  # "user" or "system"
    worker: str = ""  # where the attempt ran


SYSTEM_RETRIES = 2  # a dead worker or unreachable store is retried even when the task sets none
Listener = Callable[[str, str, str, str, str], None]


class StoreRunner:
    def __init__(self, settings: Settings, executor: Executor, records: Records, execution_id: str,
                 raw_output_prefix: str, *, resume: bool = False, listener: Listener | None = None) -> None:
        self.settings = settings
        self.executor = executor
        self.records = records
        self.execution_id = execution_id
        self.raw_output_prefix = raw_output_prefix
        self.resume = resume
        self.listener = listener
        self.meta_options = settings.options_for(settings.metadata_url)
        self.aborted = threading.Event()

    def prefix(self, path: str, attempt: int) -> str:
        return join(self.settings.metadata_url, self.execution_id, path, str(attempt))

    def event(self, path: str, kind: str, label: str, status: str, detail: str = "") -> None:
        self.records.node(self.execution_id, path, 0, kind, label, status, detail=detail or None)
        if self.listener:
            self.listener(path, kind, label, status, detail)

    def abort(self) -> None:
        self.aborted.set()
        self.executor.cancel_all()

    def _finished_before(self, path: str) -> tuple[int, LiteralMap | None]:
        """On resume: outputs of an attempt that completed in an earlier engine run, and the next attempt number."""
        attempt = 0
        while exists(join(self.prefix(path, attempt), "inputs.pb"), self.meta_options, "metadata"):
            outputs_uri = join(self.prefix(path, attempt), OUTPUTS)
            if exists(outputs_uri, self.meta_options, "metadata"):
                return attempt, parse_literal_map(read_bytes(outputs_uri, self.meta_options), outputs_uri)
            attempt += 1
        return attempt, None

    def run_task(self, path: str, task: "Task", inputs: LiteralMap) -> LiteralMap:
        attempt = 0
        if self.resume:
            attempt, done = self._finished_before(path)
            if done is not None:
                self.records.node(self.execution_id, path, attempt, "task", task.name, "succeeded",
                                  self.prefix(path, attempt), detail="completed before resume")
                return done
        user_failures = system_failures = 0
        while True:
            if self.aborted.is_set():
                raise NodeFailedError(path, "execution aborted", "system")
            prefix = self.prefix(path, attempt)
            self._notify(path, task, "running", attempt)
            self.records.node(self.execution_id, path, attempt, "task", task.name, "running", prefix)
            outcome = self._attempt(path, task, inputs, prefix, attempt)
            if outcome.outputs is not None:
                status = "cached" if outcome.cached else "succeeded"
                self.records.node(self.execution_id, path, attempt, "task", task.name, status, prefix,
                                  detail=outcome.worker or None)
                self._notify(path, task, status, attempt)
                return outcome.outputs
            error, origin = outcome.error, outcome.origin
            self.records.node(self.execution_id, path, attempt, "task", task.name, "failed", prefix, error,
                              detail=outcome.worker or None)
            if origin == "user":
                user_failures += 1
                again = outcome.retryable and user_failures <= task.retries
            else:
                system_failures += 1
                again = outcome.retryable and system_failures <= max(task.retries, SYSTEM_RETRIES)
            if not again or self.aborted.is_set():
                self._notify(path, task, "failed", attempt, error)
                raise NodeFailedError(path, f"{task.name} failed ({origin} error, attempt {attempt + 1}): {error}", origin)
            self._notify(path, task, "retrying", attempt, error)
            time.sleep(min(0.2 * 2**attempt, 5.0))
            attempt += 1

    def _notify(self, path: str, task: "Task", status: str, attempt: int, detail: str = "") -> None:
        if self.listener:
            self.listener(path, "task", task.name, status, detail or (f"attempt {attempt + 1}" if attempt else ""))

    def _dataset_inputs(self, inputs: LiteralMap) -> tuple[str, ...]:
        """Persistent-store objects among the inputs, from their URIs alone (for cache-aware placement)."""
        root = self.settings.persistent_url.rstrip("/") + "/"
        return tuple(sorted({uri for lit in inputs.literals.values() for uri in references(lit) if uri.startswith(root)}))

    def _attempt(self, path: str, task: "Task", inputs: LiteralMap, prefix: str, attempt: int) -> Outcome:
        """Write inputs.pb, have the executor run the runtime, read outputs.pb or error.pb."""
        inputs_uri = join(prefix, "inputs.pb")
        memo_uri = cache_uri(self.settings, cache_key(task, inputs)) if task.cache else ""
        try:
            write_bytes(inputs_uri, serialize(inputs), self.meta_options, "metadata")
            result = self.executor.run(TaskRequest(
                task.reference, inputs_uri, prefix, self.raw_output_prefix,
                f"{self.execution_id}/{path}/{attempt}", task, memo_uri,
                datasets=self._dataset_inputs(inputs) if getattr(self.executor, "placement", False) else (),
                resources=task.resources or None,
            ))
            try:
                data = read_bytes(join(prefix, OUTPUTS), self.meta_options, "metadata")
                return Outcome(parse_literal_map(data, join(prefix, OUTPUTS)), cached=result.cached,
                               worker=", ".join(x for x in (result.worker, result.note) if x))
            except ObjectNotFoundError:
                pass
            try:
                doc = errors_pb2.ErrorDocument()
                doc.ParseFromString(read_bytes(join(prefix, ERROR), self.meta_options, "metadata"))
            except ObjectNotFoundError:
                return Outcome(error=f"the task process exited with code {result.exit_code} without writing "
                                     f"outputs: {result.detail}", retryable=True, worker=result.worker)
        except StorageError as exc:
            return Outcome(error=f"metadata store error: {exc}", retryable=exc.retryable)
        except FerryError as exc:
            return Outcome(error=str(exc))
        err = doc.error
        return Outcome(
            error=err.message.split("\n\nTraceback")[0],
            retryable=err.kind == errors_pb2.ContainerError.RECOVERABLE,
            origin="user" if err.origin == execution_pb2.ExecutionError.USER else "system",
            worker=result.worker,
        )
