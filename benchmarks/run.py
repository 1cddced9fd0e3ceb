"""Run every benchmark: ``python benchmarks/run.py [--quick] [data_plane|control_plane ...]``.

Each prints a table of ferry's numbers against baselines measured in the same run, with
ratios and the issue's targets (machines here are noisy: read the ratios).
"""

from __future__ import annotations

import importlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

SUITES = ["data_plane", "control_plane", "datasets", "cluster"]


def main() -> None:
    quick = "--quick" in sys.argv
    chosen = [a for a in sys.argv[1:] if not a.startswith("--")] or SUITES
    for name in chosen:
        print(f"== {name}{' (quick)' if quick else ''}", flush=True)
        table = importlib.import_module(name).main(quick)
        table.print(name.replace("_", " "))


if __name__ == "__main__":
    main()
