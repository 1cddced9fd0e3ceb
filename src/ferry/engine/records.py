"""Execution records: every execution and every node attempt, in SQLite or PostgreSQL.

One code path through SQLAlchemy Core, with numbered schema migrations kept
in ``MIGRATIONS`` and applied on connect. SQLite runs in WAL mode with
``synchronous=NORMAL`` so that a record write stays well under a millisecond;
a crash can lose at most the last few records, never the metadata store's
outputs, from which ``resume`` rebuilds what finished.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from ferry.engine.rows import (  # the rows live in a module without SQLAlchemy, for the fast read path
    SCHEMA_READ,
    ExecutionRecord,
    NodeRecord,
    NotFoundError,
    Registration,
    resolve_execution,
)
from ferry.errors import ConfigError, FerryError, StoreUnavailableError, install_line, redact

try:  # SQLAlchemy is imported lazily by callers; this module is only loaded by the engine.
    import sqlalchemy as sa
except ImportError as exc:  # pragma: no cover - a dependency
    raise ConfigError("ferry's execution records need SQLAlchemy: pip install 'sqlalchemy>=2.0'") from exc

_meta = sa.MetaData()
EXECUTIONS = sa.Table(
    "executions", _meta,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("workflow", sa.Text, nullable=False),
    sa.Column("reference", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started", sa.Float, nullable=False),
    sa.Column("ended", sa.Float),
    sa.Column("metadata_prefix", sa.Text, nullable=False),
    sa.Column("raw_output_prefix", sa.Text, nullable=False),
    sa.Column("executor", sa.String(32), nullable=False),
    sa.Column("inputs_uri", sa.Text),
    sa.Column("outputs_uri", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("launch_plan", sa.Text),  # name@version of the launch plan it ran
    sa.Column("raw_output_source", sa.String(32)),  # which setting chose the raw-output prefix
    sa.Column("closure_uri", sa.Text),  # the compiled workflow it ran (resume reads it)
    sa.Column("queued", sa.Float),  # when a server queued it (None: started by `ferry run` / `ferry launch`)
    sa.Column("owner", sa.Text),  # the server running it ("host:pid:token"), while it holds the lease
    sa.Column("lease_until", sa.Float),  # the owner renews this while it runs the execution
    sa.Column("claims", sa.Integer),  # how many times a server took it from the queue (> 0: the next run resumes)
    sa.Column("abort_requested", sa.Float),  # when an abort was asked for; its owner stops it
    sa.Index("executions_started", "started"),
    sa.Index("executions_status", "status"),
    sa.Index("executions_workflow", "workflow", "started"),
)
NODES = sa.Table(
    "nodes", _meta,
    sa.Column("execution_id", sa.String(64), primary_key=True),
    sa.Column("path", sa.Text, primary_key=True),
    sa.Column("attempt", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("label", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started", sa.Float, nullable=False),
    sa.Column("ended", sa.Float),
    sa.Column("prefix", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("detail", sa.Text),
    # an in-process attempt's small inputs.pb / outputs.pb, kept here instead of as objects (see layout.py)
    sa.Column("inputs", sa.LargeBinary),
    sa.Column("outputs", sa.LargeBinary),
)
REGISTRATIONS = sa.Table(
    "registrations", _meta,
    sa.Column("kind", sa.String(16), primary_key=True),  # "task" | "workflow" | "launch plan"
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("version", sa.String(128), primary_key=True),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("uri", sa.Text, nullable=False),  # the spec in the metadata store
    sa.Column("digest", sa.String(64), nullable=False),  # sha256 of the spec: same version, same content
    sa.Column("raw_output_prefix", sa.Text),  # the registration's default (ferry register --raw-output-prefix)
    sa.Column("interface", sa.Text),  # JSON {"inputs": {name: type}, "outputs": {...}} for listings
    sa.Index("registrations_created", "created"),
)
SCHEMA_VERSION = sa.Table("ferry_schema", sa.MetaData(), sa.Column("version", sa.Integer, nullable=False))


FLUSH_SECONDS = 0.05  # node records are written at most this late...
FLUSH_ROWS = 256  # ...or as soon as this many wait (by the thread adding the last: no hand-off to the writer)


class _DriverSql:
    """A statement compiled once to the driver's SQL and run for many rows without SQLAlchemy's per-row
    work (which cost as much as SQLite itself: 16 µs a node record, against 9 µs this way)."""

    def __init__(self, statement: Any, dialect: Any) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql: str = compiled.string
        self.positional: bool = compiled.positional
        names = list(compiled.positiontup) if compiled.positional else list(compiled.binds)
        binds = compiled.binds
        # per parameter: its name, its value when a row has none (a literal of the statement), the type's conversion
        self.params = [(n, binds[n].value, binds[n].type.dialect_impl(dialect).bind_processor(dialect)) for n in names]
        self.names = names

    def execute(self, conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
        def values(row: dict[str, Any]) -> list[Any]:
            out = []
            for name, default, convert in self.params:
                v = row.get(name, default)
                out.append(v if convert is None or v is None else convert(v))
            return out

        if self.positional:
            conn.exec_driver_sql(self.sql, [tuple(values(row)) for row in rows])
        else:
            conn.exec_driver_sql(self.sql, [dict(zip(self.names, values(row), strict=True)) for row in rows])


def _v1(conn: sa.Connection) -> None:
    _meta.create_all(conn, tables=[EXECUTIONS, NODES])


def _v2(conn: sa.Connection) -> None:
    """Registered specs; executions say which launch plan, raw-prefix source and closure they ran."""
    _meta.create_all(conn, tables=[REGISTRATIONS])
    have = {c["name"] for c in sa.inspect(conn).get_columns("executions")}
    for column in ("launch_plan", "raw_output_source", "closure_uri"):
        if column not in have:  # a database created before these columns existed
            conn.execute(sa.text(f"ALTER TABLE executions ADD COLUMN {column} TEXT"))


def _v3(conn: sa.Connection) -> None:
    """The server's queue: queued executions, an owner holding a lease, abort requests; indexes for listings."""
    have = {c["name"] for c in sa.inspect(conn).get_columns("executions")}
    for column, kind in (("queued", "FLOAT"), ("owner", "TEXT"), ("lease_until", "FLOAT"), ("claims", "INTEGER"),
                         ("abort_requested", "FLOAT")):
        if column not in have:
            conn.execute(sa.text(f"ALTER TABLE executions ADD COLUMN {column} {kind}"))
    conn.execute(sa.text("CREATE INDEX IF NOT EXISTS executions_status ON executions (status)"))
    conn.execute(sa.text("CREATE INDEX IF NOT EXISTS executions_workflow ON executions (workflow, started)"))


