"""The workflow the cluster demo runs: a dataset read on every node, files and frames between tasks."""

from __future__ import annotations

import os

import pandas as pd

from ferry import File, map_task, task, workflow


@task
def indices(n: int) -> list[int]:
    return list(range(n))


@task
def score(reference: File, i: int) -> pd.DataFrame:
    """Each task reads the shared reference through its node's cache."""
    with open(reference, "rb") as fh:
        data = fh.read()
    return pd.DataFrame({"chunk": [i], "bytes": [len(data)], "checksum": [sum(data[i::97]) % 9973]})


@task
def report(parts: list[pd.DataFrame]) -> File:
    table = pd.concat(parts, ignore_index=True)
    table.to_csv("report.csv", index=False)
    return File("report.csv")


@workflow
def pipeline(reference: File, n: int = 6) -> File:
    parts = map_task(score, concurrency=4, bound_inputs=("reference",))(reference=reference, i=indices(n=n))
    return report(parts=parts)


if __name__ == "__main__":
    print(os.environ.get("FERRY_METADATA_URL"))
