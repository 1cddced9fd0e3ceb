"""A new user's first run: install lines that install this project, a quickstart that installs ferry alone, and a
missing optional library that fails at once, as a user error naming what to install."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import ferry
from ferry.config import active_settings
from ferry.errors import DISTRIBUTION

ROOT = Path(__file__).parent.parent


def test_every_install_line_installs_this_project() -> None:
    import tomllib

    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["name"] == DISTRIBUTION == "ferry-flow"
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for line in doc.read_text().splitlines():
            for target in re.findall(r"pip install (['\"]?[\w.\[\],-]+['\"]?)", line):
                name = target.strip("'\"").split("[")[0]
                if name.startswith(("ferry", ".")) or "ferry" in target:
                    assert name in (DISTRIBUTION, ".", "-e"), f"{doc.name}: {line.strip()}"
    assert not re.search(r"pip install '?ferry\[", (ROOT / "README.md").read_text())


SHIM = """#!/bin/sh
echo "$(basename "$0") $*" >> "$SHIM_LOG"
case "$*" in
  "-m venv .venv") mkdir -p .venv/bin && cp "$0" .venv/bin/python ;;
esac
exit 0
"""


def _setup_in_copy(tmp_path: Path, script: str) -> list[str]:
    """Run scripts/SCRIPT in a copy of the project whose python, pip and apt-get only log what they are asked."""
    project = tmp_path / "project"
    shutil.copytree(ROOT / "scripts", project / "scripts")
    shutil.copy(ROOT / "pyproject.toml", project / "pyproject.toml")
    shims = tmp_path / "shims"
    shims.mkdir()
    for name in ("python3", "apt-get", "ldconfig"):
        (shims / name).write_text(SHIM)
        (shims / name).chmod(0o755)
    tools = tmp_path / "tools"  # the plain tools the scripts use, and nothing else (no dot, no chromium)
    tools.mkdir()
    for name in ("bash", "sh", "env", "dirname", "basename", "mkdir", "cp", "id", "ls", "grep", "touch", "cat"):
        found = shutil.which(name)
        assert found, name
        (tools / name).symlink_to(found)
    log = tmp_path / "calls.log"
    env = {"PATH": f"{shims}:{tools}", "SHIM_LOG": str(log), "PYTHON": str(shims / "python3"), "HOME": str(tmp_path)}
    done = subprocess.run([str(project / "scripts" / script)], cwd=project, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return log.read_text().splitlines() if log.exists() else []


def test_the_quickstart_setup_installs_ferry_alone(tmp_path: Path) -> None:
    calls = _setup_in_copy(tmp_path, "setup")
    installs = [c for c in calls if " install " in c]
    assert installs == ["python -m pip install --quiet --upgrade pip", "python -m pip install --quiet -e ."]
    assert not any(c.startswith("apt-get") for c in calls)  # no system packages for the quickstart
    quickstart = (ROOT / "scripts" / "quickstart").read_text()
    assert "scripts/setup\n" in quickstart and "setup-test" not in quickstart


def test_the_test_setup_adds_the_test_extras_and_system_packages(tmp_path: Path) -> None:
    calls = _setup_in_copy(tmp_path, "setup-test")
    assert "python -m pip install --quiet -e .[test]" in calls
    assert "python -m pip install --quiet -e ." in calls  # scripts/setup first
    if os.geteuid() == 0:  # as root, the packages the tests use are asked for
        apt = [c for c in calls if c.startswith("apt-get install")]
        assert apt and {"graphviz", "chromium"} <= set(apt[0].split())
    assert "scripts/setup-test" in (ROOT / "scripts" / "test").read_text()
    assert (ROOT / ".ci" / "run").read_text().strip().endswith("exec scripts/test")


FRAMES = '''
import pandas as pd
from ferry import task, workflow


@task
def frame(n: int) -> pd.DataFrame:
    return pd.DataFrame({"v": list(range(n))})


@workflow
def frames(n: int = 3) -> pd.DataFrame:
    return frame(n=n)
'''


def test_a_pandas_task_without_pyarrow_is_one_user_error_naming_the_extra(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from ferry.engine.records import Records
    from ferry.runtime.load import load_module

    shadow = tmp_path / "no-pyarrow"
    (shadow / "pyarrow").mkdir(parents=True)  # the task processes see a pyarrow that isn't installed
    (shadow / "pyarrow" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'pyarrow'\", name='pyarrow')\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(shadow), os.environ.get("PYTHONPATH", "")]))
    (tmp_path / "frames_flow.py").write_text(FRAMES)
    wf = load_module(str(tmp_path / "frames_flow.py")).frames
    execution = ferry.run(wf, {"n": 3}, executor="process", executor_options={"workers": 1})
    assert execution.status == "failed"
    assert "user error, attempt 1" in (execution.error or "")
    assert "A pandas data frame needs pyarrow" in (execution.error or "")
    assert f"pip install '{DISTRIBUTION}[pandas]'" in (execution.error or "")
    records = Records(active_settings().database_url)
    try:
        attempts = [n for n in records.nodes(execution.id) if n.kind == "task"]
    finally:
        records.close()
    assert len(attempts) == 1  # not retried: installing is the fix, not trying again


ARRAYS = '''
import numpy as np
from ferry import task, workflow


@task
def zeros(n: int) -> np.ndarray:
    return np.zeros(n)


@workflow
def arrays(n: int = 2) -> np.ndarray:
    return zeros(n=n)
'''


def test_an_array_task_without_numpy_names_the_numpy_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ferry.runtime.load import load_module

    (tmp_path / "arrays_flow.py").write_text(ARRAYS)
    wf = load_module(str(tmp_path / "arrays_flow.py")).arrays
    monkeypatch.setitem(sys.modules, "numpy", None)  # "import numpy" now fails, as where it isn't installed
    execution = ferry.run(wf, {"n": 2})
    assert execution.status == "failed"
    assert "user error, attempt 1" in (execution.error or "")
    assert "A numpy array needs numpy, which can't be imported where this runs" in (execution.error or "")
    assert f"pip install '{DISTRIBUTION}[numpy]'" in (execution.error or "")


def test_a_missing_library_is_a_user_error_that_is_also_an_import_error() -> None:
    from ferry.errors import FerryError, MissingDependencyError
    from ferry.runtime.execute import error_info

    exc = MissingDependencyError("polars", "polars", "A polars data frame")
    assert isinstance(exc, ImportError) and isinstance(exc, FerryError)
    info = error_info(exc)
    assert info.origin == "user" and not info.retryable and info.code == "MissingDependencyError"
