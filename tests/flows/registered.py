"""Workflows the registry tests register and launch by name (tasks use pandas: the engine must not)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd

from ferry import File, LaunchPlan, map_task, task, workflow


def _mark(name: str) -> None:
    folder = Path(os.environ["MARKS"])
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / name).open("a") as fh:
        fh.write(f"{os.getpid()}\n")


@task
def make(n: int) -> tuple[File, pd.DataFrame]:
    _mark("make")
    Path("data.txt").write_text("line\n" * n)
    return File("data.txt"), pd.DataFrame({"v": list(range(n))})


@task
def summarize(f: File, df: pd.DataFrame) -> str:
    with open(f) as fh:
        lines = len(fh.readlines())
    return f"{lines} lines, sum {int(df['v'].sum())}"


@task
def wait_for_gate(summary: str) -> str:
    """Runs until the test opens the gate (a file), so the engine can be killed while it runs."""
    _mark("wait_for_gate")
    gate = Path(os.environ["MARKS"]) / "gate"
    while not gate.exists():
        time.sleep(0.02)
    return summary.upper()


@workflow
def files_and_frames(n: int = 3) -> str:
    f, df = make(n=n)
    return summarize(f=f, df=df)


@workflow
def gated(n: int = 3) -> str:
    f, df = make(n=n)
    return wait_for_gate(summary=summarize(f=f, df=df))


@task
def greet(name: str, times: int) -> str:
    return " ".join([f"hello {name}"] * times)


@task
def keep(text: str) -> File:
    Path("greeting.txt").write_text(text)
    return File("greeting.txt")


@workflow
def greeting(name: str, times: int = 1) -> File:
    return keep(text=greet(name=name, times=times))


loud = LaunchPlan(greeting, "greeting.loud", default_inputs={"times": 3})
pinned = LaunchPlan(greeting, "greeting.pinned", fixed_inputs={"name": "ferry"},
                    raw_output_prefix=os.environ.get("PINNED_RAW", "file:///nonexistent/pinned"))


@task
def double(x: int) -> int:
    return x * 2


@workflow
def doubled(xs: list[int]) -> list[int]:
    return map_task(double)(x=xs)
