"""Workflows the control-plane benchmarks run (imported by worker processes too)."""

from __future__ import annotations

import os
from typing import Any

import pandas as pd

from ferry import File, map_task, task, workflow

CHAIN = 100


@task
def inc(x: int) -> int:
    return x + 1


@workflow
def chain(x: int = 0) -> int:
    for _ in range(CHAIN):
        x = inc(x=x)
    return x


@task
def total(xs: list[int]) -> int:
    return sum(xs)


@workflow
def map_reduce(xs: list[int]) -> int:
    return total(xs=map_task(inc)(x=xs))


@task
def make_blob(mib: int) -> File:
    chunk = os.urandom(1 << 20)
    with open("blob.bin", "wb") as fh:
        for _ in range(mib):
            fh.write(chunk)
    return File("blob.bin")


@task
def blob_size(f: File) -> int:
    return os.path.getsize(f)


@workflow
def pass_blob(mib: int = 1) -> int:
    return blob_size(f=make_blob(mib=mib))


@task
def offload(path: str) -> File:
    """Return an existing local file: the runtime uploads it to the raw store."""
    return File(path)


@task
def fetch_size(f: File) -> int:
    return os.path.getsize(f.download())


@workflow
def move_file(path: str) -> int:
    return fetch_size(f=offload(path=path))


@task
def read_dataset(ref: File, i: int) -> int:
    with open(ref, "rb") as fh:
        fh.seek(i)
        return len(fh.read(1024))


@task
def four(n: int) -> list[int]:
    return list(range(n))


@workflow
def readers(ref: File, n: int = 4) -> list[int]:
    return map_task(read_dataset, concurrency=2, bound_inputs=("ref",))(ref=ref, i=four(n=n))


@workflow
def chain200(x: int = 0) -> int:
    for _ in range(200):
        x = inc(x=x)
    return x


@task
def make_frame(n: int) -> pd.DataFrame:
    return pd.DataFrame({"v": range(n)})


@task
def frame_total(df: pd.DataFrame) -> int:
    return int(df["v"].sum())


@workflow
def frames(n: int = 1000) -> int:
    return frame_total(df=make_frame(n=n))


@workflow
def map_python(xs: list[int]) -> list[int]:
    return map_task(inc)(x=xs)


def make_chain(n: int) -> Any:
    """A workflow of ``n`` inc tasks in a row (built on demand: its size is the benchmark's parameter)."""

    def body(x: int = 0) -> int:
        for _ in range(n):
            x = inc(x=x)
        return x

    body.__qualname__ = body.__name__ = f"chain_{n}"
    return workflow(body)
