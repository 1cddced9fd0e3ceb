"""A training-style pipeline: a data frame of features in, a model file and metrics out.

`train` is memoized (cache=True): run it twice and the second run reuses the model.

    ferry run examples/training.py training --rows 5000
    ferry run examples/training.py training --rows 5000     # `train` shows as cached
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ferry import File, task, workflow


@dataclass
class Metrics:
    rows: int
    mse: float
    weights: list[float]


@task
def make_features(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 3))
    y = x @ np.array([1.5, -2.0, 0.5]) + rng.normal(scale=0.1, size=rows)
    return pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "y": y})


@task(cache=True, cache_version="1")
def train(features: pd.DataFrame) -> tuple[File, Metrics]:
    """Least squares; the model is saved as .npy and offloaded, the metrics travel inline."""
    x = features[["x1", "x2", "x3"]].to_numpy()
    y = features["y"].to_numpy()
    w, *_ = np.linalg.lstsq(x, y, rcond=None)
    np.save("model.npy", w)
    mse = float(np.mean((x @ w - y) ** 2))
    return File("model.npy"), Metrics(len(features), mse, [float(v) for v in w])


@workflow
def training(rows: int = 1000) -> tuple[File, Metrics]:
    return train(features=make_features(rows=rows))


if __name__ == "__main__":
    model, metrics = training(rows=2000)
    print(metrics)
