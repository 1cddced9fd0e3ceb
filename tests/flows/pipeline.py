"""Workflows used by the engine tests; run in separate processes by the process executor."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd

from ferry import File, map_task, task, workflow


def _mark(name: str) -> int:
    """Append a line to $MARKS/name and return how many lines it had before (how often it ran)."""
    folder = Path(os.environ["MARKS"])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    before = len(path.read_text().splitlines()) if path.exists() else 0
    with path.open("a") as fh:
        fh.write(f"{os.getpid()}\n")
    return before


@task
def make_file(n: int) -> File:
    _mark("make_file")
    Path("data.txt").write_text("line\n" * n)
    return File("data.txt")


@task
def make_frame(n: int) -> pd.DataFrame:
    return pd.DataFrame({"v": list(range(n)), "s": [str(i) for i in range(n)]})


@task
def summarize(f: File, df: pd.DataFrame) -> str:
    with open(f) as fh:
        lines = len(fh.readlines())
    return f"{lines} lines, sum {int(df['v'].sum())}"


@workflow
def files_and_frames(n: int = 3) -> tuple[str, File]:
    f = make_file(n=n)
    return summarize(f=f, df=make_frame(n=n)), f


@task
def square(x: int) -> int:
    return x * x


@task
def total(xs: list[int]) -> int:
    return sum(xs)


@workflow
def map_reduce(xs: list[int]) -> int:
    return total(xs=map_task(square)(x=xs))


@task(retries=2)
def flaky(x: int) -> int:
    if _mark("flaky") < 2:
        raise RuntimeError("transient trouble")
    return x


@workflow
def retrying(x: int = 5) -> int:
    return flaky(x=x)


@task
def broken(x: int) -> int:
    raise ValueError(f"cannot handle {x}")


@workflow
def failing(x: int = 1) -> int:
    return broken(x=x)


@task
def dies(x: int) -> int:
    _mark("dies")
    os._exit(17)


@workflow
def dying(x: int = 1) -> int:
    return dies(x=x)


@task
def first(x: int) -> int:
    _mark("first")
    return x + 1


@task
def slow(x: int) -> int:
    _mark("slow")
    gate = Path(os.environ["MARKS"]) / "gate"
    while not gate.exists():
        time.sleep(0.05)
    return x * 10


@workflow
def two_steps(x: int = 1) -> int:
    return slow(x=first(x=x))


@task(cache=True, cache_version="1")
def expensive(x: int, f: File) -> int:
    _mark("expensive")
    with open(f) as fh:
        return x + len(fh.read())


@workflow
def cached(x: int = 1, n: int = 2) -> int:
    return expensive(x=x, f=make_file(n=n))


@task(cache=True, cache_version="1")
def expensive_file(x: int) -> File:
    _mark("expensive_file")
    Path("result.txt").write_text(str(x))
    return File("result.txt")


@workflow
def cached_file(x: int = 1) -> File:
    return expensive_file(x=x)


@task
def thread_of(x: int) -> int:
    import threading

    return threading.get_ident()


@workflow
def map_threads(xs: list[int]) -> list[int]:
    return map_task(thread_of)(x=xs)


@task
def make_list(n: int) -> list[int]:
    return list(range(n))


@workflow
def made_map(n: int) -> int:
    return total(xs=map_task(square)(x=make_list(n=n)))


@task(cache=True, cache_version="1")
def counted(xs: list[int]) -> int:
    _mark("counted")
    return len(xs)


@workflow
def count_list(xs: list[int]) -> int:
    return counted(xs=xs)
