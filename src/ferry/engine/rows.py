"""The rows of the execution records, and a read-only path to them that needs no SQLAlchemy.

``ferry executions list`` and friends only read. Importing SQLAlchemy costs more than the rest of
the command, so for a SQLite database at a schema this module knows, ``open_for_reading`` reads
with the standard library's ``sqlite3`` (same rows, same ordering, same errors). Anything else
(PostgreSQL, a database to migrate first) goes through ``ferry.engine.records.Records``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Protocol

from ferry.errors import ConfigError, FerryError

if TYPE_CHECKING:
    from ferry.literals import LiteralMap

SCHEMA_READ = 4  # the schema version whose columns the fast path reads; later versions only add columns


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
    launch_plan: str | None = None
    raw_output_source: str | None = None
    closure_uri: str | None = None
    queued: float | None = None
    owner: str | None = None
    lease_until: float | None = None
    claims: int | None = None
    abort_requested: float | None = None

    @property
    def duration(self) -> float | None:
        return None if self.ended is None else self.ended - self.started

    def summary(self) -> dict[str, Any]:
        """The execution as JSON for listings (the API's and ``ferry executions list --json``)."""
        return {"id": self.id, "workflow": self.workflow, "launch_plan": self.launch_plan, "status": self.status,
                "queued": self.queued, "started": self.started, "ended": self.ended, "duration": self.duration,
                "executor": self.executor, "raw_output_prefix": self.raw_output_prefix,
                "raw_output_source": self.raw_output_source, "error": self.error, "owner": self.owner,
                "claims": self.claims, "abort_requested": self.abort_requested is not None}


@dataclass
class Registration:
    kind: str
    name: str
    version: str
    created: float
    uri: str
    digest: str
    raw_output_prefix: str | None
    interface: str | None


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
    inputs: bytes | None = None  # the attempt's inputs.pb / outputs.pb when the records keep them (in-process
    outputs: bytes | None = None  # attempts' small values); else they are objects under ``prefix``

    def meta(self, name: str, read: Callable[[str], bytes | None]) -> LiteralMap | None:
        """The attempt's ``inputs.pb`` or ``outputs.pb`` (``name``), from the record or, through ``read``,
        from the metadata store under its prefix; None when it has none."""
        from ferry.layout import INPUTS, OUTPUTS
        from ferry.literals import parse_literal_map
        from ferry.storage import join

        data = {INPUTS: self.inputs, OUTPUTS: self.outputs}.get(name)
        if data is None and self.prefix:
            data = read(join(self.prefix, name))
        return None if data is None else parse_literal_map(data, f"{name} of {self.path} attempt {self.attempt + 1}")


def resolve_execution(execution_id: str | None, latest: Callable[[], list[ExecutionRecord]],
                      exact: Callable[[str], list[ExecutionRecord]],
                      by_prefix: Callable[[str], list[ExecutionRecord]]) -> ExecutionRecord:
    """An execution by id (or a unique prefix of one); the most recent one when no id is given."""
    if not execution_id:
        rows = latest()
        if not rows:
            raise NotFoundError("No executions yet. Start one with `ferry run FILE.py WORKFLOW`.")
        return rows[0]
    rows = exact(execution_id)
    if not rows:
        rows = by_prefix(execution_id)
        if len(rows) > 1:
            raise NotFoundError(f"Execution id prefix {execution_id!r} is ambiguous; give more characters.")
    if not rows:
        raise NotFoundError(f"No execution {execution_id!r}. See `ferry executions list` for recent ids.")
    return rows[0]


class ReadRecords(Protocol):
    """What read commands use: ``Records`` and ``SqliteReader`` both have it."""

    def list_executions(self, limit: int = 20) -> list[ExecutionRecord]: ...
    def get_execution(self, execution_id: str | None = None) -> ExecutionRecord: ...
    def nodes(self, execution_id: str) -> list[NodeRecord]: ...
    def registrations(self, kind: str, name: str | None = None, version: str | None = None) -> list[Registration]: ...
    def close(self) -> None: ...


def _columns(cls: type) -> str:
    return ", ".join(f.name for f in dataclasses.fields(cls))


class SqliteReader:
    """The records of a SQLite database, read with ``sqlite3``: nothing is created or changed."""

    def __init__(self, path: str) -> None:
        import sqlite3

        self.path = path
        self._conn: Any = None
        if not os.path.exists(path):
            return  # no database yet: no executions (reading creates nothing)
        try:
            self._conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=30, check_same_thread=False)
        except sqlite3.Error as exc:
            raise ConfigError(f"Could not open the records database sqlite:///{path} ({exc}). Check that the "
                              "file is readable, or set FERRY_DATABASE_URL to another path.") from exc

    def schema_version(self) -> int:
        """The database's schema version (0: none yet, or no database)."""
        import sqlite3

        if self._conn is None:
            return SCHEMA_READ
        try:
            row = self._conn.execute("SELECT max(version) FROM ferry_schema").fetchone()
        except sqlite3.OperationalError:  # no ferry_schema table: a database never migrated
            return 0
        return int(row[0] or 0)

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        if self._conn is None:
            return []
        return list(self._conn.execute(sql, params).fetchall())

    def list_executions(self, limit: int = 20) -> list[ExecutionRecord]:
        rows = self._rows(f"SELECT {_columns(ExecutionRecord)} FROM executions ORDER BY started DESC LIMIT ?",
                          (limit,))
        return [ExecutionRecord(*row) for row in rows]

    def get_execution(self, execution_id: str | None = None) -> ExecutionRecord:
        select = f"SELECT {_columns(ExecutionRecord)} FROM executions"
        escaped = (execution_id or "").replace("/", "//").replace("%", "/%").replace("_", "/_")
        return resolve_execution(
            execution_id, lambda: self.list_executions(1),
            lambda i: [ExecutionRecord(*r) for r in self._rows(f"{select} WHERE id = ?", (i,))],
            lambda i: [ExecutionRecord(*r) for r in self._rows(f"{select} WHERE id LIKE ? ESCAPE '/'",
                                                               (escaped + "%",))])

    def nodes(self, execution_id: str) -> list[NodeRecord]:
        rows = self._rows(f"SELECT {_columns(NodeRecord)} FROM nodes WHERE execution_id = ? "
                          "ORDER BY started, path, attempt", (execution_id,))
        return [NodeRecord(*row) for row in rows]

    def registrations(self, kind: str, name: str | None = None, version: str | None = None) -> list[Registration]:
        sql, params = f"SELECT {_columns(Registration)} FROM registrations WHERE kind = ?", [kind]
        if name is not None:
            sql, params = sql + " AND name = ?", [*params, name]
        if version is not None:
            sql, params = sql + " AND version = ?", [*params, version]
        return [Registration(*row) for row in self._rows(sql + " ORDER BY created DESC, name", tuple(params))]

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def open_for_reading(url: str) -> ReadRecords:
    """Records to read: ``sqlite3`` directly for a SQLite database at a known schema, else ``Records``."""
    if url.startswith("sqlite:///"):
        reader = SqliteReader(url[len("sqlite:///"):])
        try:
            if reader.schema_version() >= SCHEMA_READ:
                return reader
        except Exception:  # noqa: BLE001 - locked, damaged or foreign: Records says what is wrong
            pass
        reader.close()
    from ferry.engine.records import Records

    return Records(url)
