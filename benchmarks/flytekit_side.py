"""The same chain and map workflows in flytekit's local execution, run in flytekit's own venv."""

import json
import time

start = time.perf_counter()
from flytekit import map_task, task, workflow  # noqa: E402

import_seconds = time.perf_counter() - start


@task
def inc(x: int) -> int:
    return x + 1


@workflow
def chain(x: int) -> int:
    for _ in range(100):
        x = inc(x=x)
    return x


@task
def total(xs: list[int]) -> int:
    return sum(xs)


@workflow
def mapped(xs: list[int]) -> int:
    return total(xs=map_task(inc)(x=xs))


def best(fn, repeat=3):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


assert chain(x=0) == 100
chain_s = best(lambda: chain(x=0))
map_s = best(lambda: mapped(xs=list(range(1000))))
print(json.dumps({"import": import_seconds, "chain_per_task": chain_s / 100, "map_per_task": map_s / 1000}))
