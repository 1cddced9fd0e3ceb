"""Execution records: every execution, and every node attempt, in SQLite.

WAL mode with ``synchronous=NORMAL`` keeps a record write well under a
millisecond; a crash loses at most the last few records, never the metadata
store's outputs, from which ``resume`` rebuilds what finished.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ferry.errors import ConfigError, FerryError

SCHEMA = """
CREATE TABLE IF NOT EXISTS executions (
    id TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    reference TEXT NOT NULL,
    status TEXT NOT NULL,
    started REAL NOT NULL,
    ended REAL,
    metadata_prefix TEXT NOT NULL,
    raw_output_prefix TEXT NOT NULL,
    executor TEXT NOT NULL,
    inputs_uri TEXT,
    outputs_uri TEXT,
    error TEXT
);
CREATE TABLE IF NOT EXISTS nodes (
    execution_id TEXT NOT NULL,
    path TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    kind TEXT NOT NULL,
    label TEXT NOT NULL,
    status TEXT NOT NULL,
    started REAL NOT NULL,
    ended REAL,
    prefix TEXT,
    error TEXT,
    detail TEXT,
    PRIMARY KEY (execution_id, path, attempt)
);
CREATE INDEX IF NOT EXISTS executions_started ON executions (started DESC);
"""


class NotFoundError(FerryError):
    """No execution with that id."""


@dataclass
class ExecutionRecord:
    id: str
    workflow: str
    reference: str
    status: str
    started: float
    ended: float | None
    metadata_prefix: str
    raw_output_prefix: str
    executor: str
    inputs_uri: str | None
    outputs_uri: str | None
    error: str | None

    @property
    def duration(self) -> float | None:
        return None if self.ended is None else self.ended - self.started


@dataclass
class NodeRecord:
    execution_id: str
    path: str
    attempt: int
    kind: str
    label: str
    status: str
    started: float
    ended: float | None
    prefix: str | None
    error: str | None
    detail: str | None


class Records:
    """A small, thread-safe store of execution and node records."""

    def __init__(self, url: str) -> None:
        if not url.startswith("sqlite:///"):
            raise ConfigError(
                f"Unsupported records database URL {url!r}. Use sqlite:///path/to/ferry.db "
                "(FERRY_DATABASE_URL)."
            )
        path = Path(url[len("sqlite:///"):])
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def _write(self, sql: str, args: tuple[Any, ...]) -> None:
        with self._lock:
            self._db.execute(sql, args)

    def create_execution(self, rec: ExecutionRecord) -> None:
        self._write(
            "INSERT INTO executions VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (rec.id, rec.workflow, rec.reference, rec.status, rec.started, rec.ended, rec.metadata_prefix,
             rec.raw_output_prefix, rec.executor, rec.inputs_uri, rec.outputs_uri, rec.error),
        )

    def finish_execution(self, execution_id: str, status: str, outputs_uri: str | None = None, error: str | None = None) -> None:
        self._write(
            "UPDATE executions SET status=?, ended=?, outputs_uri=?, error=? WHERE id=?",
            (status, time.time(), outputs_uri, error, execution_id),
        )

    def set_status(self, execution_id: str, status: str) -> None:
        self._write("UPDATE executions SET status=?, ended=NULL WHERE id=?", (status, execution_id))

    def node(self, execution_id: str, path: str, attempt: int, kind: str, label: str, status: str,
             prefix: str | None = None, error: str | None = None, detail: str | None = None) -> None:
        """Insert or update one node attempt; 'running' starts the clock, anything else stops it."""
        now = time.time()
        if status == "running":
            self._write(
                "INSERT INTO nodes VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (execution_id, path, attempt) "
                "DO UPDATE SET status=excluded.status, detail=COALESCE(excluded.detail, nodes.detail)",
                (execution_id, path, attempt, kind, label, status, now, None, prefix, error, detail),
            )
        else:
            self._write(
                "INSERT INTO nodes VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (execution_id, path, attempt) "
                "DO UPDATE SET status=excluded.status, ended=excluded.ended, error=excluded.error, "
                "detail=COALESCE(excluded.detail, nodes.detail)",
                (execution_id, path, attempt, kind, label, status, now, now, prefix, error, detail),
            )

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def list_executions(self, limit: int = 20) -> list[ExecutionRecord]:
        rows = self._query("SELECT * FROM executions ORDER BY started DESC LIMIT ?", (limit,))
        return [ExecutionRecord(*row) for row in rows]

    def get_execution(self, execution_id: str | None = None) -> ExecutionRecord:
        """By id (or a unique prefix of one); the most recent execution when no id is given."""
        if not execution_id:
            latest = self.list_executions(1)
            if not latest:
                raise NotFoundError("No executions yet. Start one with `ferry run FILE.py WORKFLOW`.")
            return latest[0]
        rows = self._query("SELECT * FROM executions WHERE id=?", (execution_id,))
        if not rows:
            rows = self._query("SELECT * FROM executions WHERE id LIKE ? ORDER BY started DESC", (execution_id + "%",))
            if len(rows) > 1:
                raise NotFoundError(f"Execution id prefix {execution_id!r} is ambiguous; give more characters.")
        if not rows:
            raise NotFoundError(f"No execution {execution_id!r}. See `ferry executions list` for recent ids.")
        return ExecutionRecord(*rows[0])

    def nodes(self, execution_id: str) -> list[NodeRecord]:
        rows = self._query("SELECT * FROM nodes WHERE execution_id=? ORDER BY started, path, attempt", (execution_id,))
        return [NodeRecord(*row) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()
