"""``ferry --server URL ...``: launch and inspect executions through a ferry server's HTTP API.

With ``--server`` (or FERRY_SERVER) the ``launch``, ``executions``, ``workflows`` and ``launchplans``
commands talk to that server (``ferry serve``) instead of the local engine, so a team shares one
control plane; the token, if the server needs one, comes from FERRY_SERVER_TOKEN. Without it
nothing here is used. Only the standard library: no HTTP client to install.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.parse
from typing import Any

import click

from ferry.cli.output import STATUS_COLORS, colored_status, emit_json, json_option, table, wants_json
from ferry.errors import FerryError
from ferry.units import duration, when

REMOTE = ("launch", "executions", "workflows", "launchplans")
DONE = ("succeeded", "failed", "aborted")


class ServerError(FerryError):
    """The server refused a request, or can't be reached."""


class Server:
    """A small client of the /api/v1 API."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 60) -> None:
        self.url = url.rstrip("/")
        self.token = token if token is not None else os.environ.get("FERRY_SERVER_TOKEN") or None
        self.timeout = timeout

    def request(self, method: str, path: str, body: dict[str, Any] | None = None,
                query: dict[str, Any] | None = None) -> Any:
        import urllib.error
        import urllib.request  # loads ssl and http: only when a server is used

        url = self.url + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        headers = {"Accept": "application/json"}
        data = None
        if body is not None or method != "GET":
            data = json.dumps(body or {}).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            with exc:
                try:
                    message = json.loads(exc.read()).get("error") or exc.reason
                except (ValueError, AttributeError):
                    message = exc.reason
            raise ServerError(f"{message}" + (" (set FERRY_SERVER_TOKEN)" if exc.code == 401 else "")) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServerError(f"Can't reach the ferry server at {self.url}: {reason}. Is `ferry serve` running "
                              "there (and is --server right)?") from None

    def get(self, path: str, **query: Any) -> Any:
        return self.request("GET", path, query=query)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.request("POST", path, body or {})


def quoted(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def server_routing(base: type[click.Group]) -> type[click.Group]:
    """``base`` whose commands in REMOTE are the server's when the group's --server option is given."""

    class Routed(base):  # type: ignore[valid-type, misc]
        def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
            name, command, rest = super().resolve_command(ctx, args)
            if ctx.params.get("server") and name in REMOTE:
                command = remote_commands()[name]
            return name, command, rest

    return Routed


def server_of(ctx: click.Context) -> Server:
    return Server(ctx.find_root().params["server"])


# ---- the commands ------------------------------------------------------------------------------------

def _input_json(name: str, text: str, t: dict[str, Any]) -> Any:
    """Command-line text -> the typed JSON the server converts (by the launch plan's declared type)."""
    form = t.get("form")
    if t.get("optional") and text.lower() in ("none", "null"):
        return None
    if form in ("str", "enum", "datetime"):
        return text
    if form == "int":
        return text  # the server reads whole numbers from text, so no digit is lost
    if form in ("float", "duration"):
        try:
            return float(text)
        except ValueError:
            raise click.BadParameter(f"{text!r} is not a number", param_hint=f"--{name}") from None
    if form == "bool":
        if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise click.BadParameter("expected true or false", param_hint=f"--{name}")
        return text.lower() in ("true", "1", "yes")
    if form == "uri":
        if "://" not in text and os.path.exists(text):
            return "file://" + os.path.abspath(text)  # a local path the server can reach only on this machine
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"{text!r} is not valid JSON for {t.get('text')} ({exc.msg})",
                                 param_hint=f"--{name}") from None


def _inputs(declared: dict[str, Any], args: list[str]) -> dict[str, Any]:
    """``--name value`` flags (and an ``--inputs-file`` of JSON / YAML values, which the flags override) -> the
    typed JSON the server converts."""
    from ferry.cli.inputs import read_inputs_file, split_args

    pairs, inputs_file, _ = split_args(args)
    given = dict(read_inputs_file(inputs_file)) if inputs_file else {}
    values: dict[str, Any] = {}
    for key in [*given, *pairs]:
        name = key.replace("-", "_")
        if name not in declared:
            raise FerryError(f"The launch plan has no input {key!r}; its inputs are: "
                             + (", ".join(f"--{n}" for n in declared) or "(none)") + ".")
    for key, value in given.items():
        values[key.replace("-", "_")] = value  # already data, as the server takes it
    for key, text in pairs.items():
        name = key.replace("-", "_")
        values[name] = _input_json(key, text, declared[name]["type"])
    return values


