"""A warm worker process: runs task attempts sent as JSON lines, one at a time, like a reusable pod.

The protocol uses a private copy of the original stdout; the task's own prints
go to stderr, so they can't corrupt it. Tasks are imported once per worker.
"""

from __future__ import annotations

import json
import os
import sys


def main() -> int:
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything the task prints goes to stderr
    sys.stdout = sys.stderr

    from ferry.errors import FerryError
    from ferry.literals import serialize
    from ferry.runtime.execute import ERROR, error_document, run_task
    from ferry.sdk.loader import load_object, split_reference
    from ferry.sdk.task import Task
    from ferry.storage import join, write_bytes

    tasks: dict[str, Task] = {}
    protocol.write(json.dumps({"ready": os.getpid()}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        ref = request["task"]
        try:
            if ref not in tasks:
                tasks[ref] = load_object(*split_reference(ref), Task, "task")
        except FerryError as exc:
            from ferry.config import active_settings

            write_bytes(join(request["output_prefix"], ERROR), serialize(error_document(exc)),
                        active_settings().options_for(request["output_prefix"]), "metadata")
            protocol.write(json.dumps({"exit": 2}) + "\n")
            continue
        status = run_task(tasks[ref], request["inputs"], request["output_prefix"], request["raw_output_prefix"],
                          scope=request["scope"], chdir=True, cache_uri=request.get("cache_uri", ""))
        protocol.write(json.dumps({"exit": 1 if status == "failed" else 0, "cached": status == "cached"}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
