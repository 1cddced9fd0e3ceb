"""Workflows the control-plane benchmarks run (imported by worker processes too)."""

from __future__ import annotations

import os

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
