"""A warm worker process: runs ferry task attempts sent as JSON lines, one at a time, like a reusable pod.

The protocol uses a private copy of the original stdout; the task's own prints
go to stderr, so they can't corrupt it. Tasks are imported once per worker.
Each reply carries the attempt's ``ferry.layout.Status``.
"""

from __future__ import annotations

import json
import os
import sys


def main() -> int:
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything the task prints goes to stderr
    sys.stdout = sys.stderr

    from ferry.layout import Status
    from ferry.runtime.container import program_of
    from ferry.runtime.execute import run_task
    from ferry.runtime.load import load_task_or_report

    protocol.write(json.dumps({"ready": os.getpid()}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        if "program" in request:  # a ContainerTask: its spec says what to run
            task = program_of(template_from(request["program"]))
        else:
            task = load_task_or_report(request["task"], request["output_prefix"])
        if task is None:
            status = Status.NOT_LOADED
        else:
            status = run_task(task, request["inputs"], request["output_prefix"], request["raw_output_prefix"],
                              cache_uri=request.get("cache_uri", ""), capture="fd")
        protocol.write(json.dumps({"status": status.value}) + "\n")
    return 0


def template_from(text: str) -> object:
    import base64

    from flyteidl.core import tasks_pb2

    template = tasks_pb2.TaskTemplate()
    template.ParseFromString(base64.b64decode(text))
    return template


if __name__ == "__main__":
    sys.exit(main())
