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
    assert records.get_execution(execution.id[:-1]).status == "succeeded"
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


def test_an_unreachable_database_is_one_line_without_the_password(tmp_path: Path) -> None:
    import socket

    from ferry.errors import StoreUnavailableError

    with socket.socket() as probe:  # a port nothing listens on: connections are refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://ferry:hunter2@127.0.0.1:{port}/ferry"
    with pytest.raises(StoreUnavailableError, match=rf"Could not reach the records database postgresql://ferry:\*\*\*@127.0.0.1:{port}/"
                                                    r"ferry \(.*Connection refused.*\)\. Check that PostgreSQL is running"):
        Records(url)
    env = {**os.environ, "FERRY_DATABASE_URL": url}
    done = subprocess.run([sys.executable, "-m", "ferry.cli.main", "executions", "list"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "hunter2" not in done.stdout + done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr  # not a traceback


def test_a_wrong_password_is_a_config_error_without_the_password(postgres_server: Any, database: str) -> None:
    import sqlalchemy as sa

    from ferry.errors import ConfigError

    role = f"r{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(postgres_server.url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE ROLE {role} LOGIN PASSWORD 'the-right-one'"))
        hba = Path(conn.execute(sa.text("SHOW hba_file")).scalar())
        rules = hba.read_text()
        # The test server trusts everyone; this role alone must give a password (first matching rule wins).
        hba.write_text(f"host all {role} 127.0.0.1/32 scram-sha-256\n" + rules)
        conn.execute(sa.text("SELECT pg_reload_conf()"))
    owner = sa.create_engine(database.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT")
    with owner.connect() as conn:
        conn.execute(sa.text(f"GRANT ALL ON SCHEMA public TO {role}"))
    owner.dispose()
    try:
        host = database.split("@", 1)[1]
        Records(f"postgresql://{role}:the-right-one@{host}").close()  # the rule is in force
        with pytest.raises(ConfigError, match=rf"The records database postgresql://{role}:\*\*\*@.* refused the login "
                                              r"\(.*password authentication failed.*\)\. Fix the user and password"):
            Records(f"postgresql://{role}:hunter2-wrong@{host}")
    finally:
        with admin.connect() as conn:
            hba.write_text(rules)
            conn.execute(sa.text("SELECT pg_reload_conf()"))
        admin.dispose()


def test_a_missing_database_says_to_create_it(postgres_server: Any) -> None:
    from ferry.errors import ConfigError

    url = postgres_server.url.rsplit("/", 1)[0] + f"/nodb{uuid.uuid4().hex[:6]}"
    with pytest.raises(ConfigError, match=r"The records database .*/nodb\w+ does not exist .*createdb"):
        Records(url)
