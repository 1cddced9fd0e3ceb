"""A typical flytekit pipeline ported to ferry (docs/from-flyte.md has the side-by-side table).

Sensor readings are simulated one CSV file per day, summarized per day by a map task, gathered into a
data frame, and judged by a branch; a dynamic task loops over the files at run time.

    ferry run examples/from_flyte.py sensor_report --days 3 --threshold 0.5
    ferry register examples/from_flyte.py && ferry launch sensor_report.weekly
    python examples/from_flyte.py
"""

from __future__ import annotations

import csv
import random
from pathlib import Path
from typing import Annotated, NamedTuple

import pandas as pd

import ferry
from ferry import File, conditional, dynamic, map_task, task, workflow

Table = Annotated[pd.DataFrame, {"day": int, "n_readings": int, "mean": float}]


class DayStats(NamedTuple):
    n_readings: int
    mean: float


@task(cache=True, cache_version="1", retries=2, cpu="500m", memory="500Mi")
def simulate(days: int, seed: int = 7) -> list[File]:
    """Write one CSV of readings per day; the mean drifts upwards by 0.3 a day.

    :param days: How many days to simulate.
    :param seed: Seed of the random readings.
    """
    folder = ferry.current_context().working_directory
    files = []
    for day in range(days):
        rng = random.Random(seed + day)
        path = Path(folder) / f"day-{day}.csv"
        with open(path, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["sensor", "value"])
            for i in range(20 + 5 * day):
                writer.writerow([f"s{i % 4}", f"{rng.gauss(0.3 * day, 0.1):.4f}"])
        files.append(File(path))
    return files


def _values(readings: File) -> list[float]:
    with open(readings, newline="") as fh:
        return [float(row["value"]) for row in csv.DictReader(fh)]


@task(timeout=60)
def day_stats(readings: File) -> DayStats:
    values = _values(readings)
    return DayStats(len(values), sum(values) / len(values))


@task
def to_table(n_readings: list[int], means: list[float]) -> Table:
    return pd.DataFrame({"day": range(len(means)), "n_readings": n_readings, "mean": means})


@task
def drift(table: Table) -> float:
    return float(table["mean"].iloc[-1] - table["mean"].iloc[0])


@task
def alert(table: Table, amount: float) -> str:
    worst = int(table["mean"].idxmax())
    return f"drift of {amount:.2f}: check the sensors (day {worst} reads highest)"


@task
def all_clear(amount: float) -> str:
    return f"drift of {amount:.2f}: all clear"


@task
def count_outliers(readings: File, limit: float) -> int:
    return sum(abs(v) > limit for v in _values(readings))


@dynamic
def outliers(files: list[File], limit: float) -> list[int]:
    """A loop over values known only at run time: one node per file."""
    return [count_outliers(readings=f, limit=limit) for f in files]


@workflow
def sensor_report(days: int = 3, threshold: float = 0.5) -> tuple[str, Table, list[int]]:
    files = simulate(days=days)
    stats = map_task(day_stats, concurrency=4)(readings=files)
    table = to_table(n_readings=stats.n_readings, means=stats.mean)
    amount = drift(table=table)
    verdict = (
        conditional("drifting")
        .if_(amount > threshold).then(alert(table=table, amount=amount))
        .else_().then(all_clear(amount=amount))
    )
    return verdict, table, outliers(files=files, limit=0.5)


weekly = ferry.LaunchPlan(sensor_report, "sensor_report.weekly", default_inputs={"days": 7})


if __name__ == "__main__":
    execution = ferry.run(sensor_report, {"days": 3}, executor="process")
    verdict, table, counts = execution.outputs
    print(execution.id, execution.status)
    print(verdict)
    print(table.to_string(index=False))
    print("outliers per day:", counts)