def _v4(conn: sa.Connection) -> None:
    """Node records carry the small meta values of in-process attempts."""
    have = {c["name"] for c in sa.inspect(conn).get_columns("nodes")}
    blob = sa.LargeBinary().compile(dialect=conn.dialect)
    for column in ("inputs", "outputs"):
        if column not in have:
            conn.execute(sa.text(f"ALTER TABLE nodes ADD COLUMN {column} {blob}"))


# Append-only: (version, migration). A database at version N gets every migration after N.
MIGRATIONS: list[tuple[int, Callable[[sa.Connection], None]]] = [(1, _v1), (2, _v2), (3, _v3), (4, _v4)]
assert MIGRATIONS[-1][0] >= SCHEMA_READ, "ferry.engine.rows reads columns this schema doesn't have yet"


__all__ = ["ExecutionRecord", "MIGRATIONS", "NodeRecord", "NotFoundError", "Records", "Registration"]

CONNECT_TIMEOUT = 10  # seconds; libpq waits forever by default for a host that drops packets


def engine_url(url: str) -> str:
    """FERRY_DATABASE_URL -> a SQLAlchemy URL (PostgreSQL through psycopg 3)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    if url.startswith(("sqlite:///", "postgresql+")):
        return url
    raise ConfigError(
        f"Unsupported records database URL {redact(url)!r}. Use sqlite:///path/to/ferry.db or "
        "postgresql://user:password@host:port/database (FERRY_DATABASE_URL)."
    )


def database_error(url: str, exc: BaseException) -> FerryError:
    """One line for a records database that can't be reached or used: what, why and the fix, no password."""
    cause = getattr(exc, "orig", None) or exc
    detail = " ".join(str(cause).split()) or type(cause).__name__
    db = f"records database {redact(url)}"
    # libpq reports a refused login or a missing database with no SQLSTATE, only its message.
    state = str(getattr(cause, "sqlstate", None) or "")
    if state.startswith("28") or "authentication failed" in detail:  # invalid authorization
        return ConfigError(f"The {db} refused the login ({detail}). Fix the user and password in FERRY_DATABASE_URL.")
    if state == "3D000" or ("database" in detail and "does not exist" in detail):  # invalid catalog name
        return ConfigError(f"The {db} does not exist ({detail}). Create it (createdb NAME) or fix the name in "
                           "FERRY_DATABASE_URL.")
    if state == "42501":  # insufficient privilege
        return ConfigError(f"The {db} does not let this user create ferry's tables ({detail}). Grant it CREATE, "
                           "or use a user that has it.")
    if url.startswith("sqlite"):
        return ConfigError(f"Could not open the {db} ({detail}). Check that the folder exists and is writable, "
                           "or set FERRY_DATABASE_URL to another path.")
    return StoreUnavailableError(
        f"Could not reach the {db} ({detail}). Check that PostgreSQL is running and that the host and port in "
        "FERRY_DATABASE_URL are right."
    )


