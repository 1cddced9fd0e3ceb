"""The Dask executor: a real local cluster, per-worker caches, cache-aware placement, dead workers."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

import ferry
from ferry.config import active_settings
from ferry.engine.records import Records
from ferry.runtime.load import load_object
from ferry.storage import write_bytes

FLOWS = str(Path(__file__).parent / "flows" / "cluster.py")


def load(name: str) -> Any:
    return load_object(FLOWS, name, "workflow")


@pytest.fixture
def marks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MARKS", str(tmp_path / "marks"))
    (tmp_path / "marks").mkdir()
    return tmp_path / "marks"


def task_nodes(execution_id: str) -> list[Any]:
    return [n for n in Records(active_settings().database_url).nodes(execution_id) if n.kind == "task"]


def test_files_and_frames_on_a_local_dask_cluster() -> None:
    execution = ferry.run(load("files_and_frames"), {"n": 1500}, executor="dask")
    assert execution.status == "succeeded", execution.error
    assert execution.outputs == "1500 bytes, 500 rows"
    assert all(n.detail and n.detail.startswith("worker ") and "tcp://127.0.0.1:" in n.detail
               for n in task_nodes(execution.id))


@pytest.mark.parametrize("placement", [True, False], ids=["cache-aware", "anywhere"])
def test_each_worker_has_its_own_cache_and_placement_follows_it(placement: bool, ferry_home: Path) -> None:
    settings = active_settings()
    uri = f"{settings.persistent_url}/refs/genome.bin"
    write_bytes(uri, bytes(range(256)) * 4000)
    execution = ferry.run(load("read_reference"), {"ref": ferry.File(uri), "n": 6}, executor="dask",
                          executor_options={"placement": placement})
    assert execution.status == "succeeded", execution.error
    details = [n.detail or "" for n in task_nodes(execution.id) if "checksum" in n.label]
    misses = sum(int(d.split("hits, ")[1].split(" misses")[0]) for d in details if "misses" in d)
    workers = {d.split(",")[0] for d in details}
    caches = sorted(c.name for c in (ferry_home / "cache" / "dask-workers").iterdir())
    # one node-cache folder per worker that read the dataset, named by the worker's number, so the next
    # run's cluster finds it (named by address, each run's workers started empty and left theirs behind)
    assert caches in (["0"], ["1"], ["0", "1"])
    if placement:
        assert misses == 1 and len(workers) == 1  # every later read went where the data was
    else:
        assert 1 <= misses <= 2


def test_a_worker_killed_mid_task_is_retried(marks: Path) -> None:
    execution = ferry.run(load("survives_a_dead_worker"), {"x": 21}, executor="dask")
    assert execution.status == "succeeded", execution.error
    assert execution.outputs == 42
    assert (marks / "killed_once").exists()


def test_resource_requests_map_to_dask_resources() -> None:
    assert ferry.run(load("fits"), {"x": 1}, executor="dask").outputs == 2
    greedy = ferry.run(load("too_greedy"), {"x": 1}, executor="dask")
    assert greedy.status == "failed"
    assert "no Dask worker offers the resources {'CPU': 64.0}" in (greedy.error or "")


def test_existing_scheduler_by_address(tmp_path: Path) -> None:
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0", host="127.0.0.1") as cluster:
        execution = ferry.run(load("files_and_frames"), {"n": 10}, executor="dask",
                              executor_options={"address": cluster.scheduler_address})
    assert execution.status == "succeeded", execution.error
    assert execution.outputs == "10 bytes, 10 rows"


def test_a_script_starting_a_run_at_module_level_is_told_to_guard_it(tmp_path: Path) -> None:
    """Workers are spawned from ferry's cluster process, not from the script, so they start; the task's
    import of the script then meets the unguarded run, and the error says what to do."""
    import os
    import subprocess
    import sys

    script = tmp_path / "unguarded.py"
    script.write_text(
        "import ferry\n"
        "@ferry.task\n"
        "def one() -> int:\n"
        "    return 1\n"
        "@ferry.workflow\n"
        "def wf() -> int:\n"
        "    return one()\n"
        "e = ferry.run(wf, {}, executor='dask')\n"  # no `if __name__ == "__main__":` guard
        "if e.status != 'succeeded':\n"
        "    raise SystemExit('FAILED: ' + str(e.error))\n"
    )
    env = {**os.environ, "FERRY_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300,
                          cwd=tmp_path)
    assert done.returncode != 0
    assert "FAILED:" in done.stderr and "failed to start" not in done.stderr, done.stderr[-2000:]
    assert "started inside a task process" in done.stderr and 'Guard it with `if __name__ == "__main__":`' in done.stderr


def _attempts(count: int, name: str = "t") -> Any:
    from concurrent.futures import Future
    from types import SimpleNamespace

    return [(SimpleNamespace(task=SimpleNamespace(id=SimpleNamespace(name=name))), Future(), lambda: None)
            for _ in range(count)]


def test_a_batch_holds_about_a_tenth_of_a_second_of_a_tasks_work() -> None:
    from ferry.executors import dask

    batcher = object.__new__(dask._Batcher)  # only the sizing: no cluster needed
    batcher.threads, batcher.seconds = 2, {}
    waiting = _attempts(200)
    assert batcher._batch_size(waiting, 2) == 1  # never seen: one at a time until an attempt is back
    batcher.seconds["t"] = 0.001
    assert batcher._batch_size(waiting, 2) == dask.MAX_BATCH  # short attempts: as many as a batch holds
    assert batcher._batch_size(waiting[:10], 2) == 5  # what is waiting, shared among the free slots...
    assert batcher._batch_size(waiting[:10], 1) == 10  # ...all of it when only this one is free
    batcher.seconds["t"] = 0.02
    assert batcher._batch_size(waiting, 2) == 5  # 0.1 s of work
    batcher.seconds["t"] = 2.0
    assert batcher._batch_size(waiting, 2) == 1  # a long attempt goes alone, so an idle worker can take the next


class _Batch:  # a Dask future as the batcher uses one
    def __init__(self, size: int) -> None:
        self.size, self.callbacks = size, []

    def add_done_callback(self, callback: Any) -> None:
        self.callbacks.append(callback)

    def result(self) -> list[dict[str, float]]:
        return [{"seconds": 0.001}] * self.size


class _Client:  # records the batches submitted
    def __init__(self) -> None:
        self.batches: list[_Batch] = []

    def submit(self, fn: Any, requests: list[Any], pure: bool) -> _Batch:
        self.batches.append(_Batch(len(requests)))
        return self.batches[-1]


def _dispatcher(client: _Client, attempts: list[Any]) -> Any:
    """A batcher with 2 slots and a known task duration, its dispatcher run over ``attempts`` (all waiting
    before it looks) until it ends."""
    import queue
    import threading

    from ferry.executors import dask

    batcher = object.__new__(dask._Batcher)  # no cluster: the fake client
    batcher.client, batcher.threads, batcher.seconds, batcher.failed = client, 2, {"t": 0.001}, None
    batcher.futures, batcher.lock, batcher.queue = set(), threading.Lock(), queue.Queue()
    batcher.slots_total, batcher.slots, batcher.out = 2, threading.Semaphore(2), 0
    for item in attempts:
        batcher.queue.put(item)
    dispatcher = threading.Thread(target=batcher._dispatch)
    dispatcher.start()
    dispatcher.join(timeout=30)
    assert not dispatcher.is_alive()
    return batcher


def test_attempts_waiting_for_a_slot_leave_in_shares_of_the_free_slots() -> None:
    """Sizes of the Dask tasks sent, through the dispatcher itself (a fake client records them): once a
    slot is free, what waits is shared among the free slots, not halved again for each (which sent a map's
    attempts in ever smaller batches, each costing the engine a round trip)."""
    client = _Client()
    batcher = _dispatcher(client, [*_attempts(100), None])  # then it is asked to stop
    assert [b.size for b in client.batches] == [50, 50]  # both slots, each half: no batch waits for a slot
    assert batcher.out == 2
    for batch in client.batches:
        for callback in batch.callbacks:
            callback(batch)
    assert batcher.out == 0 and batcher.slots.acquire(blocking=False) and batcher.slots.acquire(blocking=False)


def test_when_the_dispatcher_fails_every_attempt_not_sent_gets_the_error_and_none_waits_forever() -> None:
    """The engine's ``started`` callback raising (a records write that failed, say) stopped the dispatcher's
    thread, and every attempt waiting for it waited forever."""
    def broken() -> None:
        raise OSError("the records could not be written")

    attempts = _attempts(10)
    attempts[0] = (attempts[0][0], attempts[0][1], broken)
    client = _Client()
    batcher = _dispatcher(client, attempts)
    (batch,) = client.batches  # the first batch left (its attempts run) before its callback raised
    assert batch.size == 5
    unsent = [waiter for _, waiter, _ in attempts[5:]]
    assert all(isinstance(w.exception(timeout=0), RuntimeError) for w in unsent)
    assert "stopped sending attempts: OSError: the records could not be written" in str(unsent[0].exception())
    for callback in batch.callbacks:
        callback(batch)
    assert all(waiter.result(timeout=0) == {"seconds": 0.001} for _, waiter, _ in attempts[:5])
    with pytest.raises(RuntimeError, match="stopped sending attempts"):  # and so does any attempt after
        batcher.call(attempts[0][0], lambda: None)


def test_a_batch_reports_how_long_each_task_ran_without_loading_its_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Python task's reply times its run alone (the worker loads its module once, and that first load made the
    batcher send the next attempts one at a time); any other attempt is timed whole."""
    from types import SimpleNamespace

    from ferry.executors import dask

    replies = iter([{"status": "SUCCEEDED", "seconds": 0.004}, {"status": "SUCCEEDED"}])
    clock = iter([10.0, 12.0, 20.0, 25.0])  # the batch's clock around each call: 2 s, then 5 s
    monkeypatch.setattr(dask, "run_on_worker", lambda request: next(replies))
    monkeypatch.setattr(dask, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    timed, whole = dask.run_batch([None, None])  # type: ignore[list-item]
    assert timed == {"status": "SUCCEEDED", "seconds": 0.004}  # its own run, not the 2 s of the whole call
    assert whole == {"status": "SUCCEEDED", "seconds": 5.0}


def test_the_executor_learns_how_long_a_tasks_attempts_take() -> None:
    from ferry.executors.dask import DaskExecutor

    executor = DaskExecutor(workers=1)
    try:
        execution = ferry.run(load("sum_of_indices"), {"n": 6}, executor=executor)
        assert execution.status == "succeeded", execution.error
        assert execution.outputs == 15
        assert set(executor._batcher.seconds) == {"cluster.indices", "cluster.total"}, executor._batcher.seconds
        assert all(0 < s < 60 for s in executor._batcher.seconds.values())
    finally:
        executor.close()


def test_the_local_cluster_ends_with_a_killed_engine(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    import psutil

    with subprocess.Popen(
        [sys.executable, "-c",
         "import os, sys, psutil\n"
         "from ferry.executors.dask import DaskExecutor\n"
         "executor = DaskExecutor(workers=2)\n"
         "workers = executor.client.run(os.getpid)\n"
         "children = psutil.Process().children()\n"  # the workers (forked, the same command line) are the cluster's
         "cluster = [p.pid for p in children if 'ferry.executors.dask_local' in ' '.join(p.cmdline())]\n"
         "print(*cluster, *workers.values(), flush=True)\n"
         "sys.stdin.read()\n"],  # waits until killed
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ, "FERRY_HOME": str(tmp_path)},
    ) as engine:
        assert engine.stdout is not None
        pids = [int(p) for p in engine.stdout.readline().split()]  # the barrier: the cluster is up
        assert len(pids) == 3 and all(psutil.pid_exists(p) for p in pids)  # the cluster's process, 2 workers
        assert all(pid not in {c.pid for c in psutil.Process(engine.pid).children()} for pid in pids[1:])
        engine.send_signal(signal.SIGKILL)
        engine.wait()

    def alive(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    deadline = time.monotonic() + 30
    while any(alive(p) for p in pids):
        assert time.monotonic() < deadline, f"outlived the engine: {[p for p in pids if alive(p)]}"
        time.sleep(0.05)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers are forked on Linux only; elsewhere spawned")
def test_the_first_workers_are_forked_with_one_blas_thread_and_a_restarted_one_is_spawned(tmp_path: Path) -> None:
    """Forked from the cluster's process (its command line), set up as a spawned worker would be; a worker
    the nanny restarts once the scheduler runs threads is spawned afresh (multiprocessing's command line)."""
    import os
    import signal
    import time

    import psutil

    from ferry.executors.dask import DaskExecutor

    executor = DaskExecutor(workers=2)
    try:
        assert executor.cluster is not None
        cluster = psutil.Process(executor.cluster.process.pid).cmdline()
        first = executor.client.run(os.getpid)
        assert all(psutil.Process(pid).cmdline() == cluster for pid in first.values())
        # the workers' numpy was loaded by the cluster's process (distributed imports it), so that process must
        # start with one BLAS thread (a nanny writes it into a worker's environment too late for a fork)
        if "OPENBLAS_NUM_THREADS" not in os.environ:
            assert psutil.Process(executor.cluster.process.pid).environ().get("OPENBLAS_NUM_THREADS") == "1"
        # (a lambda: ``os.environ.get`` itself would travel with the engine's environment)
        assert set(executor.client.run(lambda: os.environ.get("FERRY_IN_TASK")).values()) == {"1"}  # the run's own
        address, victim = next(iter(first.items()))
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while True:  # the barrier: the nanny has started a new worker (at a new address)
            workers = executor.client.scheduler_info()["workers"]
            if len(workers) == 2 and address not in workers:
                break
            assert time.monotonic() < deadline, f"no worker replaced {victim}: {list(workers)}"
            time.sleep(0.05)
        now = executor.client.run(os.getpid)
        (replaced,) = set(now.values()) - set(first.values())
        assert "multiprocessing.spawn" in " ".join(psutil.Process(replaced).cmdline())
        assert executor.client.submit(sum, [1, 2], workers=[next(a for a, p in now.items() if p == replaced)]).result() == 3
    finally:
        executor.close()
    assert executor.cluster.process.returncode == 0  # closed, and ended as it closes: its workers before it
    assert not any(psutil.pid_exists(pid) for pid in (*first.values(), *now.values()))


def test_without_distributed_the_executor_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util
    import subprocess

    from ferry.errors import ConfigError
    from ferry.executors import make_executor

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "distributed" else real(name, *a))
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: pytest.fail("a cluster process was started"))
    with pytest.raises(ConfigError, match=r"needs dask.distributed.*Install it with: pip install"):
        make_executor("dask", workers=1)
