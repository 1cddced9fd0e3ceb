"""What the HTTP API and the console both do, as plain methods returning JSON-ready data.

The service holds the engine's settings only (the metadata store and the records): it reads specs,
records, meta values, error documents and logs, never the data behind a reference. Launches are
queued (``engine.execution.enqueue``) and run by the engine loop (``engine.queue.EngineLoop``).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import time
from collections import OrderedDict
from typing import Any

from flyteidl.admin import launch_plan_pb2, task_pb2, workflow_pb2
from flyteidl.core import interface_pb2

from ferry.config import Settings
from ferry.engine.execution import enqueue, prepare
from ferry.engine.queue import EngineLoop, owner_gone
from ferry.engine.records import ExecutionRecord, NodeRecord, Records, Registration
from ferry.engine.registry import Bundle, NotRegisteredError, Registry
from ferry.engine.spec import Closure, node_kind, node_label, parse_closure
from ferry.errors import FerryError, ObjectNotFoundError, UnsafePathError
from ferry.layout import CLOSURE, ERROR, INPUTS, LOGS, OUTPUTS, ErrorInfo, parse_error_document
from ferry.literals import LiteralMap, parse_literal_map, references
from ferry.server.values import meta_value, meta_values, plain, to_literal_map, type_json
from ferry.storage import join, read_bytes
from ferry.storage.io import outside_stores

STATUSES = ("queued", "running", "succeeded", "failed", "aborted")
KINDS = {"tasks": "task", "workflows": "workflow", "launchplans": "launch plan"}
MAX_PAGE = 500


class RequestError(FerryError):
    """A request the server refuses; ``status`` is its HTTP status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Service:
    def __init__(self, settings: Settings, loop: EngineLoop | None = None, executor: str = "process",
                 *, open_to_all: bool = True) -> None:
        self.settings = settings
        self.open_to_all = open_to_all  # no token: whoever reaches it launches (no registrations, no local files)
        self.loop = loop
        self.executor = executor
        self.records = Records(settings.database_url)
        self.meta = settings.options_for(settings.metadata_url)
        self._closures: OrderedDict[str, Closure] = OrderedDict()  # by execution id: immutable once recorded
        self._lock = threading.Lock()

    def close(self) -> None:
        self.records.close()

    # ---- reading the metadata store ----------------------------------------------------------

    def _read(self, uri: str) -> bytes | None:
        try:
            return read_bytes(uri, self.meta, "metadata")
        except ObjectNotFoundError:
            return None

    def _map(self, uri: str | None) -> LiteralMap | None:
        data = self._read(uri) if uri else None
        return None if data is None else parse_literal_map(data, uri or "")

    def closure(self, record: ExecutionRecord) -> Closure | None:
        with self._lock:
            if record.id in self._closures:
                self._closures.move_to_end(record.id)
                return self._closures[record.id]
        uri = record.closure_uri or join(record.metadata_prefix, CLOSURE)
        data = self._read(uri)
        if data is None:
            return None
        closure = parse_closure(data, uri)
        with self._lock:
            self._closures[record.id] = closure
            while len(self._closures) > 64:
                self._closures.popitem(last=False)
        return closure

    # ---- executions --------------------------------------------------------------------------

    def list_executions(self, *, status: str | None = None, workflow: str | None = None, since: float | None = None,
                        until: float | None = None, limit: int = 50, cursor: str | None = None) -> dict[str, Any]:
        if status is not None and status not in STATUSES:
            raise RequestError(f"Unknown status {status!r}; use one of {', '.join(STATUSES)}.")
        if not 1 <= limit <= MAX_PAGE:
            raise RequestError(f"limit must be between 1 and {MAX_PAGE}; got {limit}.")
        rows = self.records.query_executions(status=status, workflow=workflow, since=since, until=until,
                                             limit=limit + 1, after=decode_cursor(cursor) if cursor else None)
        more = len(rows) > limit
        rows = rows[:limit]
        return {"executions": [summary(r) for r in rows],
                "next": encode_cursor(rows[-1]) if more else None}

    def execution(self, execution_id: str, *, values: bool = False) -> dict[str, Any]:
        """The execution with its node tree and graph; with ``values``, each task attempt's inputs and outputs too."""
        record = self.records.get_execution(execution_id)
        nodes = self.records.nodes(record.id)
        out = summary(record)
        out.update(metadata_prefix=record.metadata_prefix, inputs=meta_values(self._map(record.inputs_uri)),
                   outputs=meta_values(self._map(record.outputs_uri)),
                   nodes=[self._attempt(n, values) for n in nodes])
        closure = self.closure(record)
        out["graph"] = graph(closure, nodes) if closure is not None else None
        return out

    def _attempt(self, node: NodeRecord, values: bool, full: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": node.path, "attempt": node.attempt + 1, "kind": node.kind, "label": node.label,
            "status": node.status, "started": node.started, "ended": node.ended,
            "duration": None if node.ended is None else node.ended - node.started,
            "worker": node.detail if node.kind == "task" else None,
            "detail": node.detail if node.kind != "task" else None,
            "error": node.error.strip().splitlines()[0] if node.error and node.error.strip() else None,
        }
        if (values or full) and node.kind == "task" and node.prefix:
            out["inputs"] = meta_values(node.meta(INPUTS, self._read))
            out["outputs"] = meta_values(node.meta(OUTPUTS, self._read))
        if full:
            out["prefix"] = node.prefix
            out["error"] = self._error(node)
            logs = self._read(join(node.prefix, LOGS)) if node.kind == "task" and node.prefix else None
            out["logs"] = logs.decode(errors="replace") if logs is not None else None
        return out

    def _error(self, node: NodeRecord) -> dict[str, Any] | None:
        """The attempt's error document (code, origin, retryable, the message with its traceback)."""
        data = self._read(join(node.prefix, ERROR)) if node.kind == "task" and node.prefix else None
        if data is not None:
            info = ErrorInfo.from_document(parse_error_document(data, join(node.prefix or "", ERROR)))
            return {"message": info.message, "code": info.code, "origin": info.origin, "retryable": info.retryable}
        if node.error:
            return {"message": node.error, "code": "", "origin": "system", "retryable": None}
        return None

    def node(self, execution_id: str, path: str, attempt: int | None = None) -> dict[str, Any]:
        """Every attempt of one node (or just ``attempt``, 1-based) with meta values, error document and logs."""
        record = self.records.get_execution(execution_id)
        nodes = [n for n in self.records.nodes(record.id) if n.path == path]
        if not nodes:
            known = sorted({n.path for n in self.records.nodes(record.id)})
            raise RequestError(f"Execution {record.id} has no node {path!r}; its nodes: "
                               f"{', '.join(known[:30]) or 'none yet'}{' ...' if len(known) > 30 else ''}.", 404)
        chosen = [n for n in nodes if attempt is None or n.attempt + 1 == attempt]
        if not chosen:
            raise RequestError(f"Node {path} of execution {record.id} has attempts "
                               f"{', '.join(str(n.attempt + 1) for n in nodes)}; not {attempt}.", 404)
        return {"execution": record.id, "path": path, "label": nodes[0].label, "kind": nodes[0].kind,
                "attempts": [self._attempt(n, True, full=True) for n in chosen]}

    def logs(self, execution_id: str, path: str | None = None, attempt: int | None = None) -> dict[str, Any]:
        record = self.records.get_execution(execution_id)
        nodes = [n for n in self.records.nodes(record.id) if n.kind == "task" and n.prefix]
        chosen = [n for n in nodes if (path is None or n.path == path) and (attempt is None or n.attempt + 1 == attempt)]
        if not chosen:
            known = ", ".join(sorted({n.path for n in nodes})) or "none"
            raise RequestError(f"Execution {record.id} has no task attempt {path or ''}"
                               f"{f' attempt {attempt}' if attempt else ''}; its task nodes: {known}.", 404)
        out = []
        for n in chosen:
            data = self._read(join(n.prefix or "", LOGS))
            out.append({"path": n.path, "attempt": n.attempt + 1, "label": n.label, "status": n.status,
                        "logs": data.decode(errors="replace") if data is not None else ""})
        return {"execution": record.id, "attempts": out}

    # ---- launching and controlling -----------------------------------------------------------

    def launch(self, body: dict[str, Any]) -> dict[str, Any]:
        """Queue an execution of a launch plan with typed JSON inputs; nothing is recorded if they are wrong."""
        name = body.get("launch_plan")
        if not isinstance(name, str) or not name:
            raise RequestError('Give the launch plan to run: {"launch_plan": "NAME" or "NAME@VERSION", "inputs": {...}}.')
        inputs = body.get("inputs")
        inputs = {} if inputs is None else inputs
        if not isinstance(inputs, dict):
            raise RequestError('"inputs" must be a JSON object: {"name": value, ...}.')
        unknown = sorted(set(body) - {"launch_plan", "version", "inputs", "raw_output_prefix"})
        if unknown:
            raise RequestError(f"Unknown field(s) {unknown}; a launch takes launch_plan, version, inputs, "
                               "raw_output_prefix.")
        plan, _, version = name.partition("@")
        prefix = _prefix(body)
        launch = prepare(plan, body.get("version") or version or None, raw_output_prefix=prefix,
                         settings=self.settings)
        try:
            types = {n: p.var.type for n, p in launch.launch_plan.spec.default_inputs.parameters.items()}
            launch.refuse_fixed(inputs)
            literals = to_literal_map(inputs, types, launch.name)
            if self.open_to_all:
                _refuse_local_files(literals, (self.settings.raw_output_prefix, self.settings.persistent_url,
                                               launch.raw_output_prefix))
        except BaseException:
            launch.records.close()
            raise
        record = enqueue(launch, literals, executor=self.executor)
        if self.loop is not None:
            self.loop.wake()
        return {**summary(record), "launch_plan": launch.name}

    def abort(self, execution_id: str) -> dict[str, Any]:
        record = self.records.get_execution(execution_id)
        if record.status not in ("queued", "running"):
            raise RequestError(f"Execution {record.id} is {record.status}; only a queued or running one can be "
                               "aborted.", 409)
        if record.status == "running" and record.owner is None:
            raise RequestError(f"Execution {record.id} is run by a `ferry run` / `ferry launch` process, not by a "
                               "server; stop that process (Ctrl-C) to abort it.", 409)
        status = self.records.request_abort(record.id)
        if self.loop is not None:
            self.loop.abort_now(record.id)
        return {"id": record.id, "status": status, "abort_requested": True}

    def resume(self, execution_id: str, force: bool = False) -> dict[str, Any]:
        """Queue a stopped execution again; the server that claims it resumes it (finished nodes are not run again)."""
        record = self.records.get_execution(execution_id)
        allowed: tuple[str, ...] = ("failed", "aborted")
        if record.status == "running":
            if record.owner is not None and owner_gone(record, time.time()) is None:
                raise RequestError(f"Execution {record.id} is running on server {record.owner}.", 409)
            if record.owner is None and not force:
                raise RequestError(f"Execution {record.id} is recorded as running by a `ferry run` / `ferry launch` "
                                   "process, which may still be alive. If it is gone, resume with "
                                   '{"force": true}.', 409)
            allowed = ("running",)
        elif record.status not in allowed:
            raise RequestError(f"Execution {record.id} is {record.status}; only a failed, aborted or stopped "
                               "execution can be resumed.", 409)
        if not self.records.requeue(record.id, allowed):
            raise RequestError(f"Execution {record.id} changed meanwhile; look at it again.", 409)
        if self.loop is not None:
            self.loop.wake()
        return summary(self.records.get_execution(record.id))

    def relaunch(self, execution_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """A new execution of the same launch-plan version with the same inputs (and raw-output prefix override)."""
        record = self.records.get_execution(execution_id)
        if not record.launch_plan:
            raise RequestError(f"Execution {record.id} records no launch plan; launch its workflow anew.", 409)
        unknown = sorted(set(body) - {"raw_output_prefix"})
        if unknown:
            raise RequestError(f"Unknown field(s) {unknown}; a relaunch takes raw_output_prefix.")
        name, _, version = record.launch_plan.partition("@")
        prefix = _prefix(body) or (record.raw_output_prefix if record.raw_output_source == "execution" else None)
        old = self._map(record.inputs_uri) or LiteralMap()
        launch = prepare(name, version or None, raw_output_prefix=prefix, settings=self.settings)
        given = LiteralMap()
        params = launch.launch_plan.spec.default_inputs.parameters
        for key, lit in old.literals.items():
            if key in params:
                given.literals[key].CopyFrom(lit)
        new = enqueue(launch, given, executor=self.executor)
        if self.loop is not None:
            self.loop.wake()
        return {**summary(new), "relaunch_of": record.id}

    # ---- registered specs --------------------------------------------------------------------

    def register(self, body: dict[str, Any]) -> dict[str, Any]:
        """Register a bundle of serialized flyteidl admin specs (base64): tasks, workflows, launch plans."""
        if self.open_to_all:  # a spec holds a command: anyone who can reach the server could run anything as its user
            raise RequestError("This server takes no registrations: a registered spec holds a command the server "
                               "runs, so registering needs a server started with a token (--token, or "
                               "FERRY_SERVER_TOKEN). Or register on the server's machine: ferry register FILE.py.", 403)
        unknown = sorted(set(body) - {"tasks", "workflows", "launch_plans", "raw_output_prefix"})
        if unknown:
            raise RequestError(f"Unknown field(s) {unknown}; a registration takes tasks, workflows, launch_plans "
                               "(lists of base64 serialized TaskSpec / WorkflowSpec / LaunchPlan) and raw_output_prefix.")
        for field in ("tasks", "workflows", "launch_plans"):
            if not isinstance(body.get(field) or [], list):
                raise RequestError(f"{field} must be a list of base64 serialized specs; got {type(body[field]).__name__}.")
        bundle = Bundle(
            tasks=[_decode(x, task_pb2.TaskSpec(), f"tasks[{i}]") for i, x in enumerate(body.get("tasks") or [])],
            workflows=[_decode(x, workflow_pb2.WorkflowSpec(), f"workflows[{i}]")
                       for i, x in enumerate(body.get("workflows") or [])],
            launch_plans=[_decode(x, launch_plan_pb2.LaunchPlan(), f"launch_plans[{i}]")
                          for i, x in enumerate(body.get("launch_plans") or [])])
        if not bundle.entries():
            raise RequestError("The registration holds no task, workflow or launch plan.")
        report = Registry(self.settings, self.records).register(bundle, _prefix(body))
        return {"registered": report.registered, "unchanged": report.unchanged}

    def entities(self, collection: str) -> list[dict[str, Any]]:
        """Every registered entity of a kind, newest version first, with its interface as listed."""
        grouped: dict[str, list[Registration]] = {}
        for row in self.records.registrations(kind_of(collection)):
            grouped.setdefault(row.name, []).append(row)
        return [{"name": name, "version": rows[0].version, "registered": rows[0].created,
                 "versions": [r.version for r in rows], **json.loads(rows[0].interface or "{}")}
                for name, rows in sorted(grouped.items())]

    def entity(self, collection: str, name: str, version: str | None = None) -> dict[str, Any]:
        """One registered entity (newest version unless ``version``) with its typed interface and descriptions."""
        kind = kind_of(collection)
        row = Registry(self.settings, self.records).latest(kind, name, version)
        versions = [{"version": r.version, "registered": r.created} for r in self.records.registrations(kind, name)]
        out: dict[str, Any] = {"kind": kind, "name": name, "version": row.version, "registered": row.created,
                               "versions": versions, "uri": row.uri}
        data = self._read(row.uri)
        if data is None:
            raise NotRegisteredError(f"The spec of {kind} {name}@{row.version} is missing from the metadata store "
                                     f"({row.uri}).")
        if kind == "launch plan":
            lp = launch_plan_pb2.LaunchPlan.FromString(data)
            spec = lp.spec
            out.update(workflow={"name": spec.workflow_id.name, "version": spec.workflow_id.version},
                       raw_output_prefix=spec.raw_output_data_config.output_location_prefix or None,
                       registration_raw_output_prefix=row.raw_output_prefix,
                       settings_raw_output_prefix=self.settings.raw_output_prefix,
                       inputs={n: _parameter(p) for n, p in sorted(spec.default_inputs.parameters.items())},
                       fixed_inputs={n: meta_value(v) for n, v in sorted(spec.fixed_inputs.literals.items())})
            try:
                wf = self.entity("workflows", spec.workflow_id.name, spec.workflow_id.version)
                out["outputs"] = wf["outputs"]
            except NotRegisteredError:
                out["outputs"] = None
        else:
            template = (task_pb2.TaskSpec if kind == "task" else workflow_pb2.WorkflowSpec).FromString(data).template
            out.update(inputs=_variables(template.interface.inputs), outputs=_variables(template.interface.outputs))
            if kind == "workflow":
                ident = f"{name}@{row.version}"
                out["launch_plans"] = sorted({r.name for r in self.records.registrations("launch plan")
                                              if json.loads(r.interface or "{}").get("workflow") == ident})
        return out


def kind_of(collection: str) -> str:
    if collection not in KINDS:
        raise RequestError(f"Unknown kind {collection!r}; use {', '.join(KINDS)}.", 404)
    return KINDS[collection]


def _refuse_local_files(literals: LiteralMap, stores: tuple[str, ...]) -> None:
    """On a server without a token, a file:// input must be in one of its file stores: whoever reaches it must not
    make a task read any file of the server's machine (``/etc/passwd``, its keys) by naming it."""
    for uri in (uri for lit in literals.literals.values() for uri in references(lit)):
        try:
            outside = outside_stores(uri, stores)
        except UnsafePathError as exc:  # inside a store by its text, out of it through a link or '..'
            raise RequestError(str(exc), 403) from None
        if outside:
            raise RequestError(f"{uri} is a file of the server's machine outside its stores; a launch through the "
                               "API passes data already in a store (upload it with `ferry datasets upload`, or use "
                               "a URI of the raw or persistent store).", 403)


def _prefix(body: dict[str, Any]) -> str | None:
    """The body's ``raw_output_prefix``: None, or the URL of a store this server knows (a relative path would
    be the server's own working folder, which no caller means)."""
    from ferry.storage.registry import known_protocols, protocol_of

    prefix = body.get("raw_output_prefix")
    if prefix is None or prefix == "":
        return None
    example = 'e.g. "s3://bucket/prefix" or "file:///data/raw"'
    if not isinstance(prefix, str):
        raise RequestError(f'"raw_output_prefix" must be a URL string, {example}; got {type(prefix).__name__}.')
    if "://" not in prefix and not prefix.startswith("/"):
        raise RequestError(f'"raw_output_prefix" {prefix!r} is relative; give a URL, {example}.')
    if protocol_of(prefix) not in known_protocols():
        raise RequestError(f'"raw_output_prefix" {prefix!r}: unknown storage protocol {protocol_of(prefix)!r}; '
                           f"known: {', '.join(known_protocols())}.")
    return prefix


def _decode(text: Any, message: Any, where: str) -> Any:
    if not isinstance(text, str):
        raise RequestError(f"{where}: expected base64 text of a serialized spec.")
    try:
        message.ParseFromString(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError, Exception) as exc:  # noqa: BLE001 - protobuf's DecodeError too
        raise RequestError(f"{where}: not a base64 serialized {type(message).__name__} ({exc}).") from None
    return message


def _variables(variables: interface_pb2.VariableMap) -> dict[str, Any]:
    return {n: {"type": type_json(v.type), "description": v.description} for n, v in sorted(variables.variables.items())}


def _parameter(p: interface_pb2.Parameter) -> dict[str, Any]:
    has_default = p.HasField("default")
    return {"type": type_json(p.var.type), "description": p.var.description, "required": not has_default,
            "default": meta_value(p.default) if has_default else None,
            "default_json": plain(meta_value(p.default)) if has_default else None}


def summary(r: ExecutionRecord) -> dict[str, Any]:
    return {"id": r.id, "workflow": r.workflow, "launch_plan": r.launch_plan, "status": r.status,
            "queued": r.queued, "started": r.started, "ended": r.ended, "duration": r.duration,
            "executor": r.executor, "raw_output_prefix": r.raw_output_prefix,
            "raw_output_source": r.raw_output_source, "error": r.error, "owner": r.owner, "claims": r.claims,
            "abort_requested": r.abort_requested is not None}


def encode_cursor(r: ExecutionRecord) -> str:
    return base64.urlsafe_b64encode(f"{r.started!r}|{r.id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        started, _, ident = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().partition("|")
        return float(started), ident
    except (ValueError, UnicodeDecodeError):
        raise RequestError(f"cursor {cursor!r} is not one this server handed out; start again without it.") from None


_ELEMENT = re.compile(r"^(.*)-(\d+)$")


def graph(closure: Closure, nodes: list[NodeRecord]) -> dict[str, Any]:
    """The primary workflow's nodes and edges, each node with its status (a map node with its elements' counts)."""
    latest: dict[str, NodeRecord] = {}
    elements: dict[str, dict[str, str]] = {}
    for n in nodes:
        if n.path not in latest or n.attempt >= latest[n.path].attempt:
            latest[n.path] = n
    for path, n in latest.items():
        match = _ELEMENT.match(path)
        if match and n.kind == "task":
            elements.setdefault(match.group(1), {})[path] = n.status
    out = []
    primary = closure.primary
    for node_id, node in primary.nodes.items():
        kind = node_kind(node)
        record = latest.get(node_id)
        entry: dict[str, Any] = {"id": node_id, "label": node_label(node), "kind": kind,
                                 "upstream": sorted(primary.upstream[node_id]),
                                 "status": record.status if record else "pending"}
        if kind == "task":
            entry["task"] = node.task_node.reference_id.name
        if kind == "map":
            counts: dict[str, int] = {}
            for status in elements.get(node_id, {}).values():
                counts[status] = counts.get(status, 0) + 1
            entry["elements"] = counts
        out.append(entry)
    return {"workflow": primary.name, "nodes": out}
