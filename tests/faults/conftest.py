"""Fixtures of the fault-injection suite: a local persistent store, and reader processes armed with
fault points (``ferry.faults``). Every test here is marked ``faults``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
from cachekit import READER

from ferry.config import active_settings, reset_settings
from ferry.storage import write_bytes


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A file:// persistent store; returns its URL."""
    url = f"file://{tmp_path}/persistent"
    monkeypatch.setenv("FERRY_PERSISTENT_URL", url)
    reset_settings()
    return url


@pytest.fixture
def put() -> Callable[[str, bytes], str]:
    def put(name: str, data: bytes) -> str:
        uri = f"{active_settings().persistent_url}/{name}"
        write_bytes(uri, data, active_settings().options_for(uri), "persistent")
        return uri

    return put


@pytest.fixture
def reader() -> Callable[..., subprocess.Popen[str]]:
    """Start a reader process: ``reader(uri, "download"|"open", env={...}, threshold=...)``."""
    started: list[subprocess.Popen[str]] = []

    def start(uri: str, how: str = "download", env: dict[str, str] | None = None,
              threshold: int = 64 << 20) -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, "-c", READER, uri, how, str(threshold)],
                                env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        started.append(proc)
        return proc

    yield start  # type: ignore[misc]
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


@pytest.fixture
def barrier(tmp_path: Path) -> Path:
    folder = tmp_path / "barrier"
    folder.mkdir()
    return folder


def pytest_collection_modifyitems(items: list[Any]) -> None:
    for item in items:
        if "tests/faults/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.faults)
