"""Dynamic workflows: bodies that loop over runtime values."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ferry import dynamic, map_task, task, workflow


def _mark(name: str) -> None:
    folder = Path(os.environ.get("MARKS", "/tmp/ferry-marks"))
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / name).open("a") as fh:
        fh.write(f"{os.getpid()}\n")


@task
def square(x: int) -> int:
    _mark(f"square-{x}")
    return x * x


@task
def total(xs: list[int]) -> int:
    return sum(xs)


@task
def label(x: int) -> str:
    return f"#{x}"


@dynamic
def squares_up_to(n: int) -> int:
    _mark("squares_up_to")
    return total(xs=[square(x=i) for i in range(n)])  # a loop over a value known only at run time


@workflow
def sum_of_squares(n: int = 4) -> int:
    return squares_up_to(n=n)


@dynamic
def mislabeled(n: int) -> int:
    return square(x=label(x=n))  # a str where an int is due: found when the graph is built


@workflow
def broken(n: int = 1) -> int:
    return mislabeled(n=n)


@task
def gated(x: int, after: int = 0) -> int:
    _mark(f"gated-{x}")
    gate = Path(os.environ["MARKS"]) / "gate"
    if x == 2:
        while not gate.exists():
            time.sleep(0.02)
    return x


@dynamic
def waits(n: int) -> list[int]:
    _mark("waits")
    out = []
    previous = None
    for i in range(n):  # a chain, so that the engine is killed while node 2 runs and after 0, 1 finished
        out.append(gated(x=i) if previous is None else gated(x=i, after=previous))
        previous = out[-1]
    return out


@workflow
def gated_dynamic(n: int = 3) -> list[int]:
    return waits(n=n)


@workflow
def mapped_dynamic(ns: list[int]) -> list[int]:
    return map_task(squares_up_to)(n=ns)