def _print_outputs(execution: dict[str, Any]) -> None:
    color = "green" if execution["status"] == "succeeded" else "red"
    click.secho(f"execution {execution['id']} {execution['status']}", fg=color, err=True)
    if execution["status"] != "succeeded":
        click.secho(f"error: {execution.get('error')}", fg="red", err=True)
        click.echo(f"details: ferry --server URL executions show {execution['id']}", err=True)
        sys.exit(1)
    for name, value in sorted((execution.get("outputs") or {}).items()):
        click.echo(f"{name} = {value['text']}")


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("name")
@click.option("--raw-output-prefix", default=None, help="Where this execution's offloaded data goes.")
@click.option("--no-wait", is_flag=True, help="Print the execution id and return; don't wait for the end.")
@click.pass_context
def launch(ctx: click.Context, name: str, raw_output_prefix: str | None, no_wait: bool) -> None:
    """Launch registered launch plan NAME[@VERSION] on the server; inputs are --flags of its registered types
    (File, Directory and frames as URIs of data already in a store)."""
    server = server_of(ctx)
    plan, _, version = name.partition("@")
    spec = server.get(f"/api/v1/launchplans/{quoted(plan)}", version=version or None)
    body: dict[str, Any] = {"launch_plan": plan, "version": spec["version"], "inputs": _inputs(spec["inputs"], ctx.args)}
    if raw_output_prefix:
        body["raw_output_prefix"] = raw_output_prefix
    execution = server.post("/api/v1/executions", body)
    click.echo(f"execution {execution['id']}: {execution['launch_plan']} queued on {server.url}, raw output under "
               f"{execution['raw_output_prefix']} (from the {execution['raw_output_source']})", err=True)
    if no_wait:
        click.echo(execution["id"])
        return
    pause = 0.05
    while execution["status"] not in DONE:
        time.sleep(pause)
        pause = min(pause * 1.5, 1.0)  # quick answers for quick executions, few requests for long ones
        execution = server.get(f"/api/v1/executions/{quoted(execution['id'])}")
    _print_outputs(execution)


@click.group()
def executions() -> None:
    """Inspect and control the server's executions."""


@executions.command("list")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1), help="How many executions to show.")
@click.option("--status", default=None, help="Only this status (queued, running, succeeded, failed, aborted).")
@click.option("--workflow", default=None, help="Only this workflow.")
@json_option
@click.pass_context
def list_(ctx: click.Context, limit: int, status: str | None, workflow: str | None) -> None:
    """Recent executions first, with status and duration (the same columns as without --server)."""
    rows = server_of(ctx).get("/api/v1/executions", limit=limit, status=status, workflow=workflow)["executions"]
    if wants_json():
        emit_json(rows)
        return
    if not rows:
        click.echo("No executions on this server yet.")
        return
    table(("id", "workflow", "status", "started", "duration", "executor"),
          [(r["id"], r["workflow"], r["status"], when(r["started"]), duration(r["duration"]), r["executor"])
           for r in rows], styles={2: colored_status})


def _show_values(title: str, values: dict[str, Any] | None, indent: str) -> None:
    if values is None:
        return
    if not values:
        click.echo(f"{indent}{title}: (none)")
        return
    click.echo(f"{indent}{title}:")
    for name, value in sorted(values.items()):
        text = value["text"]
        click.echo(f"{indent}  {name} = {text if len(text) <= 100 else text[:97] + '...'}")


