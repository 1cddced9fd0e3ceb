"""The control-plane workflows in flytekit's local execution; flytekit_env.py runs it in flytekit's own venv.

``python flytekit_side.py MAP_SIZE`` prints one JSON line: the per-task seconds of a chain of 100 and of a map over
MAP_SIZE, best of 3. flytekit keeps an LRU cache of value -> Literal (``TypeEngine._LITERAL_CACHE``, 128 entries,
flytekit 1.16); it is emptied before each timed repeat, or the later repeats would get the earlier repeats' literals
back for free and flatter the baseline. The output says how many entries were cleared (in flytekit 1.16.31 local
workflows convert through ``async_to_literal``, which bypasses the cache: 0).
"""

import json
import sys
import time

from flytekit import map_task, task, workflow
from flytekit.core.type_engine import TypeEngine

CHAIN = 100


@task
def inc(x: int) -> int:
    return x + 1


@workflow
def chain(x: int) -> int:
    for _ in range(CHAIN):
        x = inc(x=x)
    return x


@task
def total(xs: list[int]) -> int:
    return sum(xs)


@workflow
def mapped(xs: list[int]) -> int:
    return total(xs=map_task(inc)(x=xs))


cleared = 0  # the most literal-cache entries found before a timed repeat


def best(fn, repeat=3):
    global cleared
    times = []
    for _ in range(repeat):
        cache = TypeEngine._LITERAL_CACHE  # AttributeError if a flytekit version moved it: update this file then
        cleared = max(cleared, len(cache))
        cache.clear()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    size = int(sys.argv[1])
    xs = list(range(size))
    assert chain(x=0) == CHAIN and mapped(xs=xs) == sum(xs) + size  # warm up, and check
    chain_s = best(lambda: chain(x=0))
    map_s = best(lambda: mapped(xs=xs))
    print(json.dumps({"chain_per_task": chain_s / CHAIN, "map_per_task": map_s / size, "literal_cache_cleared": cleared}))


if __name__ == "__main__":
    main()
