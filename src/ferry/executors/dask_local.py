"""The Dask executor's local cluster, in a process of its own: the scheduler and the workers' nannies.

Dask's LocalCluster runs its scheduler and the nannies of its workers on the event loop of the process that
starts it, beside the Dask client: in ferry's engine that thread held the GIL for 80% of the engine's samples
on a map of small tasks (py-spy). Here the engine keeps only the client; the cluster is one child process
holding the scheduler and one nanny per worker, each nanny with its worker process (and restarting it if it
dies). A side effect: the workers are started from this process, not from the user's script, so a script that
starts a run at module level (no ``if __name__ == "__main__":``) no longer starts a cluster in each worker.

The cluster ends with the engine, even after ``kill -9``: this process watches its standard input, a pipe only
the engine holds, and closes the cluster at its end; a worker process exits when its nanny's process is gone.

On Linux the first workers are forked from this process, which has imported distributed and runs no other
thread yet: a cluster of 2 starts in 0.6-1.0 s on 2 cores, against 1.2-1.9 s with workers spawned (each a fresh
interpreter importing distributed beside the rest). A worker the nanny restarts later is spawned, since by then
the scheduler runs threads that a fork would copy mid-work. As forked workers inherit the libraries this process
loaded (numpy, which distributed imports), this process starts with the environment a nanny sets before it
spawns a worker (one BLAS thread, the memory-trim threshold), unless the engine's environment sets it already.
Once the cluster has closed, the process ends without tearing its interpreter down, so the engine waits 0.03 s
for it instead of 0.3 s.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import select
import subprocess
import sys
from typing import IO, Any, cast

START_SECONDS = 60  # a cluster that has not said its address by then failed to start
CLOSE_SECONDS = 10  # then it is killed
WORKER: dict[str, Any] = {"host": "127.0.0.1", "nthreads": 1, "resources": {"CPU": 1, "MEMORY": 2**31}, "dashboard": False}
# distributed's default ``distributed.nanny.pre-spawn-environ``: read when a process starts or loads numpy
PRE_SPAWN = {"MALLOC_TRIM_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


class LocalCluster:
    """``workers`` single-threaded workers (their environments updated with ``env``) and their scheduler, on
    127.0.0.1, in a child process, starting as this is made; ``address()`` waits for it to be up."""

    def __init__(self, workers: int, env: dict[str, str]) -> None:
        config = json.dumps({"workers": workers, "env": env})
        self.process = subprocess.Popen([sys.executable, "-m", "ferry.executors.dask_local", config],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={**PRE_SPAWN, **os.environ})
        self._address = ""

    def address(self) -> str:
        """The scheduler's address, once the cluster and all its workers are up."""
        if not self._address:
            out = cast(IO[bytes], self.process.stdout)
            ready, _, _ = select.select([out], [], [], START_SECONDS)
            line = out.readline() if ready else b""
            if not line.startswith(b"tcp://"):
                self.close()
                raise RuntimeError(f"The local Dask cluster failed to start within {START_SECONDS} s (exit code "
                                   f"{self.process.returncode}; its error, if it printed one, is above).")
            self._address = line.decode().strip()
        return self._address

    def close(self) -> None:
        process = self.process
        if process.poll() is None:
            cast(IO[bytes], process.stdin).close()  # the cluster's signal to stop
            try:
                process.wait(CLOSE_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        cast(IO[bytes], process.stdout).close()


async def _serve(config: dict[str, Any]) -> None:
    import dask
    from distributed import Nanny, Scheduler

    logging.getLogger("distributed").setLevel(logging.WARNING)
    async with Scheduler(host="127.0.0.1", port=0, dashboard=False) as scheduler:
        # named 0, 1, ... (as Dask's LocalCluster names them): a worker's node cache is a folder of that name,
        # which the next run's cluster finds again
        nannies = [Nanny(scheduler.address, name=i, env=config["env"], silence_logs=logging.WARNING, **WORKER)
                   for i in range(config["workers"])]
        try:
            first = "fork" if sys.platform.startswith("linux") else dask.config.get("distributed.worker.multiprocessing-method")
            with dask.config.set({"distributed.worker.multiprocessing-method": first}):
                await asyncio.gather(*nannies)
            print(scheduler.address, flush=True)
            sys.stdout = sys.stderr  # nobody reads the pipe any more
            await _end_of_input()  # until the engine is gone
        finally:
            await asyncio.gather(*(nanny.close() for nanny in nannies), return_exceptions=True)


async def _end_of_input() -> None:
    """Wait until standard input ends, on the event loop (no thread left blocked in a read at the end)."""
    loop, ended = asyncio.get_running_loop(), asyncio.Event()
    fd = sys.stdin.fileno()

    def readable() -> None:
        if not os.read(fd, 1 << 16):
            loop.remove_reader(fd)
            ended.set()

    loop.add_reader(fd, readable)
    await ended.wait()


def _end() -> None:
    """End this process once the cluster has closed: a worker still there is stopped, then the interpreter is
    left as it is. Tearing it down (distributed's and numpy's modules) took 0.15-0.2 s, which the engine, waiting
    for the cluster to end, spent idle at the end of every run."""
    import multiprocessing

    for worker in multiprocessing.active_children():  # none, once their nannies closed
        worker.terminate()
        worker.join()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    asyncio.run(_serve(json.loads(sys.argv[1])))
    _end()
