"""Run task attempts on a Dask distributed cluster; each worker is a node with its own dataset cache.

Attempts are submitted carrying only URIs; workers read their own settings
(their environment or ferry.toml), so the engine never forwards raw or
persistent-store credentials. Placement knows the caches: an attempt whose
inputs (or whose task, last time) read a persistent dataset prefers the
workers that already hold it. ``@task(cpu=, memory=, gpu=)`` become Dask
worker resources.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from ferry.errors import ConfigError
from ferry.executors.base import TaskRequest, TaskResult
from ferry.executors.dask_local import LocalCluster

MAX_BATCH = 64  # attempts per Dask task at most
BATCH_SECONDS = 0.1  # ...and no more than this much work by the task's recent attempts (one long attempt goes alone)
BATCHES_PER_THREAD = 1  # Dask tasks of batched attempts in flight per worker thread
IN_FLIGHT_PER_THREAD = 64  # attempts submitted per worker thread at once (the rest wait in the engine)
MAX_QUEUED_PER_WORKER = 4  # a cache holder busier than this is passed over (another node fetches)
PLACEMENT_RECHECK_SECONDS = 10  # how often a placed, still-waiting attempt checks its worker is there


def run_on_worker(request: TaskRequest) -> dict[str, Any]:
    """What a Dask worker runs: the task runtime (or the task's command, in a child process), from URIs."""
    from distributed import get_worker

    from ferry.datasets import node_cache
    from ferry.executors.command import ChildProcesses
    from ferry.layout import Status
    from ferry.runtime.execute import run_task
    from ferry.runtime.load import load_task_or_report

    worker = get_worker()
    reply: dict[str, Any] = {"worker": worker.address, "name": worker.name, "datasets": []}
    reference = request.reference
    if reference is None or request.timeout:  # stoppable, or not Python: a child process of the worker
        result = ChildProcesses().run(request)
        return {**reply, "status": result.status.value if result.status else None, "detail": result.detail,
                "exit_code": result.exit_code, "timed_out": result.timed_out}
    task = load_task_or_report(reference, request.output_prefix)
    if task is None:
        return {**reply, "status": Status.NOT_LOADED.value}
    cache = node_cache()
    hits, misses = cache.session_hits, cache.session_misses
    report: dict[str, Any] = {}
    start = time.perf_counter()  # the attempt itself: not loading its module, which a worker does once
    status = run_task(task, request.inputs_uri, request.output_prefix, request.raw_output_prefix,
                      cache_uri=request.cache_uri, report=report)
    return {**reply, "status": status.value, "datasets": report.get("datasets", []),
            "cache_hits": cache.session_hits - hits, "cache_misses": cache.session_misses - misses,
            "seconds": time.perf_counter() - start}


def _cluster_errors() -> tuple[type[BaseException], ...]:
    """What Dask raises when the cluster, not the task, failed; anything else is a bug that fails the execution."""
    from asyncio import CancelledError

    from distributed import KilledWorker
    from distributed.comm.core import CommClosedError

    return KilledWorker, CommClosedError, CancelledError, OSError, TimeoutError


def worker_setup(cache_base: str | None, remove: list[str]) -> Any:
    """A Dask worker plugin for a local cluster: drop the engine's variables a task must not see, and give
    each worker (a node) its own node-cache folder."""
    from distributed import WorkerPlugin

    class LocalWorkerSetup(WorkerPlugin):
        def setup(self, worker: Any) -> None:
            from ferry.config import reset_settings

            for name in remove:
                os.environ.pop(name, None)
            if cache_base:
                os.environ["FERRY_CACHE_DIR"] = os.path.join(cache_base, str(worker.name))
            reset_settings()

    return LocalWorkerSetup()


def run_batch(requests: list[TaskRequest]) -> list[dict[str, Any]]:
    """Several attempts in one Dask task, one after another, each as ``run_on_worker`` runs it, with how long
    it ran (a Python task's run, without the loading of its module; any other attempt's whole call)."""
    replies = []
    for request in requests:
        start = time.perf_counter()
        reply = run_on_worker(request)
        replies.append({"seconds": time.perf_counter() - start, **reply})
    return replies


_Waiting = tuple[TaskRequest, Future[dict[str, Any]], Callable[[], None]]  # an attempt, its reply, its start


def _stopped(cause: BaseException) -> RuntimeError:
    error = RuntimeError(f"the Dask executor stopped sending attempts: {type(cause).__name__}: {cause}")
    error.__cause__ = cause
    return error


class _Batcher:
    """Sends the attempts that are waiting together as few Dask tasks: the scheduler's cost is per Dask task
    (a round trip costs ~10 ms on a busy machine; running a small attempt, under 1 ms), so a map of small
    tasks goes as fast as the workers run them. Attempts wait no longer than it takes to drain the queue.
    When a slot frees, everything waiting is shared among the free slots (all of it, if this is the only one);
    sharing it among every worker thread instead, slot after slot, sent a map's attempts in ever smaller
    batches (30, 15, 8, 4, 2, 1: 13 attempts per Dask task on average, and 0.74x the process executor).

    A batch holds about BATCH_SECONDS of work, judged by how long each task's attempts took lately (a task
    not seen yet goes one attempt at a time until one is back): a Dask task can't be split once sent, so
    batching long attempts would only keep them from idle workers."""

    def __init__(self, client: Any, threads: int, futures: set[Any], lock: threading.Lock) -> None:
        self.client = client
        self.threads = threads
        self.futures, self.lock = futures, lock  # the executor's, so cancel_all reaches batches too
        self.queue: queue.Queue[_Waiting | None] = queue.Queue()
        # Dask tasks in flight: enough to keep every worker thread busy while results travel back; while
        # they are all out, waiting attempts pile up and leave together in the next, bigger batch.
        self.slots_total = BATCHES_PER_THREAD * threads
        self.slots = threading.Semaphore(self.slots_total)
        self.out = 0  # Dask tasks in flight
        self.seconds: dict[str, float] = {}  # task name -> a moving average of its attempts' run time on a worker
        self.failed: BaseException | None = None  # why the dispatcher stopped, if it failed
        self.thread = threading.Thread(target=self._dispatch, name="ferry-dask-batches", daemon=True)
        self.thread.start()

    def call(self, request: TaskRequest, started: Callable[[], None]) -> dict[str, Any]:
        """The worker's reply for ``request``; ``started`` is called when its batch leaves for the cluster."""
        waiter: Future[dict[str, Any]] = Future()
        with self.lock:  # (a dispatcher that failed takes nothing more)
            if self.failed is not None:
                raise _stopped(self.failed)
            self.queue.put((request, waiter, started))
        return waiter.result()

    def stop(self) -> None:
        self.queue.put(None)
        self.thread.join(timeout=10)

    def _dispatch(self) -> None:
        """Sends what waits, as slots free; if that fails (the engine's ``started`` callback, or a bug), every
        attempt not yet sent gets the error, and so does every later one: none waits for a reply forever."""
        pending: list[_Waiting] = []  # taken from the queue, not sent yet
        try:
            self._send_all(pending)
        except BaseException as exc:  # noqa: BLE001 - handed to the attempts, which fail with it
            with self.lock:
                self.failed = exc
                while True:
                    try:
                        item = self.queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is not None:
                        pending.append(item)
            for _, waiter, _ in pending:
                if not waiter.done():
                    waiter.set_exception(_stopped(exc))

    def _send_all(self, pending: list[_Waiting]) -> None:
        stopping = False
        while pending or not stopping:
            if not pending:
                item = self.queue.get()
                if item is None:
                    return
                pending.append(item)
            self.slots.acquire()
            while not stopping:  # everything waiting by the time a slot is free
                try:
                    more = self.queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                else:
                    pending.append(more)
            with self.lock:
                free = self.slots_total - self.out
            size = self._batch_size(pending, free)  # after the wait: replies since may have taught a task's duration
            part = pending[:size]
            del pending[:size]
            self._send(part)

    def _batch_size(self, waiting: list[_Waiting], free: int) -> int:
        """Attempts for the next Dask task: what is waiting, shared among the ``free`` slots (this one
        included), and about BATCH_SECONDS of work."""
        even = -(-len(waiting) // max(1, free))
        longest = 0.0
        for request, _, _ in waiting[:even]:
            seconds = self.seconds.get(request.task.id.name)
            if seconds is None:
                return 1
            longest = max(longest, seconds)
        return max(1, min(even, MAX_BATCH, int(BATCH_SECONDS / max(longest, 1e-6))))

    def _send(self, part: list[_Waiting]) -> None:
        """One Dask task for ``part`` (a slot is held for it)."""
        try:
            future = self.client.submit(run_batch, [request for request, _, _ in part], pure=False)
        except Exception as exc:  # noqa: BLE001 - the client is gone: every waiter learns why
            self.slots.release()
            for _, waiter, _ in part:
                waiter.set_exception(exc)
            return
        with self.lock:
            self.futures.add(future)
            self.out += 1
        future.add_done_callback(lambda done, part=part: self._settle(done, part))
        for _, _, started in part:  # (after the above: if one raises, the batch's replies still reach it)
            started()

    def _settle(self, done: Any, part: list[_Waiting]) -> None:
        with self.lock:
            self.futures.discard(done)
            self.out -= 1
        self.slots.release()
        try:
            replies = done.result()
        except BaseException as exc:  # noqa: BLE001 - a lost worker, a cancel: every attempt of the batch
            for _, waiter, _ in part:
                waiter.set_exception(exc)
            return
        for (request, waiter, _), reply in zip(part, replies, strict=True):
            name = request.task.id.name
            with self.lock:
                before = self.seconds.get(name)
                self.seconds[name] = reply["seconds"] if before is None else 0.8 * before + 0.2 * reply["seconds"]
            waiter.set_result(reply)


class DaskExecutor:
    name = "dask"

    def __init__(self, address: str | None = None, workers: int = 2, cache_base: str | None = None,
                 env: dict[str, str | None] | None = None, placement: bool = True) -> None:
        import importlib.util

        from ferry.errors import install_line

        if importlib.util.find_spec("distributed") is None:  # before a cluster process is started
            raise ConfigError(f"The dask executor needs dask.distributed, which is not installed. "
                              f"Install it with: {install_line('dask')}.")
        self.placement = placement
        self.cluster: LocalCluster | None = None
        if address:
            from distributed import Client

            self.client = Client(address, set_as_default=False)
        else:
            # Each worker process (and any the nanny restarts) starts from this environment with
            # ``env`` applied (its own settings); the plugin removes what ``env`` says to remove.
            changes = {**(env or {}), "FERRY_IN_TASK": "1"}
            self.cluster = LocalCluster(workers, {k: v for k, v in changes.items() if v is not None})
            try:
                from distributed import Client  # imported while the cluster starts

                self.client = Client(self.cluster.address(), set_as_default=False)
                removed = sorted(k for k, v in changes.items() if v is None)
                self.client.register_plugin(worker_setup(cache_base, removed), name="ferry-local-worker")
            except BaseException:
                self.cluster.close()
                raise
        self._lock = threading.Lock()
        # Attempts in flight that keep every worker thread busy while results travel back (Dask queues
        # them on the workers): a map's elements run this many at a time unless it says otherwise.
        threads = max(1, sum(self.client.nthreads().values()))
        self.parallelism = IN_FLIGHT_PER_THREAD * threads
        self.locations: dict[str, set[Any]] = {}  # dataset URI -> names of workers whose cache holds it
        self.task_datasets: dict[str, set[str]] = {}  # task reference -> datasets it read last time
        self._futures: set[Any] = set()
        self._batcher = _Batcher(self.client, threads, self._futures, self._lock)
        self.inflight: dict[Any, int] = {}  # attempts this executor placed on each worker, not yet done

    def _preferred(self, request: TaskRequest) -> list[Any]:
        """The worker (by name) whose cache holds (or is filling) the most of this attempt's datasets.

        A dataset nobody holds yet is claimed for the least busy worker, so that tasks started
        together don't each download it; a holder with a long queue is passed over.
        """
        with self._lock:
            wanted = set(request.datasets) | self.task_datasets.get(request.task.id.name, set())
        if not wanted:
            return []
        alive = [info["name"] for info in self.client.scheduler_info()["workers"].values()]
        with self._lock:
            ranked: dict[Any, int] = {}
            for uri in wanted:
                for worker in self.locations.get(uri, ()):
                    if worker in alive and self.inflight.get(worker, 0) < MAX_QUEUED_PER_WORKER:
                        ranked[worker] = ranked.get(worker, 0) + 1
            if not ranked:
                if not alive:
                    return []
                worker = min(sorted(alive, key=str), key=lambda w: self.inflight.get(w, 0))
                for uri in wanted:
                    self.locations.setdefault(uri, set()).add(worker)
                ranked[worker] = 1
            best = max(ranked, key=lambda w: (ranked[w], -self.inflight.get(w, 0)))
            self.inflight[best] = self.inflight.get(best, 0) + 1
            return [best]

    def _check_resources(self, task: str, resources: dict[str, float]) -> None:
        offered: dict[str, float] = {}
        for info in self.client.scheduler_info()["workers"].values():
            for name, amount in (info.get("resources") or {}).items():
                offered[name] = max(offered.get(name, 0), amount)
        missing = {k: v for k, v in resources.items() if offered.get(k, 0) < v}
        if missing:
            raise ConfigError(
                f"Task {task}: no Dask worker offers the resources {missing} (workers offer at most {offered or 'none'}). "
                "Start workers with e.g. `dask worker ... --resources 'CPU=4,MEMORY=16e9,GPU=1'`, or lower the request."
            )

    def run(self, request: TaskRequest) -> TaskResult:
        from ferry.layout import Status

        resources = request.resources
        if resources:
            self._check_resources(request.task.id.name, resources)
        preferred = self._preferred(request) if self.placement else []
        # By worker name, which survives a nanny restart; strict, or the scheduler would spread tasks
        # started together over every worker, and each would download the dataset.
        placement: dict[str, Any] = {"workers": preferred, "allow_other_workers": False} if preferred else {}
        started = request.started
        # workers read inputs.pb: don't ship the literals twice (nor the engine's callback)
        request = dataclasses.replace(request, inputs=None, on_start=None)
        try:
            if not preferred and not resources:  # the common case: batched with the attempts waiting beside it
                reply = self._batcher.call(request, started)
            else:
                future = self.client.submit(run_on_worker, request, key=f"ferry-{request.output_prefix}",
                                            pure=False, resources=resources or None, **placement)
                started()  # handed to the scheduler; it may still wait there for its worker or resources
                reply = self._wait(future, preferred, request, resources)
        except _cluster_errors() as exc:  # a worker died for good, or the connection broke: retried
            return TaskResult(None, f"the Dask cluster lost the attempt: {type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                for worker in preferred:
                    self.inflight[worker] -= 1
        worker = reply["worker"]
        with self._lock:
            for uri in reply.get("datasets", []):
                self.locations.setdefault(uri, set()).add(reply.get("name", worker))
            if reply.get("datasets"):
                self.task_datasets[request.task.id.name] = set(reply["datasets"])
        note = ""
        if reply.get("cache_hits") or reply.get("cache_misses"):
            note = f"node cache: {reply.get('cache_hits', 0)} hits, {reply.get('cache_misses', 0)} misses"
        return TaskResult(Status(reply["status"]) if reply.get("status") else None, reply.get("detail", ""),
                          worker=f"worker {reply.get('name', '?')} {worker}", note=note,
                          exit_code=reply.get("exit_code"), timed_out=bool(reply.get("timed_out")))

    def _wait(self, future: Any, preferred: list[Any], request: TaskRequest, resources: dict[str, float]) -> Any:
        """The reply; an attempt held for a worker that has left for good is resubmitted anywhere."""
        from distributed import TimeoutError as DaskTimeout

        with self._lock:
            self._futures.add(future)
        try:
            while True:
                try:
                    return future.result(timeout=PLACEMENT_RECHECK_SECONDS)
                except (DaskTimeout, TimeoutError):
                    if not preferred or future.status != "pending":
                        continue
                    alive = [info["name"] for info in self.client.scheduler_info()["workers"].values()]
                    if preferred[0] in alive:
                        continue
                    future.cancel()
                    with self._lock:
                        self._futures.discard(future)
                        future = self.client.submit(run_on_worker, request, pure=False, resources=resources or None)
                        self._futures.add(future)
                    preferred = []
        finally:
            with self._lock:
                self._futures.discard(future)

    def cancel_all(self) -> None:
        with self._lock:
            futures = list(self._futures)
        if futures:
            self.client.cancel(futures, force=True)

    def close(self) -> None:
        self._batcher.stop()
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()