@contextlib.contextmanager
def _taking_turns(path: str) -> Iterator[None]:
    """Processes opening one SQLite file at once set it up in turn, through a lock file beside it: switching it to
    WAL and creating the tables race otherwise (16 processes on a new file: most failed with "table ... already
    exists"). PostgreSQL (no ``path``) needs none: ``_migrate`` takes an advisory lock there."""
    if not path or path == ":memory:":
        yield
        return
    fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # drops the lock


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class Records:
    """Execution and node-attempt records, safe to use from several threads and processes."""

    def __init__(self, url: str) -> None:
        target = engine_url(url)
        self.sqlite = target.startswith("sqlite")
        path = target[len("sqlite:///"):] if self.sqlite else ""  # the SQLite file
        try:
            if self.sqlite:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            connect_args = {} if self.sqlite else {"connect_timeout": CONNECT_TIMEOUT}
            self.engine = sa.create_engine(target, pool_pre_ping=not self.sqlite, connect_args=connect_args)
        except ImportError as exc:
            raise ConfigError(f"The records database {redact(url)!r} needs a driver: {install_line('postgres')} ({exc}).") from exc
        except (ValueError, sa.exc.ArgumentError) as exc:
            raise ConfigError(f"The records database URL {redact(url)!r} is malformed ({exc}). Use "
                              "postgresql://user:password@host:port/database (FERRY_DATABASE_URL).") from exc
        except OSError as exc:
            raise database_error(url, exc) from exc
        if self.sqlite:
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        self._lock = threading.Lock()  # SQLite allows one writer; serialize this process's writes
        self._pending: list[tuple[Any, dict[str, Any]]] = []  # node records not yet written
        self._pending_cond = threading.Condition()
        self._writer: threading.Thread | None = None
        self._closing = False
        try:
            with _taking_turns(path):
                self._conn = self.engine.connect()
                self._migrate()
        except (sa.exc.DBAPIError, OSError) as exc:  # OSError: the lock file beside an SQLite file
            self.engine.dispose()
            raise database_error(url, exc) from exc
        self._prepare()

    def _migrate(self) -> None:
        """Bring the schema up to date; engines starting at once take turns (an advisory lock on PostgreSQL,
        ``_taking_turns`` on SQLite)."""
        with self._lock, self._conn.begin():
            if not self.sqlite:
                self._conn.execute(sa.text("SELECT pg_advisory_xact_lock(7347301)"))  # "ferry" on a phone pad
            SCHEMA_VERSION.create(self._conn, checkfirst=True)
            current = self._conn.execute(sa.select(sa.func.max(SCHEMA_VERSION.c.version))).scalar() or 0
            for version, migration in MIGRATIONS:
                if version > current:
                    migration(self._conn)
                    self._conn.execute(SCHEMA_VERSION.insert().values(version=version))

    def _insert(self, table: sa.Table) -> Any:
        """An INSERT that can say what to do on conflict (both dialects spell it the same way)."""
        from sqlalchemy.dialects import postgresql, sqlite

        return (sqlite if self.sqlite else postgresql).insert(table)

    def _prepare(self) -> None:
        """Build the statements once; executing them with parameters reuses SQLAlchemy's compiled form."""
        upsert = self._insert(NODES)
        keys = ["execution_id", "path", "attempt"]
        keep_detail = sa.func.coalesce(upsert.excluded.detail, NODES.c.detail)
        # an attempt's clock starts when it leaves the executor's queue: "running" after "queued" moves it
        start = sa.case((NODES.c.status == "queued", upsert.excluded.started), else_=NODES.c.started)
        keep_inputs = sa.func.coalesce(upsert.excluded.inputs, NODES.c.inputs)
        self._node_running = upsert.on_conflict_do_update(
            index_elements=keys, set_={"status": upsert.excluded.status, "detail": keep_detail, "started": start,
                                       "inputs": keep_inputs})
        self._node_ended = upsert.on_conflict_do_update(
            index_elements=keys, set_={"status": upsert.excluded.status, "detail": keep_detail,
                                       "ended": upsert.excluded.ended, "error": upsert.excluded.error,
                                       "inputs": keep_inputs,
                                       "outputs": sa.func.coalesce(upsert.excluded.outputs, NODES.c.outputs)})
        self._node_sql = {statement: _DriverSql(statement, self._conn.dialect)
                          for statement in (self._node_running, self._node_ended)}
        self._finish = EXECUTIONS.update().where(EXECUTIONS.c.id == sa.bindparam("execution_id"))
        self._finish_owned = EXECUTIONS.update().where(EXECUTIONS.c.id == sa.bindparam("execution_id"),
                                                       EXECUTIONS.c.owner == sa.bindparam("held_by"))

    def _write(self, statement: Any, params: dict[str, Any] | list[dict[str, Any]] | None = None) -> None:
        self.flush()  # node records first, so the database sees events in the order they happened
        with self._lock, self._conn.begin():
            self._conn.execute(statement, params or {})

    def flush(self) -> None:
        """Write the node records waiting in this process, in one transaction. Any thread may: a batch is
        taken under the connection's lock, so batches reach the database in the order they were taken."""
        with self._lock:
            with self._pending_cond:
                batch, self._pending = self._pending, []
            if not batch:
                return
            with self._conn.begin():
                for statement, group in itertools.groupby(batch, key=lambda item: item[0]):
                    self._node_sql[statement].execute(self._conn, [params for _, params in group])

    def _write_behind(self) -> None:
        """The writer thread: what waits leaves every FLUSH_SECONDS, in one transaction (a full batch is written
        sooner, by the thread that fills it)."""
        while True:
            with self._pending_cond:
                self._pending_cond.wait_for(lambda: self._closing, timeout=FLUSH_SECONDS)
                closing = self._closing
            self.flush()
            if closing:
                return

    def create_execution(self, rec: ExecutionRecord) -> None:
        self._write(EXECUTIONS.insert(), dict(rec.__dict__))

    def finish_execution(self, execution_id: str, status: str, outputs_uri: str | None = None, error: str | None = None,
                         *, owner: str | None = None) -> None:
        """Record how an execution ended. With ``owner`` (a server's), only while that server still owns it: a
        server that lost its lease must not overwrite the row of the server that took the execution over."""
        row = {"execution_id": execution_id, "status": status, "ended": time.time(), "outputs_uri": outputs_uri,
               "error": error}
        if owner is None:
            self._write(self._finish, row)
        else:
            self._write(self._finish_owned, {**row, "held_by": owner})

    def abort_open_nodes(self, execution_id: str, why: str) -> None:
        """Attempts still queued or running when their execution is aborted end now, as aborted."""
        t = NODES.c
        self._write(NODES.update().where(t.execution_id == execution_id, t.status.in_(("queued", "running"))).values(
            status="aborted", ended=time.time(), error=why))

    def set_status(self, execution_id: str, status: str) -> None:
        self._write(self._finish, {"execution_id": execution_id, "status": status, "ended": None})

    def node(self, execution_id: str, path: str, attempt: int, kind: str, label: str, status: str,
             prefix: str | None = None, error: str | None = None, detail: str | None = None,
             ended: float | None = None, inputs: bytes | None = None, outputs: bytes | None = None) -> None:
        """Insert or update one node attempt. 'queued' (waiting for the executor) and 'running' leave it
        open, the clock starting again when a queued attempt runs; anything else stops it (at ``ended``
        when known, e.g. when the outputs of an attempt adopted after a resume were written).
        ``inputs`` / ``outputs``: the attempt's serialized LiteralMaps when they are kept here, not in the store."""
        now = time.time()
        running = status in ("queued", "running")
        row = {
            "execution_id": execution_id, "path": path, "attempt": attempt, "kind": kind, "label": label,
            "status": status, "started": now, "ended": None if running else (ended or now), "prefix": prefix,
            "error": error, "detail": detail, "inputs": inputs, "outputs": outputs,
        }
        with self._pending_cond:  # written behind, in batches: an attempt doesn't wait for the database
            self._pending.append((self._node_running if running else self._node_ended, row))
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_behind, name="ferry-records", daemon=True)
                self._writer.start()
            full = len(self._pending) >= FLUSH_ROWS
        if full:  # written by this thread: handing the batch to the writer cost GIL hand-offs per row
            self.flush()

    def _rows(self, statement: Any) -> list[Any]:
        self.flush()  # read what this process has written
        with self._lock:
            rows = self._conn.execute(statement).all()
            self._conn.commit()
            return list(rows)

    def list_executions(self, limit: int = 20) -> list[ExecutionRecord]:
        rows = self._rows(sa.select(EXECUTIONS).order_by(EXECUTIONS.c.started.desc()).limit(limit))
        return [ExecutionRecord(*row) for row in rows]

    def get_execution(self, execution_id: str | None = None) -> ExecutionRecord:
        """By id (or a unique prefix of one); the most recent execution when no id is given."""
        t = EXECUTIONS.c
        return resolve_execution(
            execution_id, lambda: self.list_executions(1),
            lambda i: [ExecutionRecord(*r) for r in self._rows(sa.select(EXECUTIONS).where(t.id == i))],
            lambda i: [ExecutionRecord(*r) for r in self._rows(sa.select(EXECUTIONS).where(
                t.id.startswith(i, autoescape=True)))])

    def add_registrations(self, rows: list[Registration]) -> None:
        """Index registered specs, all in one transaction: a registration is visible whole or not at all."""
        if rows:
            self._write(self._insert(REGISTRATIONS).on_conflict_do_nothing(), [dict(r.__dict__) for r in rows])

    def registrations(self, kind: str, name: str | None = None, version: str | None = None) -> list[Registration]:
        """Registered specs of ``kind`` (by name, and version), newest first."""
        query = sa.select(REGISTRATIONS).where(REGISTRATIONS.c.kind == kind)
        if name is not None:
            query = query.where(REGISTRATIONS.c.name == name)
        if version is not None:
            query = query.where(REGISTRATIONS.c.version == version)
        rows = self._rows(query.order_by(REGISTRATIONS.c.created.desc(), REGISTRATIONS.c.name))
        return [Registration(*row) for row in rows]

    def nodes(self, execution_id: str) -> list[NodeRecord]:
        rows = self._rows(sa.select(NODES).where(NODES.c.execution_id == execution_id)
                          .order_by(NODES.c.started, NODES.c.path, NODES.c.attempt))
        return [NodeRecord(*row) for row in rows]

    # ---- listings and the server's queue --------------------------------------------------------

    def query_executions(self, *, status: str | None = None, workflow: str | None = None, since: float | None = None,
                         until: float | None = None, limit: int = 50,
                         after: tuple[float, str] | None = None) -> list[ExecutionRecord]:
        """Executions newest first, filtered; ``after`` is the (started, id) of the last row of the previous page."""
        t = EXECUTIONS.c
        query = sa.select(EXECUTIONS)
        if status is not None:
            query = query.where(t.status == status)
        if workflow is not None:
            query = query.where(t.workflow == workflow)
        if since is not None:
            query = query.where(t.started >= since)
        if until is not None:
            query = query.where(t.started < until)
        if after is not None:
            query = query.where(sa.or_(t.started < after[0], sa.and_(t.started == after[0], t.id < after[1])))
        rows = self._rows(query.order_by(t.started.desc(), t.id.desc()).limit(limit))
        return [ExecutionRecord(*row) for row in rows]

    def has_nodes(self, execution_id: str) -> bool:
        """Whether any node of the execution has started (its first attempt is recorded before it runs)."""
        return bool(self._rows(sa.select(NODES.c.path).where(NODES.c.execution_id == execution_id).limit(1)))

    def _count(self, statement: Any) -> int:
        """Run an UPDATE; how many rows it changed."""
        with self._lock, self._conn.begin():
            return int(self._conn.execute(statement).rowcount)

    def claimable(self) -> list[ExecutionRecord]:
        """Queued executions, oldest first, then running ones some server owns (its lease may have run out)."""
        t = EXECUTIONS.c
        rows = self._rows(sa.select(EXECUTIONS).where(sa.or_(
            t.status == "queued", sa.and_(t.status == "running", t.owner.is_not(None)))).order_by(t.queued, t.started))
        return [ExecutionRecord(*row) for row in rows]

    def claim(self, seen: ExecutionRecord, owner: str, lease_until: float) -> bool:
        """Take ``seen`` for ``owner`` if its row is still as it was read (a compare and swap): one claimer wins."""
        t = EXECUTIONS.c

        def same(column: Any, value: Any) -> Any:
            return column.is_(None) if value is None else column == value

        values: dict[str, Any] = {"status": "running", "owner": owner, "lease_until": lease_until, "ended": None,
                                  "claims": (seen.claims or 0) + 1}
        if seen.status == "queued" and seen.claims == 0:
            values["started"] = time.time()  # an execution starts when it first leaves the queue (enqueued with 0)
        statement = EXECUTIONS.update().where(
            t.id == seen.id, t.status == seen.status, same(t.owner, seen.owner), same(t.lease_until, seen.lease_until),
            same(t.claims, seen.claims)).values(**values)
        return self._count(statement) == 1

    def renew(self, owner: str, ids: list[str], lease_until: float) -> dict[str, float | None]:
        """Extend ``owner``'s lease on ``ids``; the ones it still holds, each with when an abort was asked for."""
        if not ids:
            return {}
        t = EXECUTIONS.c
        held = sa.and_(t.owner == owner, t.id.in_(ids), t.status == "running")
        with self._lock, self._conn.begin():
            self._conn.execute(EXECUTIONS.update().where(held).values(lease_until=lease_until))
            rows = self._conn.execute(sa.select(t.id, t.abort_requested).where(held)).all()
        return {row[0]: row[1] for row in rows}

    def request_abort(self, execution_id: str) -> str:
        """Abort a queued execution at once, or ask the server running it to stop it; its status afterwards."""
        t = EXECUTIONS.c
        now = time.time()
        if self._count(EXECUTIONS.update().where(t.id == execution_id, t.status == "queued").values(
                status="aborted", ended=now, error="aborted before it started", abort_requested=now)):
            return "aborted"
        self._count(EXECUTIONS.update().where(t.id == execution_id, t.status == "running").values(abort_requested=now))
        return self.get_execution(execution_id).status

    def requeue(self, execution_id: str, statuses: tuple[str, ...]) -> bool:
        """Put an execution whose status is one of ``statuses`` back in the queue (to be resumed); False if it isn't."""
        t = EXECUTIONS.c
        return self._count(EXECUTIONS.update().where(t.id == execution_id, t.status.in_(statuses)).values(
            status="queued", queued=time.time(), ended=None, error=None, outputs_uri=None, owner=None,
            lease_until=None, abort_requested=None)) == 1

    def close(self) -> None:
        with self._pending_cond:
            self._closing = True
            self._pending_cond.notify()
            writer = self._writer
        if writer is not None:
            writer.join()
        self.flush()
        with self._lock:
            self._conn.close()
        self.engine.dispose()
