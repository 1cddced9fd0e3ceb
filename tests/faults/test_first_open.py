"""Processes that open a new records database and a new node cache at the same moment all get them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ferry.faults import fault_environment, release, wait_for

OPENER = """
import sys
from ferry.datasets.cache import NodeCache
from ferry.engine.records import Records
from ferry.faults import kill_point
kill_point("opener.ready")  # everything imported: all open at once
records = Records("sqlite:///" + sys.argv[1])
records.close()
kill_point("opener.cache")  # and all open the caches at once
for root in sys.argv[2:]:
    NodeCache(root, 1 << 30)
"""


def test_sixteen_processes_opening_a_new_database_and_cache_at_once_all_succeed(tmp_path: Path) -> None:
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    env = fault_environment(barrier, pause_at=("opener.ready", "opener.cache"))
    caches = [str(tmp_path / f"cache{i}") for i in range(4)]  # four new caches: four races each
    args = [sys.executable, "-c", OPENER, str(tmp_path / "ferry.db"), *caches]
    procs = [subprocess.Popen(args, env={**os.environ, **env}, stderr=subprocess.PIPE, text=True) for _ in range(16)]
    try:
        wait_for(barrier, "opener.ready", 16, alive=procs)
        release(barrier, "opener.ready")
        wait_for(barrier, "opener.cache", 16, alive=procs)
        release(barrier, "opener.cache")
        errors = [p.communicate(timeout=120)[1] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.communicate()
    # before: most failed with "table ferry_schema already exists", some caches with "database is locked"
    assert [err.strip().splitlines()[-1:] for p, err in zip(procs, errors, strict=True) if p.returncode] == []
