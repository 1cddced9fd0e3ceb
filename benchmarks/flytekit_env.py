"""A separate virtual environment holding flytekit, for comparisons only (not a ferry dependency)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
VENV = os.path.join(HERE, ".venv-flytekit")
SPEC = "flytekit==1.16.*"


def python() -> str | None:
    """The flytekit venv's interpreter, created on first use; None if it can't be installed here."""
    exe = os.path.join(VENV, "bin", "python")
    if not os.path.exists(exe):
        print(f"  creating {VENV} with {SPEC} (once)...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        install = subprocess.run([exe, "-m", "pip", "install", "--quiet", SPEC], capture_output=True, text=True)
        if install.returncode != 0:
            print(f"  flytekit could not be installed: {install.stderr[-500:]}")
            return None
    return exe


def measure() -> dict[str, float] | None:
    exe = python()
    if exe is None:
        return None
    with tempfile.TemporaryDirectory() as home:  # flytekit writes its local cache under HOME
        proc = subprocess.run([exe, os.path.join(HERE, "flytekit_side.py")], capture_output=True, text=True,
                              env={**os.environ, "HOME": home}, cwd=home)
    if proc.returncode != 0:
        print(f"  flytekit run failed: {proc.stderr[-800:]}")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])
