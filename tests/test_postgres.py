"""Execution records in a real PostgreSQL: one code path with SQLite, migrations, concurrent engines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import ferry
from ferry.cli.main import cli
from ferry.config import active_settings, reset_settings
from ferry.engine.records import MIGRATIONS, Records

FLOWS = Path(__file__).parent / "flows" / "pipeline.py"


@pytest.fixture
def database(postgres_server: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh database per test in the shared server."""
    import sqlalchemy as sa

    name = f"t{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(postgres_server.url.replace("postgresql://", "postgresql+psycopg://"),
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    admin.dispose()
    url = postgres_server.url.rsplit("/", 1)[0] + "/" + name
    monkeypatch.setenv("FERRY_DATABASE_URL", url)
    reset_settings()
    return url


def test_records_in_postgres(database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKS", str(tmp_path / "marks"))
    from ferry.runtime.load import load_object

    wf = load_object(str(FLOWS), "map_reduce", "workflow")
    execution = ferry.run(wf, {"xs": [1, 2, 3]})
    assert execution.outputs == 14
    shown = CliRunner().invoke(cli, ["executions", "show", execution.id])
    assert shown.exit_code == 0 and "xs = [1, 2, 3]" in shown.output and "n0-2 [task]" in shown.output
    records = Records(database)
    assert records.get_execution(execution.id[:10]).status == "succeeded"
    records.close()


def test_migrations_are_applied_once(database: str) -> None:
    import sqlalchemy as sa

    Records(database).close()
    Records(database).close()
    engine = sa.create_engine(database.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        versions = [row[0] for row in conn.execute(sa.text("SELECT version FROM ferry_schema ORDER BY version"))]
    engine.dispose()
    assert versions == [v for v, _ in MIGRATIONS]


def test_two_engines_recording_at_once_lose_no_rows(database: str, tmp_path: Path) -> None:
    env = {**os.environ, "MARKS": str(tmp_path / "marks")}
    xs = json.dumps(list(range(40)))
    engines = [
        subprocess.Popen([sys.executable, "-m", "ferry.cli.main", "run", str(FLOWS), "map_reduce", "--xs", xs,
                          "--max-parallel", "8"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    outputs = [e.communicate(timeout=300)[0] for e in engines]
    assert all(e.returncode == 0 for e in engines), outputs
    records = Records(database)
    executions = records.list_executions(10)
    assert len(executions) == 2 and all(e.status == "succeeded" for e in executions)
    for execution in executions:
        nodes = [n for n in records.nodes(execution.id) if n.kind == "task"]
        assert len(nodes) == 41 and all(n.status == "succeeded" for n in nodes)
    records.close()
    assert active_settings().database_url == database


def test_engines_migrating_a_fresh_database_at_once(database: str) -> None:
    code = f"from ferry.engine.records import Records; Records({database!r}).close()"
    procs = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True) for _ in range(4)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    import sqlalchemy as sa

    engine = sa.create_engine(database.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        versions = [row[0] for row in conn.execute(sa.text("SELECT version FROM ferry_schema"))]
    engine.dispose()
    assert versions == [v for v, _ in MIGRATIONS]
