"""``python -m ferry.runtime --task MODULE:NAME --inputs URI --output-prefix URI --raw-output-prefix URI``.

Exits 0 after writing outputs.pb, 1 after writing error.pb, 2 when it could
not even load the task (the message goes to stderr and, if possible, error.pb).
"""

from __future__ import annotations

import argparse
import sys

EXIT_CODES = {"succeeded": 0, "failed": 1, "cached": 3}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ferry.runtime", description=__doc__)
    parser.add_argument("--task", required=True, help="MODULE:NAME or FILE.py:NAME of a @task")
    parser.add_argument("--inputs", required=True, help="URI of the inputs.pb LiteralMap")
    parser.add_argument("--output-prefix", required=True, help="where outputs.pb / error.pb go")
    parser.add_argument("--raw-output-prefix", required=True, help="where offloaded values go")
    parser.add_argument("--scope", default="", help="execution/node/attempt, for raw paths")
    parser.add_argument("--cache-uri", default="", help="memoized outputs to reuse, or to fill on success")
    args = parser.parse_args(argv)

    from ferry.runtime.execute import run_task
    from ferry.runtime.load import load_task

    task = load_task(args.task, args.output_prefix)
    if task is None:
        return 2
    status = run_task(task, args.inputs, args.output_prefix, args.raw_output_prefix, scope=args.scope,
                      chdir=True, cache_uri=args.cache_uri)
    return EXIT_CODES[status]


if __name__ == "__main__":
    sys.exit(main())
