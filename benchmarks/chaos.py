"""A chaos soak: run workflows on S3 (a local SeaweedFS) while killing workers, the engine and the store.

Each workflow is a map whose tasks note every attempt they run. While it runs, faults are injected at
random (seeded, so a run can be repeated): a worker process is killed, the engine is killed (then the
execution is resumed), or the store stops answering for a few seconds. At the end every execution must
have succeeded with the right outputs, no attempt may have run twice, and no task's work may have been
committed twice. The table counts runs, faults, survivals, duplicated attempts and lost or corrupt outputs
(the target for the last two is 0).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import Table

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 20261124
WORKFLOW = '''
import os
from pathlib import Path
from ferry import map_task, task, workflow

@task(retries=1)
def work(x: int) -> int:
    """Works a while, then notes the attempt that completed it (its raw folder ends execution/node/attempt)."""
    import time
    from ferry.types import current_context
    time.sleep(0.05 + (x % 7) * 0.02)
    marks = Path(os.environ["CHAOS_MARKS"])
    mark = marks / f"{x}-{os.getpid()}-{time.monotonic_ns()}"
    with open(f"{mark}.part", "w") as fh:  # renamed once written: a worker killed mid-write leaves only a .part
        fh.write(current_context().raw_prefix)
    os.replace(f"{mark}.part", mark)
    return x * x

@task
def total(xs: list[int]) -> int:
    return sum(xs)

@workflow
def soak(xs: list[int]) -> int:
    return total(xs=map_task(work, concurrency=4)(x=xs))
'''


def _ferry(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "ferry.cli.main", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]


def _latest_execution(env: dict[str, str]) -> str | None:
    out = subprocess.run([sys.executable, "-c", "from ferry.engine.records import Records; from ferry.config import "
                          "active_settings; r = Records(active_settings().database_url).list_executions(1); "
                          "print(r[0].id if r else '')"], env=env, capture_output=True, text=True)
    return out.stdout.strip() or None


def _status(env: dict[str, str], execution: str) -> tuple[str, int | None]:
    code = ("import json; from ferry.engine.records import Records; from ferry.config import active_settings\n"
            "from ferry.literals import parse_literal_map; from ferry.storage import read_bytes\n"
            "s = active_settings(); r = Records(s.database_url).get_execution(%r)\n"
            "out = None\n"
            "if r.outputs_uri:\n"
            "    out = parse_literal_map(read_bytes(r.outputs_uri, s.options_for(r.outputs_uri))).literals['o0']"
            ".scalar.primitive.integer\n"
            "print(json.dumps([r.status, out]))" % execution)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        return "unreadable: " + proc.stderr.strip().splitlines()[-1], None
    status, out = json.loads(proc.stdout)
    return status, out


def _committed_twice(marks: Path, options: dict[str, Any]) -> int:
    """Nodes whose work was committed by more than one attempt (outputs.pb in two attempt folders).

    A task that completed and was then killed before its outputs were written rightly runs again; a task
    whose attempt was still running when the engine died must be adopted, not run a second time.
    """
    import fsspec

    fs = fsspec.filesystem("s3", **options)
    committed: dict[tuple[str, str], int] = {}
    for mark in marks.iterdir():
        if mark.suffix == ".part":  # its worker was killed before the note was whole (and before its outputs)
            continue
        execution, node, attempt = mark.read_text().rstrip("/").split("/")[-3:]
        if fs.exists(f"meta/chaos/{execution}/{node}/{attempt}/outputs.pb"):
            committed[(execution, node)] = committed.get((execution, node), 0) + 1
    return sum(n - 1 for n in committed.values() if n > 1)


def soak(runs: int, elements: int, quick: bool) -> dict[str, Any]:
    from ferry.testing.s3server import SeaweedS3

    rng = random.Random(SEED)
    counts = {"runs": runs, "faults": 0, "worker kills": 0, "engine kills": 0, "store pauses": 0, "survived": 0,
              "duplicated attempts": 0, "lost or corrupt outputs": 0}
    with tempfile.TemporaryDirectory(prefix="ferry-chaos-") as scratch:
        root = Path(scratch)
        (root / "soak.py").write_text(WORKFLOW)
        with SeaweedS3(root / "s3", buckets=["meta", "raw"]) as s3:
            options = json.dumps(s3.options())
            env = {**os.environ, "FERRY_HOME": str(root / "home"), "FERRY_METADATA_URL": "s3://meta/chaos",
                   "FERRY_RAW_OUTPUT_PREFIX": "s3://raw/chaos", "FERRY_METADATA_OPTIONS": options,
                   "FERRY_RAW_OPTIONS": options}
            for run in range(runs):
                marks = root / f"marks-{run}"
                marks.mkdir()
                env["CHAOS_MARKS"] = str(marks)
                xs = list(range(elements))
                engine = _ferry(["run", str(root / "soak.py"), "soak", "--xs", json.dumps(xs), "--executor", "process",
                                 "--workers", "2"], env)
                execution = None
                while engine.poll() is None:
                    time.sleep(rng.uniform(0.3, 1.2 if quick else 2.5))
                    if engine.poll() is not None:
                        break
                    fault = rng.choice(["worker", "engine", "store", "none"])
                    if fault == "worker" and _children(engine.pid):
                        os.kill(rng.choice(_children(engine.pid)), signal.SIGKILL)
                        counts["worker kills"] += 1
                    elif fault == "engine":
                        os.killpg(engine.pid, signal.SIGKILL)
                        engine.communicate()
                        counts["engine kills"] += 1
                        execution = execution or _latest_execution(env)
                        if execution:
                            engine = _ferry(["executions", "resume", execution], env)
                    elif fault == "store":
                        s3.pause()
                        time.sleep(rng.uniform(0.5, 2.0))
                        s3.resume()
                        counts["store pauses"] += 1
                    if fault != "none":
                        counts["faults"] += 1
                engine.communicate()
                execution = execution or _latest_execution(env)
                status, out = _status(env, execution or "")
                if status == "succeeded" and out == sum(x * x for x in xs):
                    counts["survived"] += 1
                elif status == "succeeded":
                    counts["lost or corrupt outputs"] += 1
                counts["duplicated attempts"] += _committed_twice(marks, s3.options())
    return counts


def run(table: Table, quick: bool) -> None:
    runs, elements = (3, 24) if quick else (10, 60)
    c = soak(runs, elements, quick)
    table.add("chaos soak: executions that survived", c["survived"], "count", better="higher", baseline=c["runs"],
              baseline_label="executions run", target="all", met=c["survived"] == c["runs"],
              note=f"seed {SEED}; {c['faults']} faults: {c['worker kills']} worker kills, {c['engine kills']} engine "
                   f"kills (then resume), {c['store pauses']} store outages")
    table.add("chaos soak: duplicated attempts", c["duplicated attempts"], "count", target="0",
              met=c["duplicated attempts"] == 0)
    table.add("chaos soak: lost or corrupt outputs", c["lost or corrupt outputs"], "count", target="0",
              met=c["lost or corrupt outputs"] == 0)


if __name__ == "__main__":
    print(soak(2, 12, True))
