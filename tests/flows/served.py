"""Workflows the server and console tests register and launch through ``ferry serve``."""

from __future__ import annotations

import datetime as dt
import enum
import os
import time
from pathlib import Path
from typing import Optional

import pandas as pd

from ferry import File, LaunchPlan, map_task, task, workflow


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


def _mark(name: str) -> int:
    """Append a line to $MARKS/name; how many lines it had before (how often this ran)."""
    folder = Path(os.environ["MARKS"])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    before = len(path.read_text().splitlines()) if path.exists() else 0
    with path.open("a") as fh:
        fh.write(f"{os.getpid()}\n")
    return before


def _wait_for(gate: str) -> None:
    path = Path(os.environ["MARKS"]) / gate
    while not path.exists():
        time.sleep(0.02)


@task
def describe(a: int, b: str, flag: bool, ratio: float, when: dt.datetime, tags: list[str], weights: dict[str, int],
             color: Color, note: Optional[int]) -> str:
    """Put every input in one line.

    :param a: How many times
    :param b: A greeting, any text
    :param flag: Shout or not
    :param ratio: A fraction
    :param when: When it happens
    :param tags: Labels
    :param weights: Weights by name
    :param color: A colour
    :param note: An optional number
    """
    print(f"describing {b!r} for {a} times")
    text = f"{b} x{a} flag={flag} ratio={ratio} when={when.isoformat()} tags={tags} weights={weights} " \
           f"color={color.value} note={note}"
    return text.upper() if flag else text


@task
def make(text: str, n: int) -> tuple[File, pd.DataFrame]:
    print(f"making {n} rows")
    Path("text.txt").write_text(text)
    return File("text.txt"), pd.DataFrame({"i": list(range(n)), "s": [str(i) for i in range(n)]})


@task
def measure(f: File, df: pd.DataFrame) -> str:
    with open(f) as fh:
        size = len(fh.read())
    return f"{size} chars, {len(df)} rows, sum {int(df['i'].sum())}"


@workflow
def everything(a: int, b: str, flag: bool = False, ratio: float = 0.5,
               when: dt.datetime = dt.datetime(2026, 1, 2, 3, 4, 5), tags: list[str] = ["x", "y"],  # noqa: B006
               weights: dict[str, int] = {"w": 1}, color: Color = Color.RED,  # noqa: B006
               note: Optional[int] = None) -> tuple[str, File, pd.DataFrame, str]:
    """Every kind of input the console's launch form offers, and Files and frames between tasks.

    :param a: How many times
    :param b: A greeting, any text
    :param flag: Shout or not
    :param ratio: A fraction
    :param when: When it happens
    :param tags: Labels
    :param weights: Weights by name
    :param color: A colour
    :param note: An optional number
    """
    line = describe(a=a, b=b, flag=flag, ratio=ratio, when=when, tags=tags, weights=weights, color=color, note=note)
    f, df = make(text=line, n=a)
    return line, f, df, measure(f=f, df=df)


@task
def read_file(f: File) -> int:
    with open(f, "rb") as fh:
        return len(fh.read())


@workflow
def file_size(f: File) -> int:
    return read_file(f=f)


@task
def once(tag: str) -> str:
    """Marks that it ran for ``tag``; waits for the gate file when one is named in $GATE."""
    _mark(tag)
    if os.environ.get("GATE"):
        _wait_for(os.environ["GATE"])
    return tag


@workflow
def tagged(tag: str) -> str:
    return once(tag=tag)


@task
def first(n: int) -> int:
    _mark("first")
    return n + 1


@task
def gated_step(n: int) -> int:
    _mark("gated_step")
    _wait_for("gate")
    return n * 10


@workflow
def two_steps(n: int = 1) -> int:
    return gated_step(n=first(n=n))


@task
def square(x: int) -> int:
    return x * x


@task
def total(xs: list[int]) -> int:
    return sum(xs)


@task
def count_to(n: int) -> list[int]:
    return list(range(n))


@workflow
def fanout(n: int = 10) -> int:
    return total(xs=map_task(square)(x=count_to(n=n)))


@task
def fail_loudly(x: int) -> int:
    print("about to fail")
    raise ValueError(f"cannot handle {x}")


@workflow
def failing(x: int = 1) -> int:
    return fail_loudly(x=x)


shouting = LaunchPlan(everything, "everything.shouting", default_inputs={"flag": True, "a": 2})
pinned = LaunchPlan(tagged, "tagged.pinned", fixed_inputs={"tag": "pinned"})


@task
def fails_the_first_time(n: int) -> int:
    if _mark("fails_the_first_time") == 0:
        raise RuntimeError("the first time, this fails")
    return n * 10


@workflow
def flaky(n: int = 1) -> int:
    return fails_the_first_time(n=first(n=n))
