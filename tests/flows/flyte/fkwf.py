"""A Flyte project (flytekit, not ferry): packaged with `pyflyte --pkgs fkwf package` and run on ferry's engine."""

import os
from dataclasses import dataclass
from typing import List

from flytekit import task, workflow
from flytekit.types.file import FlyteFile


@dataclass
class Stats:
    count: int
    name: str


@task
def make(n: int) -> FlyteFile:
    with open("out.txt", "w") as fh:
        fh.write("x\n" * n)
    return FlyteFile("out.txt")


@task
def count(f: FlyteFile, n: int) -> Stats:
    with open(f) as fh:
        return Stats(count=len(fh.readlines()) + n, name=os.path.basename(f.path))


@workflow
def wf(n: int = 3) -> Stats:
    return count(f=make(n=n), n=n)


@task
def boom(n: int) -> int:
    if n > 0:
        raise ValueError(f"boom {n}")
    return n


@workflow
def failing(n: int = 1) -> int:
    return boom(n=n)


@task
def describe(s: Stats, f: FlyteFile) -> str:
    with open(f) as fh:
        return f"{s.name} has {s.count}, the file says {fh.read().strip()}"


@workflow
def describe_wf(s: Stats, f: FlyteFile) -> str:
    return describe(s=s, f=f)


@task
def total(xs: List[int]) -> int:
    return sum(xs)


@workflow
def total_wf(xs: List[int]) -> int:
    return total(xs=xs)
