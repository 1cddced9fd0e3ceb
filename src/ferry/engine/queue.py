"""The server's queue: executions launched through a server wait "queued" until one server claims and runs them.

A claim is a compare-and-swap UPDATE of the execution's row (``Records.claim``): of two servers on one
database that saw the same queued execution, exactly one changes the row, and only it runs the
execution. The owner holds a lease that it renews while the execution runs. An execution whose owner
is gone (its process has exited, on this host, or its lease ran out) is claimed again and resumed:
``run_claimed`` does not run again the nodes that finished. Abort requests travel through the row too,
so any server can abort an execution that another one runs.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

from ferry.engine.attempts import _pid_alive
from ferry.engine.execution import Control, run_claimed
from ferry.engine.graph import DEFAULT_PARALLEL
from ferry.engine.records import ExecutionRecord, Records

if TYPE_CHECKING:
    from ferry.config import Settings

LEASE = 30.0  # seconds an owner's claim lasts without renewal
POLL = 0.5  # seconds between looks at the queue when nothing wakes the loop
log = logging.getLogger("ferry.server")


def new_owner() -> str:
    """This server's name in the records: host, process id, and a token that tells apart two runs of one pid."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_gone(record: ExecutionRecord, now: float) -> str | None:
    """Why the server that owns a running execution is known to be gone, or None while it may still run it."""
    if record.lease_until is not None and record.lease_until < now:
        return f"the lease of {record.owner} ran out {now - record.lease_until:.0f} s ago"
    host, _, rest = (record.owner or "").partition(":")
    pid = rest.partition(":")[0]
    if host == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid)):
        return f"its server {record.owner} has exited"
    return None


class EngineLoop:
    """Claims executions from the queue and runs at most ``max_running`` of them at once, each on its own thread."""

    def __init__(self, settings: "Settings", *, executor: str = "process", executor_options: dict[str, Any] | None = None,
                 max_running: int = 4, max_parallel: int = DEFAULT_PARALLEL, lease: float = LEASE,
                 poll: float = POLL) -> None:
        self.settings = settings
        self.executor = executor
        self.executor_options = executor_options or {}
        self.max_running = max(1, max_running)
        self.max_parallel = max_parallel
        self.lease = lease
        self.poll = poll
        self.owner = new_owner()
        self.records = Records(settings.database_url)
        self.running: dict[str, Control] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for target, name in ((self._dispatch, "ferry-queue"), (self._renew, "ferry-lease")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def wake(self) -> None:
        """Look at the queue now (an execution was just queued here)."""
        self._wake.set()

    def stop(self) -> None:
        """Stop claiming, and hand the executions still running to the next server: their leases end now.

        Their attempts are not stopped: a task process that outlives this server is adopted by the server
        that resumes the execution (it waits for the attempt instead of running it again)."""
        self._stopping.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=5)
        with self._lock:
            held = list(self.running)
        self.records.renew(self.owner, held, 0.0)
        self.records.close()

    def _dispatch(self) -> None:
        while not self._stopping.is_set():
            try:
                self._claim()
            except Exception:  # noqa: BLE001 - a database hiccup must not end the loop; it is retried
                log.exception("ferry server: looking at the queue failed; trying again")
            self._wake.wait(self.poll)
            self._wake.clear()

    def _claim(self) -> None:
        with self._lock:
            free = self.max_running - len(self.running)
        if free <= 0:
            return
        now = time.time()
        for record in self.records.claimable():
            if free <= 0 or self._stopping.is_set():
                return
            if record.status == "running":
                with self._lock:
                    if record.id in self.running:
                        continue
                why = owner_gone(record, now)
                if why is None:
                    continue
                log.warning("ferry server: taking over execution %s (%s); resuming it", record.id, why)
            lease_until = time.time() + self.lease
            if self.records.claim(record, self.owner, lease_until):
                control = Control(self.owner, lease_until)
                with self._lock:
                    self.running[record.id] = control
                threading.Thread(target=self._run, args=(record.id, control), name=f"ferry-run-{record.id}",
                                 daemon=True).start()
                free -= 1

    def _run(self, execution_id: str, control: Control) -> None:
        try:
            result = run_claimed(execution_id, settings=self.settings, executor=self.executor,
                                 executor_options=dict(self.executor_options), max_parallel=self.max_parallel,
                                 control=control)
            log.info("ferry server: execution %s %s", execution_id, result.status)
        except Exception as exc:  # noqa: BLE001 - e.g. its closure is unreadable: the execution fails, visibly
            log.exception("ferry server: execution %s could not run", execution_id)
            self.records.finish_execution(execution_id, "failed", error=f"the server could not run it: {exc}")
        finally:
            with self._lock:
                self.running.pop(execution_id, None)
            self._wake.set()

    def _renew(self) -> None:
        while not self._stopping.wait(self.lease / 6):
            with self._lock:
                controls = dict(self.running)
            lease_until = time.time() + self.lease
            try:
                held = self.records.renew(self.owner, list(controls), lease_until)
            except Exception:  # noqa: BLE001 - retried at the next beat, well within the lease
                log.exception("ferry server: renewing leases failed; trying again")
                continue
            for execution_id, control in controls.items():
                if execution_id not in held:
                    if execution_id in self.running:  # not finished meanwhile: another server took it
                        control.hand_over(f"the server {self.owner} lost its lease on the execution")
                else:
                    control.lease_until = lease_until
                    if held[execution_id] is not None:
                        control.abort("aborted through the server")

    def abort_now(self, execution_id: str) -> None:
        """Abort an execution this server runs without waiting for the next lease beat."""
        with self._lock:
            control = self.running.get(execution_id)
        if control is not None:
            control.abort("aborted through the server")
