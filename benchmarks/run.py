"""Run the benchmarks and keep score: each run is saved under benchmarks/results/ and compared with earlier runs.

    python benchmarks/run.py [--quick] [SUITE ...]     # run suites (all by default), save, compare
    python benchmarks/run.py compare [A] [B]           # change of every row between two saved runs

Each suite prints a table of ferry's numbers against baselines measured in the same run, with ratios and the
issue's targets (machines here are noisy: read the ratios, and the load average saved with each run).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
sys.path[:0] = [HERE, SRC]

import scores  # noqa: E402
from common import Table  # noqa: E402

SUITES = {
    "data_plane": "literal conversion, frames and files on file://, import time",
    "control_plane": "per-task cost of workflows vs flytekit, engine RSS",
    "datasets": "node-cache reads of a large object on a local SeaweedFS",
    "cluster": "Dask vs process executor, a File between tasks on SeaweedFS, cache-aware placement",
    "polyglot": "ContainerTask vs Python task, @dynamic vs map, a Flyte package on ferry vs flytekit local",
    "chaos": "a soak on S3: workers, the engine and the store killed at random; survivals and duplicates",
    "scale": "long chains and wide maps vs short ones, engine memory, vs Dask's threaded scheduler",
    "launch": "compiled specs: ferry.launch per task vs ferry.run before them; the engine's RSS and imports",
    "server": "ferry serve: API latency with 10,000 executions, console page load of a 1,000-element map, launch overhead",
    "cli": "first success on a fresh clone, ferry --help, executions list with 1,000 executions, ferry run overhead",
    "transfer": "whole-object reads and writes on a local SeaweedFS vs s3fs, boto3 and obstore; memory",
}


def _suites_help() -> str:
    return "suites:\n" + "\n".join(f"  {name:<14} {what}" for name, what in SUITES.items())


def run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="benchmarks/run.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run ferry's benchmarks (every suite unless named), print a table per suite, save the run as "
                    f"JSON in {os.path.relpath(scores.RESULTS)}/ and show the change against earlier runs.",
        epilog=_suites_help() + "\n\nand: benchmarks/run.py compare [A] [B]  (see compare --help)")
    parser.add_argument("suites", nargs="*", metavar="SUITE", help="suites to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a few minutes in all)")
    parser.add_argument("--no-save", action="store_true", help="don't write the run to benchmarks/results/")
    parser.add_argument("--threshold", type=float, default=scores.THRESHOLD, metavar="PERCENT",
                        help="flag rows worse than the last run by more than this (default %(default)s%%)")
    return parser


def compare_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="benchmarks/run.py compare",
        description="Show old, new and change of every row between two saved runs. With no file: the newest run "
                    "against, for each of its rows, the latest earlier run (of the same --quick-ness) that has that "
                    "row. With one file: that run against the newest. Files are paths or names in "
                    f"{os.path.relpath(scores.RESULTS)}/.")
    parser.add_argument("files", nargs="*", metavar="RUN", help="old run, then new run")
    parser.add_argument("--threshold", type=float, default=scores.THRESHOLD, metavar="PERCENT",
                        help="flag rows worse by more than this (default %(default)s%%)")
    parser.add_argument("--fail", action="store_true", help="exit with status 1 when a row is flagged worse")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["compare"]:
        return compare(compare_parser().parse_args(argv[1:]))
    parser = run_parser()
    args = parser.parse_args(argv)
    unknown = [s for s in args.suites if s not in SUITES]
    if unknown:
        parser.error(f"unknown suite {', '.join(map(repr, unknown))}; the suites are: {', '.join(SUITES)} "
                     "(or 'compare' to compare saved runs)")
    return run(args.suites or list(SUITES), args.quick, not args.no_save, args.threshold)


def run(suites: list[str], quick: bool, save: bool, threshold: float) -> int:
    # children (run_child, worker processes) import ferry from this checkout, like this process
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)
    record = scores.start(suites, quick)
    tables, errors = [], {}
    for name in suites:
        print(f"== {name}{' (quick)' if quick else ''}", flush=True)
        table = Table(name)
        started = time.perf_counter()
        try:
            importlib.import_module(name).run(table, quick)
        except Exception as exc:  # noqa: BLE001 - one broken suite must not lose the others' numbers
            traceback.print_exc()
            errors[name] = f"{type(exc).__name__}: {exc}"[:2000]
            print(f"  suite {name} failed after {len(table.rows)} rows: {errors[name].splitlines()[0]}", flush=True)
        record["suite_seconds"][name] = round(time.perf_counter() - started, 1)
        table.print()
        tables.append(table)
    scores.finish(record, [row for t in tables for row in t.rows], errors)
    earlier = scores.load_all()
    if save:
        print(f"saved {os.path.relpath(scores.save(record))}")
    else:
        record["file"] = "this run (not saved)"
    scores.print_comparison(scores.compare_latest(record, earlier), threshold)
    return 1 if errors else 0


def compare(args: argparse.Namespace) -> int:
    try:
        comparison = scores.compare_files(args.files)
    except scores.CompareError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    worse = scores.print_comparison(comparison, args.threshold)
    return 1 if worse and args.fail else 0


if __name__ == "__main__":
    sys.exit(main())
