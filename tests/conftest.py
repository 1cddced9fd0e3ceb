"""Shared fixtures: an isolated FERRY_HOME per test, and one real S3 server per session."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import pytest

from ferry.config import reset_settings


@pytest.fixture(autouse=True)
def ferry_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own embedded default, and no FERRY_* from the caller leaks in."""
    for name in list(os.environ):
        if name.startswith("FERRY_"):
            monkeypatch.delenv(name)
    home = tmp_path / "ferry-home"
    monkeypatch.setenv("FERRY_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    reset_settings()
    yield home
    reset_settings()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """SeaweedFS on 127.0.0.1: buckets meta / raw / persistent; the engine's identity may use meta only,
    the tasks' identity all three."""
    from ferry.testing.s3server import Identity, SeaweedS3

    server = SeaweedS3(
        tmp_path_factory.mktemp("seaweed"),
        buckets=["meta", "raw", "persistent", "elsewhere"],
        identities=[Identity("engine", "engine-key", "engine-secret", ["meta"]),
                    Identity("tasks", "tasks-key", "tasks-secret", ["meta", "raw", "persistent"])],
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def s3_settings(s3_server: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Settings pointing every store at the S3 server, in a fresh folder per test."""
    import json
    import uuid

    run = uuid.uuid4().hex[:8]
    opts = json.dumps(s3_server.options())
    monkeypatch.setenv("FERRY_METADATA_URL", f"s3://meta/{run}")
    monkeypatch.setenv("FERRY_RAW_OUTPUT_PREFIX", f"s3://raw/{run}")
    monkeypatch.setenv("FERRY_PERSISTENT_URL", f"s3://persistent/{run}")
    for store in ("METADATA", "RAW", "PERSISTENT"):
        monkeypatch.setenv(f"FERRY_{store}_OPTIONS", opts)
    reset_settings()
    from ferry.config import active_settings

    return active_settings()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """A real PostgreSQL on 127.0.0.1 (Debian's package, installed by scripts/setup)."""
    import shutil
    import tempfile

    from ferry.testing.postgres import PostgresServer, postgres_bin

    if postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed here (scripts/setup installs it with apt-get when run as root)")
    folder = tempfile.mkdtemp(prefix="ferry-pg-")  # outside pytest's private tmp: the postgres user must reach it
    server = PostgresServer(folder)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)
