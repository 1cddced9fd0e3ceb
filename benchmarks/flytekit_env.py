"""flytekit for baselines only: its own virtual environment in benchmarks/.venv-flytekit (git-ignored), made on first use.

flytekit is not a ferry dependency, and its pins clash with ferry's, so it lives in a separate venv inside the
repository. When it can't be installed (no network, no ``venv`` module), ``flytekit()`` says why once, and only the
rows that need it show ``n/a (why)``.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import Any

from common import best_process_time

HERE = os.path.dirname(os.path.abspath(__file__))
VENV = os.path.join(HERE, ".venv-flytekit")
SPEC = "flytekit==1.16.*"
PYTHON = os.path.join(VENV, "bin", "python")
READY = os.path.join(VENV, "ferry-bench-ready")  # written last by a successful install; holds SPEC


@dataclass(frozen=True)
class Flytekit:
    """The flytekit interpreter, or why there is none."""

    python: str | None
    version: str | None
    why: str = ""


@functools.cache
def flytekit() -> Flytekit:
    """flytekit's venv, installed on first use (once per process: later calls reuse the answer)."""
    why = "" if _installed() else _install(PYTHON)
    if not why:
        version, why = _version()
        if version:
            return Flytekit(PYTHON, version)
    print(f"  flytekit baselines unavailable: {why}. Rows that need flytekit show n/a.", flush=True)
    return Flytekit(None, None, why)


def installed_version() -> str | None:
    """flytekit's version if its venv is installed (never installs it)."""
    return _version()[0] if _installed() else None


def _version() -> tuple[str | None, str]:
    with tempfile.TemporaryDirectory(prefix="ferry-bench-fk-") as home:
        probe = subprocess.run([PYTHON, "-c", "import flytekit, importlib.metadata as m; print(m.version('flytekit'))"],
                               capture_output=True, text=True, env=env(home))
    if probe.returncode != 0:
        return None, f"flytekit does not import in {VENV}: {_last_line(probe.stderr)}"
    return probe.stdout.strip(), ""


def _installed() -> bool:
    try:
        with open(READY) as fh:
            return fh.read().strip() == SPEC
    except OSError:
        return False


def _install(exe: str) -> str:
    """Create the venv and install SPEC; return why it failed, or ""."""
    if os.path.islink(VENV) and not os.path.exists(VENV):
        os.unlink(VENV)  # a dangling link left by old checkouts, which committed one into /tmp
    print(f"  installing {SPEC} into {VENV} (once; a few minutes)...", flush=True)
    if not os.path.exists(exe):
        made = subprocess.run([sys.executable, "-m", "venv", VENV], capture_output=True, text=True)
        if made.returncode != 0:
            shutil.rmtree(VENV, ignore_errors=True)
            return f"cannot create a venv with {sys.executable}: {_last_line(made.stderr or made.stdout)}"
    try:
        pip = subprocess.run([exe, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", SPEC],
                             capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired:
        return f"pip install {SPEC} took over 30 minutes"
    if pip.returncode != 0:
        return f"pip install {SPEC} failed: {_last_line(pip.stderr or pip.stdout)}"
    with open(READY, "w") as fh:
        fh.write(SPEC + "\n")
    return ""


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    return (errors or lines or ["no output"])[-1][:300]


def env(home: str) -> dict[str, str]:
    """flytekit writes its local cache and config under HOME, and two sandbox folders into the temporary folder
    on every import (never removed: 2,212 had piled up in /tmp): give it throwaway ones."""
    return {**os.environ, "HOME": home, "TMPDIR": home, "PYTHONPATH": ""}


def import_time(statement: str, repeat: int) -> float:
    """Best-of-``repeat`` wall time of ``python -c statement`` in flytekit's venv (RuntimeError: why not)."""
    fk = flytekit()
    if fk.python is None:
        raise RuntimeError(fk.why)
    with tempfile.TemporaryDirectory(prefix="ferry-bench-fk-") as home:
        return best_process_time([fk.python, "-c", statement], repeat, env=env(home), cwd=home)


def workflows(map_size: int) -> dict[str, Any]:
    """Per-task cost of the chain and map workflows in flytekit's local execution (flytekit_side.py).

    Raises RuntimeError saying why when flytekit is unavailable or the run fails.
    """
    fk = flytekit()
    if fk.python is None:
        raise RuntimeError(fk.why)
    with tempfile.TemporaryDirectory(prefix="ferry-bench-fk-") as home:
        proc = subprocess.run([fk.python, os.path.join(HERE, "flytekit_side.py"), str(map_size)], capture_output=True,
                              text=True, env=env(home), cwd=home)
    if proc.returncode != 0:
        print(f"  flytekit_side.py failed:\n{proc.stderr[-3000:]}", flush=True)
        raise RuntimeError(f"flytekit_side.py failed: {_last_line(proc.stderr)}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
