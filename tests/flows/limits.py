"""Workflows that test what every executor must honour: working folders, timeouts, resource requests."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ferry import map_task, task, workflow


@task
def write_and_read(sample: str) -> str:
    """Each attempt has a folder of its own: what it writes, it reads back, whatever runs beside it."""
    Path("result.txt").write_text(f"sample {sample}")
    time.sleep(0.01)  # gives other elements a chance to interleave, were they sharing a folder
    return Path("result.txt").read_text()


@workflow
def samples(names: list[str]) -> list[str]:
    return map_task(write_and_read, concurrency=6)(sample=names)


@task(timeout=1)
def hangs(x: int) -> int:
    folder = Path(os.environ["MARKS"])
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "hangs").open("a") as fh:
        fh.write(f"{os.getpid()}\n")
    deadline = time.monotonic() + 60  # a gate nobody opens: only the timeout ends this attempt
    while not (folder / "gate").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return x


@workflow
def hanging(x: int = 1) -> int:
    return hangs(x=x)


@task(cpu=1000)
def many_cpus(x: int) -> int:
    return x


@workflow
def too_many_cpus(x: int = 1) -> int:
    return many_cpus(x=x)


@task(gpu=1)
def needs_gpu(x: int) -> int:
    return x


@workflow
def gpu_job(x: int = 1) -> int:
    return needs_gpu(x=x)


@task(retries=2)
def flaky(x: int) -> int:
    folder = Path(os.environ["MARKS"])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "flaky"
    before = len(path.read_text().splitlines()) if path.exists() else 0
    with path.open("a") as fh:
        fh.write("x\n")
    if before < 2:
        raise RuntimeError("transient trouble")
    return x + before


@workflow
def retried(x: int = 1) -> int:
    return flaky(x=x)


@task
def environment(names: list[str]) -> dict[str, str]:
    """The task process's view of some environment variables ("" when unset or emptied)."""
    return {name: os.environ.get(name, "") for name in names}


@workflow
def show_environment(names: list[str]) -> dict[str, str]:
    return environment(names=names)


@task
def chatty(n: int) -> int:
    """Prints on both streams, from Python and from a child process."""
    import subprocess
    import sys

    print(f"hello from chatty {n}")
    print(f"a warning from chatty {n}", file=sys.stderr)
    subprocess.run(["echo", f"child process of chatty {n}"], check=True)
    if n < 0:
        raise ValueError(f"negative {n}")
    return n


@workflow
def chatter(xs: list[int]) -> list[int]:
    return map_task(chatty)(n=xs)


@task(cpu=os.cpu_count() or 1)
def whole_machine(x: int) -> int:
    """Asks for every CPU: two of these never run at the same time. Waits for the gate, notes when it ended."""
    folder = Path(os.environ["MARKS"])
    deadline = time.monotonic() + 60
    while not (folder / "gate").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    (folder / f"ended-{x}").write_text(str(time.time()))
    return x


@workflow
def two_whole_machines(x: int = 1, y: int = 2) -> list[int]:
    return [whole_machine(x=x), whole_machine(x=y)]
