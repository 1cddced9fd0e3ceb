"""The scheduler of the Dask executor's local cluster, in a process of its own.

Dask's LocalCluster runs its scheduler on the event loop of the process that starts it, beside the Dask
client: in ferry's engine that one thread held the GIL for 80% of the engine's samples on a map of small
tasks (py-spy). With the scheduler in its own process a map of 1,000 small tasks on a running 2-worker
cluster went from 752-766 to 753-875 tasks/s (alternated runs; benchmarks/cluster.py: 0.67x -> 0.79x of
the process executor); starting the cluster takes 0.9 s instead of 0.5 s. The workers stay as LocalCluster
starts them (nannies in the engine's process, each with a worker process).

The scheduler process exits when the engine does, even after ``kill -9``: it reads its standard input, a
pipe only the engine holds, and stops at its end.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

from distributed.deploy.spec import ProcessInterface

START_SECONDS = 60  # a scheduler process that has not said its address by then failed to start


class SchedulerProcess(ProcessInterface):
    """A SpecCluster scheduler spec: ``{"cls": SchedulerProcess, "options": {}}``."""

    def __init__(self, dashboard_address: str | None = ":0", **kwargs: Any) -> None:
        self.dashboard_address = dashboard_address
        self.process: asyncio.subprocess.Process | None = None
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]

    async def start(self) -> None:
        args = [sys.executable, "-m", "ferry.executors.dask_scheduler", self.dashboard_address or ""]
        self.process = await asyncio.create_subprocess_exec(*args, stdin=asyncio.subprocess.PIPE,
                                                            stdout=asyncio.subprocess.PIPE)
        assert self.process.stdout is not None
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), START_SECONDS)
        except asyncio.TimeoutError:
            line = b""
        if not line.startswith(b"tcp://"):
            await self.close()
            raise RuntimeError(f"The local Dask cluster's scheduler process did not start within {START_SECONDS} s "
                               "(its error, if it printed one, is above).")
        self.address = line.decode().strip()
        await super().start()  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.returncode is None:
            assert process.stdin is not None
            process.stdin.close()  # the scheduler's signal to stop
            try:
                await asyncio.wait_for(process.wait(), 10)
            except asyncio.TimeoutError:
                process.kill()
                await process.wait()
        await super().close()  # type: ignore[no-untyped-call]


async def _serve(dashboard_address: str | None) -> None:
    from distributed import Scheduler

    logging.getLogger("distributed").setLevel(logging.WARNING)
    async with Scheduler(host="127.0.0.1", port=0, dashboard=dashboard_address is not None,
                         dashboard_address=dashboard_address) as scheduler:
        print(scheduler.address, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.buffer.read)  # until the engine is gone


if __name__ == "__main__":
    asyncio.run(_serve(sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] else None))
