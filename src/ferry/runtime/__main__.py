"""``python -m ferry.runtime --task MODULE:NAME --inputs URI --output-prefix URI --raw-output-prefix URI``.

What a pod runs for a ferry task. The outcome is in the store: outputs.pb (written
last) or error.pb, also printed to stderr. The exit code only labels the end
(``ferry.layout.EXIT_CODES``): 0 succeeded, 1 failed, 2 the task could not be
loaded, 3 memoized outputs were reused.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ferry.runtime", description=__doc__)
    parser.add_argument("--task", required=True, help="MODULE:NAME or FILE.py:NAME of a @task")
    parser.add_argument("--inputs", required=True, help="URI of the inputs.pb LiteralMap")
    parser.add_argument("--output-prefix", required=True, help="where outputs.pb / error.pb go")
    parser.add_argument("--raw-output-prefix", required=True, help="this attempt's own folder for offloaded values")
    parser.add_argument("--cache-uri", default="", help="memoized outputs to reuse, or to fill on success")
    args = parser.parse_args(argv)

    from ferry.layout import EXIT_CODES, Status
    from ferry.runtime.execute import run_task
    from ferry.runtime.load import load_task_or_report

    task = load_task_or_report(args.task, args.output_prefix)
    if task is None:
        return EXIT_CODES[Status.NOT_LOADED]
    status = run_task(task, args.inputs, args.output_prefix, args.raw_output_prefix, cache_uri=args.cache_uri,
                      capture="fd")
    return EXIT_CODES[status]


if __name__ == "__main__":
    sys.exit(main())