@executions.command()
@click.argument("execution_id", required=False)
@click.option("--traceback", "full_errors", is_flag=True, help="Show each error in full, with its traceback.")
@json_option
@click.pass_context
def show(ctx: click.Context, execution_id: str | None, full_errors: bool) -> None:
    """The node tree with statuses, and each node's input and output meta values (default: the latest)."""
    server = server_of(ctx)
    if execution_id is None:
        latest = server.get("/api/v1/executions", limit=1)["executions"]
        if not latest:
            raise FerryError("No executions on this server yet.")
        execution_id = latest[0]["id"]
    e = server.get(f"/api/v1/executions/{quoted(execution_id)}", values="true")
    if wants_json():
        emit_json(e)
        return
    click.echo(f"execution {e['id']}  {e['workflow']}  {e['status']}  {duration(e['duration'])}  executor={e['executor']}")
    if e.get("launch_plan"):
        click.echo(f"  launch plan: {e['launch_plan']}")
    click.echo(f"  metadata: {e['metadata_prefix']}\n  raw output prefix: {e['raw_output_prefix']}"
               f"  (from the {e['raw_output_source']})")
    _show_values("inputs", e.get("inputs"), "  ")
    _show_values("outputs", e.get("outputs"), "  ")
    if e.get("error"):
        click.secho(f"  error: {e['error']}", fg="red")
    for node in e["nodes"]:
        indent = "  " * (node["path"].count("/") + 1)
        attempt = f" attempt {node['attempt']}" if node["kind"] == "task" else ""
        extra = node.get("worker") or node.get("detail")
        color = STATUS_COLORS.get(node["status"])
        click.secho(f"{indent}{node['path'].rsplit('/', 1)[-1]} [{node['kind']}] {node['label']}{attempt}: "
                    f"{node['status']} {duration(node['duration'])}{f'  ({extra})' if extra else ''}", fg=color)
        _show_values("inputs", node.get("inputs"), indent + "  ")
        _show_values("outputs", node.get("outputs"), indent + "  ")
        if node.get("error"):
            text = node["error"]
            if full_errors and node["kind"] == "task":
                detail = server.get(f"/api/v1/executions/{quoted(e['id'])}/nodes/{node['path']}",
                                    attempt=node["attempt"])
                text = (detail["attempts"][0].get("error") or {}).get("message", text).rstrip()
            click.secho(f"{indent}  error: {text}", fg="red")


@executions.command()
@click.argument("execution_id")
@click.argument("node", required=False)
@click.option("--attempt", type=int, default=None, help="Attempt number (1 is the first; default: every attempt).")
@click.pass_context
def logs(ctx: click.Context, execution_id: str, node: str | None, attempt: int | None) -> None:
    """What each task attempt printed (stdout and stderr, the last MiB), for NODE or every node."""
    data = server_of(ctx).get(f"/api/v1/executions/{quoted(execution_id)}/logs", node=node, attempt=attempt)
    for a in data["attempts"]:
        if node is None or attempt is None:
            click.secho(f"== {a['path']} {a['label']} attempt {a['attempt']}: {a['status']}", bold=True)
        click.echo(a["logs"].rstrip("\n") if a["logs"] else "(printed nothing)")


def _control(action: str, help_text: str) -> click.Command:
    @click.pass_context
    def command(ctx: click.Context, execution_id: str) -> None:
        result = server_of(ctx).post(f"/api/v1/executions/{quoted(execution_id)}/{action}")
        click.echo(f"execution {result['id']}: {result['status']}")

    command.__doc__ = help_text
    return click.command(action)(click.argument("execution_id")(command))


executions.add_command(_control("abort", "Abort a queued or running execution."))
executions.add_command(_control("resume", "Queue a failed or aborted execution again; finished nodes are not run again."))
executions.add_command(_control("relaunch", "A new execution with the same launch plan version and inputs."))


def _entities(kind: str) -> click.Group:
    @click.group(kind)
    def group() -> None:
        pass

    group.help = f"The server's registered {'launch plans' if kind == 'launchplans' else kind}."

    @group.command("list")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @click.pass_context
    def list_entities(ctx: click.Context, as_json: bool) -> None:
        entries = server_of(ctx).get(f"/api/v1/{kind}")
        if as_json:
            click.echo(json.dumps(entries, indent=2))
            return
        for e in entries:
            more = f" (+{len(e['versions']) - 1} older)" if len(e["versions"]) > 1 else ""
            click.echo(f"{e['name']}  @{e['version']}{more}  registered {when(e['registered'])}")
            click.echo(f"    inputs: {', '.join(f'{k}: {v}' for k, v in e.get('inputs', {}).items()) or 'none'}")
            if e.get("workflow"):
                click.echo(f"    workflow: {e['workflow']}")

    return group


def remote_commands() -> dict[str, click.Command]:
    return {"launch": launch, "executions": executions, "workflows": _entities("workflows"),
            "launchplans": _entities("launchplans")}
