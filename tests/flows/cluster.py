"""Workflows for the Dask and S3 tests."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ferry import File, map_task, task, workflow


@task
def checksum(ref: File, i: int) -> int:
    with open(ref, "rb") as fh:
        return sum(fh.read()) % 1000 + i


@task
def total(xs: list[int]) -> int:
    return sum(xs)


@task
def indices(n: int) -> list[int]:
    return list(range(n))


@workflow
def sum_of_indices(n: int = 6) -> int:
    return total(xs=indices(n=n))


@workflow
def read_reference(ref: File, n: int = 4) -> int:
    return total(xs=map_task(checksum, concurrency=1, bound_inputs=("ref",))(ref=ref, i=indices(n=n)))


@task
def killed_once(x: int) -> int:
    marker = Path(os.environ["MARKS"]) / "killed_once"
    if not marker.exists():
        marker.write_text(str(os.getpid()))
        os._exit(1)  # the worker process dies mid-task
    return x * 2


@workflow
def survives_a_dead_worker(x: int = 21) -> int:
    return killed_once(x=x)


@task(cpu=64)
def greedy(x: int) -> int:
    return x


@workflow
def too_greedy(x: int = 1) -> int:
    return greedy(x=x)


@task(cpu=1, memory="100MiB")
def modest(x: int) -> int:
    return x + 1


@workflow
def fits(x: int = 1) -> int:
    return modest(x=x)


@task
def make(n: int) -> tuple[File, pd.DataFrame]:
    Path("data.bin").write_bytes(os.urandom(n))
    return File("data.bin"), pd.DataFrame({"v": range(n % 1000)})


@task
def consume(f: File, df: pd.DataFrame) -> str:
    return f"{os.path.getsize(f)} bytes, {len(df)} rows"


@workflow
def files_and_frames(n: int = 1000) -> str:
    f, df = make(n=n)
    return consume(f=f, df=df)
