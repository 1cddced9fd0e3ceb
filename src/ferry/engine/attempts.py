"""Task attempts: one retry policy for every way a task runs, and the store-backed attempt runner.

``RetryPolicy`` and ``run_with_retries`` are the only retry logic for tasks:
``wf(...)`` in memory, ``ferry.run`` and registered launches all go through
them. User errors (the task raised) are retried up to ``@task(retries=N)``;
system errors (a dead worker, an unreachable store, a timeout) at least
``SYSTEM_RETRIES`` times; errors marked final (bad input) never. The pause
doubles from 0.2 s up to 5 s.

``StoreRunner`` runs one attempt as a pod would: it writes
``{metadata}/{execution}/{node}/{attempt}/inputs.pb``, has the executor run the
task, and reads back the outcome (``ferry.layout``). It reads and writes only
metadata; it never opens raw data.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable

from flyteidl.core import tasks_pb2, workflow_pb2
from flyteidl.core.dynamic_job_pb2 import DynamicJobSpec

from ferry.config import Settings
from ferry.engine.cache import cache_key, cache_uri
from ferry.engine.graph import NodeFailedError, turns_in_process
from ferry.errors import FerryError, StorageError
from ferry.executors.base import Executor, TaskRequest, flytekit_task
from ferry.layout import (
    ERROR,
    INPUTS,
    LEASE,
    OUTPUTS,
    UNSTARTED_GRACE,
    ErrorInfo,
    Heartbeat,
    Outcome,
    Status,
    attempt_prefix,
    raw_attempt_prefix,
    read_outcome,
)
from ferry.literals import (
    Literal,
    LiteralMap,
    local_blob_paths,
    parse_literal,
    parse_literal_map,
    references,
    serialize,
)
from ferry.storage import exists, join, modified, read_bytes, write_bytes

if TYPE_CHECKING:
    from ferry.engine.records import Records
    from ferry.engine.rows import NodeRecord

RECOVER_POLL = 0.2  # seconds between looks at an adopted attempt that is still running
SYSTEM_RETRIES = 2  # a dead worker or unreachable store is retried even when the task sets no retries
Listener = Callable[[str, str, str, str, str], None]  # (path, kind, label, status, detail)


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 0  # for user errors, as @task(retries=N) says
    system_retries: int = SYSTEM_RETRIES
    first_delay: float = 0.2
    max_delay: float = 5.0

    @classmethod
    def of(cls, task: tasks_pb2.TaskTemplate, node: workflow_pb2.Node | None = None) -> "RetryPolicy":
        """The task's retries, or the node's when the workflow overrides them."""
        if node is not None and node.metadata.HasField("retries"):
            return cls(node.metadata.retries.retries)
        return cls(task.metadata.retries.retries)

    def again(self, error: ErrorInfo, user_failures: int, system_failures: int) -> bool:
        if not error.retryable:
            return False
        if error.origin == "user":
            return user_failures <= self.retries
        return system_failures <= max(self.retries, self.system_retries)

    def delay(self, attempt: int) -> float:
        return min(self.first_delay * 2.0**attempt, self.max_delay)


def run_with_retries(policy: RetryPolicy, attempt: Callable[[int], Outcome], *, first: int = 0,
                     stop: threading.Event | None = None,
                     on_failure: Callable[[int, ErrorInfo, bool], None] | None = None) -> tuple[int, Outcome]:
    """Run ``attempt(n)`` for n = first, first + 1, ... until one succeeds or the policy gives up.

    Returns the last attempt's number and outcome. ``stop`` (set on abort) ends the
    pause between attempts at once and allows no further attempt.
    """
    user = system = 0
    n = first
    while True:
        outcome = attempt(n)
        if outcome.succeeded:
            return n, outcome
        error = outcome.error or ErrorInfo("the attempt ended without outputs or an error")
        if error.origin == "user":
            user += 1
        else:
            system += 1
        again = policy.again(error, user, system) and not (stop is not None and stop.is_set())
        if on_failure is not None:
            on_failure(n, error, again)
        if not again:
            return n, outcome
        if stop is not None:
            stop.wait(policy.delay(n))
        else:
            time.sleep(policy.delay(n))
        n += 1


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has exited
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def failure(path: str, label: str, attempt: int, error: ErrorInfo) -> NodeFailedError:
    return NodeFailedError(path, f"{label} failed ({error.origin} error, attempt {attempt + 1}): {error.headline}",
                           error.origin)


class StoreRunner:
    """Runs task nodes through the metadata store and an executor, with retries, records and resume."""

    def __init__(self, settings: Settings, executor: Executor, records: "Records", execution_id: str,
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
        self.fence: Callable[[], str | None] | None = None  # why no attempt may start now (a server's lost lease)
        self.parallelism = int(getattr(executor, "parallelism", 0))  # attempts the executor likes in flight
        self._succeeded: dict[str, int] = {}  # dynamic tasks' paths -> their attempt that built the subgraph
        self._before: dict[str, dict[int, NodeRecord]] = {}  # on resume: the task attempts recorded so far
        for record in records.nodes(execution_id) if resume else ():
            if record.kind == "task":
                self._before.setdefault(record.path, {})[record.attempt] = record

    def prefix(self, path: str, attempt: int) -> str:
        return attempt_prefix(self.settings.metadata_url, self.execution_id, path, attempt)

    def event(self, path: str, kind: str, label: str, status: str, detail: str = "") -> None:
        self.records.node(self.execution_id, path, 0, kind, label, status, detail=detail or None)
        if self.listener:
            self.listener(path, kind, label, status, detail)

    def takes_turns(self, task: tasks_pb2.TaskTemplate) -> bool:
        in_process = getattr(self.executor, "in_process", None)
        return in_process is not None and in_process(task) and turns_in_process(task)

    def load_offloaded(self, path: str, literal: Literal) -> Literal:
        """Read from the metadata store only: a literal offloaded elsewhere is raw data to the engine."""
        uri, root = literal.offloaded_metadata.uri, self.settings.metadata_url.rstrip("/") + "/"
        if not uri.startswith(root):
            raise NodeFailedError(path, f"a mapped input is a list offloaded to {uri}, outside the metadata store "
                                        f"({root}), and the engine reads nothing else. Write it with this version "
                                        "of ferry (which offloads into the metadata store), or pass the list inline.")
        try:
            return parse_literal(read_bytes(uri, self.meta_options, "metadata"), f"offloaded literal {uri}")
        except FerryError as exc:
            raise NodeFailedError(path, f"can't read the offloaded list {uri}: {exc}") from exc

    def abort(self) -> None:
        self.aborted.set()
        self.executor.cancel_all()

    def _recover(self, path: str, label: str) -> tuple[int, Outcome | None]:
        """On resume: adopt what the node's newest attempt did in the engine run that stopped.

        A finished attempt is taken as it ended; one still running (its heartbeat is fresh) is
        waited for, not run again; one that is dead (no heartbeat within its lease) is recorded as
        lost. Returns the next attempt's number, and the outcome to use if the node succeeded.
        """
        recorded = self._before.get(path, {})
        count = max(recorded, default=-1) + 1  # attempts kept in records have no inputs.pb object
        while exists(join(self.prefix(path, count), INPUTS), self.meta_options, "metadata"):
            count += 1
        if count == 0:
            return 0, None
        n = count - 1
        prefix = self.prefix(path, n)
        row = recorded.get(n)
        if row is not None and row.outputs is not None and row.status in ("succeeded", "cached"):
            return n, Outcome(outputs=parse_literal_map(row.outputs, f"the record of {path} attempt {n + 1}"))
        outcome = read_outcome(prefix, self.meta_options)
        if row is not None and row.status in ("succeeded", "cached") and outcome is not None and outcome.succeeded:
            return n, outcome  # recorded as it ended (its worker, its times): nothing to add
        if outcome is None and row is not None and row.status == "aborted":
            return n + 1, None  # stopped with the execution (Ctrl-C), and recorded so: the next attempt runs
        if outcome is None and row is not None and row.inputs is not None:  # it ran in the engine that stopped
            self.records.node(self.execution_id, path, n, "task", label, "lost", prefix,
                              "the engine stopped while this attempt ran in its process")
            return n + 1, None
        waited = False
        while outcome is None and not self.aborted.is_set():
            alive, why = self._alive(prefix)
            if not alive:
                self.records.node(self.execution_id, path, n, "task", label, "lost", prefix,
                                  f"the engine stopped while this attempt ran, and it is gone: {why}")
                return n + 1, None
            if not waited:
                waited = True
                self.records.node(self.execution_id, path, n, "task", label, "running", prefix,
                                  detail=f"adopted after resume: still running ({why})")
                self._notify(path, label, "running", n, f"waiting for attempt {n + 1}, still running ({why})")
            self.aborted.wait(RECOVER_POLL)
            outcome = read_outcome(prefix, self.meta_options)
        ended = modified(join(prefix, OUTPUTS if outcome and outcome.succeeded else ERROR), self.meta_options, "metadata")
        if outcome is None:
            return n + 1, None
        if outcome.succeeded:
            self.records.node(self.execution_id, path, n, "task", label, "succeeded", prefix,
                              detail="adopted after resume", ended=ended)
            return n, outcome
        self.records.node(self.execution_id, path, n, "task", label, "failed", prefix,
                          outcome.error.message if outcome.error else None, ended=ended)
        return n + 1, None

    def _alive(self, prefix: str) -> tuple[bool, str]:
        """Whether an attempt with no outcome yet is still running, and why we think so."""
        now = time.time()
        beat = Heartbeat.read(prefix, self.meta_options)
        if beat is None:
            written = modified(join(prefix, INPUTS), self.meta_options, "metadata") or 0.0
            if now - written < UNSTARTED_GRACE:
                return True, "no heartbeat yet"
            return False, f"no heartbeat {now - written:.0f} s after its inputs were written"
        if beat.host == socket.gethostname() and not _pid_alive(beat.pid):
            return False, f"its process {beat.pid} on {beat.host} has exited"
        if now - beat.beat > LEASE:
            return False, f"its last heartbeat, from pid {beat.pid} on {beat.host}, is {now - beat.beat:.0f} s old"
        return True, f"pid {beat.pid} on {beat.host}"

    def run_task(self, path: str, task: tasks_pb2.TaskTemplate, inputs: LiteralMap,
                 node: workflow_pb2.Node) -> LiteralMap | DynamicJobSpec:
        label = task.id.name
        first = 0
        if self.resume:
            first, done = self._recover(path, label)
            if done is not None:
                self._notify(path, label, "succeeded", first)
                self._succeeded[path] = first
                return done.outputs if done.outputs is not None else done.futures  # type: ignore[return-value]

        def attempt(n: int) -> Outcome:
            fenced = self.fence() if self.fence is not None else None
            if fenced or self.aborted.is_set():
                return Outcome(error=ErrorInfo(f"execution aborted{': ' + fenced if fenced else ''}", code="Aborted",
                                               retryable=False))
            prefix = self.prefix(path, n)

            def started() -> None:  # the executor took it: resources free, a worker (or the cluster) has it
                self._notify(path, label, "running", n)
                self.records.node(self.execution_id, path, n, "task", label, "running", prefix)

            request, data = self._request(path, task, inputs, prefix, n, started)
            self._notify(path, label, "queued", n)
            self.records.node(self.execution_id, path, n, "task", label, "queued", prefix,
                              inputs=data if request.keep_outcome else None)
            outcome, kept = self._attempt(request, data)
            status = ("cached" if outcome.cached else "succeeded") if outcome.succeeded else \
                "aborted" if self.aborted.is_set() else "failed"  # (an abort ends attempts: killed, not failed)
            worker = outcome.worker + (f"; built {len(outcome.futures.nodes)} node(s)" if outcome.futures else "")
            self.records.node(self.execution_id, path, n, "task", label, status, prefix,
                              outcome.error.message if outcome.error else None, detail=worker or None, outputs=kept)
            if outcome.succeeded:
                self._notify(path, label, status, n)
            return outcome

        def on_failure(n: int, error: ErrorInfo, again: bool) -> None:
            self._notify(path, label, "retrying" if again else "failed", n, error.headline)

        n, outcome = run_with_retries(RetryPolicy.of(task, node), attempt, first=first, stop=self.aborted,
                                      on_failure=on_failure)
        if outcome.futures is not None:
            self._succeeded[path] = n
            return outcome.futures
        if outcome.outputs is None:
            raise failure(path, label, n, outcome.error or ErrorInfo("no outputs"))
        return outcome.outputs

    def dynamic_done(self, path: str, outputs: LiteralMap) -> None:
        """Write the dynamic task's outputs where its attempt wrote futures.pb, so a resume won't run it again."""
        prefix = self.prefix(path, self._succeeded.pop(path))
        write_bytes(join(prefix, OUTPUTS), serialize(outputs), self.meta_options, "metadata")

    def _notify(self, path: str, label: str, status: str, attempt: int, detail: str = "") -> None:
        if self.listener:
            self.listener(path, "task", label, status, detail or (f"attempt {attempt + 1}" if attempt else ""))

    def _dataset_inputs(self, inputs: LiteralMap) -> tuple[str, ...]:
        """Persistent-store objects among the inputs, from their URIs alone (for cache-aware placement)."""
        root = self.settings.persistent_url.rstrip("/") + "/"
        return tuple(sorted({uri for lit in inputs.literals.values() for uri in references(lit) if uri.startswith(root)}))

    def _request(self, path: str, task: tasks_pb2.TaskTemplate, inputs: LiteralMap, prefix: str, n: int,
                 started: Callable[[], None]) -> tuple[TaskRequest, bytes]:
        """The attempt's request and its serialized inputs. An attempt the executor runs in this process
        keeps small inputs and outputs in its node record (``keep_outcome``) instead of the metadata store."""
        memo_uri = cache_uri(self.settings, cache_key(task, inputs)) if task.metadata.discoverable else ""
        if flytekit_task(task):
            inputs = local_blob_paths(inputs)
        request = TaskRequest(
            task, join(prefix, INPUTS), prefix, raw_attempt_prefix(self.raw_output_prefix, self.execution_id, path, n),
            memo_uri, datasets=self._dataset_inputs(inputs) if getattr(self.executor, "placement", False) else (),
            inputs=inputs, on_start=started,
        )
        data = serialize(inputs)
        in_process = getattr(self.executor, "in_process", None)
        if in_process is not None and len(data) <= self.settings.meta_in_records_bytes and in_process(task):
            request = replace(request, keep_outcome=True)
        return request, data

    def _attempt(self, request: TaskRequest, data: bytes) -> tuple[Outcome, bytes | None]:
        """Write inputs.pb, have the executor run the task, read outputs.pb or error.pb. Returns the outcome,
        and the serialized outputs when the node record keeps them."""
        prefix, kept = request.output_prefix, None
        try:
            if not request.keep_outcome:
                write_bytes(request.inputs_uri, data, self.meta_options, "metadata")
            result = self.executor.run(request)
            outcome = result.outcome or read_outcome(prefix, self.meta_options)
            if request.keep_outcome and outcome is not None and outcome.outputs is not None:
                kept = serialize(outcome.outputs)
                if len(kept) > self.settings.meta_in_records_bytes:  # too big for a record: an object after all
                    write_bytes(join(prefix, OUTPUTS), kept, self.meta_options, "metadata")
                    kept = None
        except StorageError as exc:
            error = ErrorInfo(f"metadata store error: {exc}", type(exc).__name__, "system", exc.retryable)
            return Outcome(error=error), None
        except FerryError as exc:
            return Outcome(error=ErrorInfo(str(exc), type(exc).__name__, "user", retryable=False)), None
        worker = ", ".join(x for x in (result.worker, result.note) if x)
        if outcome is None and result.timed_out:
            return Outcome(error=ErrorInfo(
                f"the attempt was stopped at the task's timeout of {request.timeout:g} s", "Timeout", "system",
                retryable=True), worker=worker), None
        if outcome is None:
            return Outcome(error=ErrorInfo(
                f"the task process ended ({result.describe()}) without writing outputs.pb or error.pb"
                + (f": {result.detail}" if result.detail else ""), "NoOutcome", "system", retryable=True),
                worker=worker), None
        return replace(outcome, cached=result.status == Status.CACHED, worker=worker), kept
