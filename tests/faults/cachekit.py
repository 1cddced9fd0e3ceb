"""Helpers of the cache fault tests: the reader process they start and a look at the cache's disk."""

from __future__ import annotations

import subprocess
from pathlib import Path

# A task-like reader: imports, waits at "reader.ready" (the start barrier), reads, prints a digest.
READER = """
import hashlib, sys
from ferry import File
from ferry.faults import kill_point
import ferry.datasets as datasets
datasets.BLOCK_READ_THRESHOLD = int(sys.argv[3])
kill_point("reader.ready")
if sys.argv[2] == "download":
    data = open(File(sys.argv[1]).download(), "rb").read()
else:
    with File(sys.argv[1]).open("rb") as fh:
        data = fh.read()
print(hashlib.sha256(data).hexdigest())
"""


def cache_files(root: Path) -> dict[str, int]:
    """Files holding cached data (objects, pages, temporaries), relative path -> bytes on disk."""
    found = {}
    for sub in ("objects", "blocks"):
        for path in (root / sub).rglob("*"):
            if path.is_file():
                found[str(path.relative_to(root))] = path.stat().st_blocks * 512
    return found


def temporaries(root: Path) -> list[str]:
    return [name for name in cache_files(root) if "part-" in name]


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out.strip(), err
