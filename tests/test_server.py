"""``ferry serve``: the HTTP API end to end against a real server process (launch, watch, inspect, control),
bad launches that record nothing, the security rules, the CLI through a server, and a server denied on the
raw store running Files and frames."""

from __future__ import annotations

import base64
import json
import os
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from click.testing import CliRunner

from ferry.cli.main import cli
from ferry.cli.remote import Server, ServerError
from ferry.testing.server import FerryServer

FLOWS = str(Path(__file__).parent / "flows" / "served.py")
DONE = ("succeeded", "failed", "aborted")


def register(path: str = FLOWS) -> None:
    result = CliRunner().invoke(cli, ["register", path])
    assert result.exit_code == 0, result.output


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} never happened")
        time.sleep(0.05)


def finished(server: Server, execution_id: str, timeout: float = 120) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        e = server.get(f"/api/v1/executions/{execution_id}")
        return e if e["status"] in DONE else None
    return wait_for(done, f"execution {execution_id} ending", timeout)


@pytest.fixture
def marks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MARKS", str(tmp_path / "marks"))
    return tmp_path / "marks"


@pytest.fixture
def served(marks: Path) -> Iterator[FerryServer]:
    register()
    with FerryServer("--max-running", "2") as server:
        yield server


def raw_request(url: str, method: str = "GET", body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers), exc.read()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any) -> None:
        return None


def test_a_launch_runs_in_the_background_and_every_meta_value_is_visible(served: FerryServer, tmp_path: Path) -> None:
    api = served.client()
    override = (tmp_path / "override-raw").as_uri()
    launched = api.post("/api/v1/executions", {
        "launch_plan": "served.everything", "raw_output_prefix": override,
        "inputs": {"a": 3, "b": "hi", "when": "2026-11-24T10:00:00", "tags": ["p", "q"], "weights": {"k": 2},
                   "color": "green", "note": 7}})
    assert launched["status"] == "queued" and launched["raw_output_source"] == "execution"
    e = finished(api, launched["id"])
    assert e["status"] == "succeeded", e["error"]
    assert e["claims"] == 1 and e["owner"].split(":")[1] == str(served.pid)
    assert e["inputs"]["color"]["value"] == "green" and e["inputs"]["note"]["value"] == 7
    assert e["inputs"]["tags"] == {"text": "['p', 'q']", "kind": "list", "items": [
        {"text": "'p'", "kind": "str", "value": "p"}, {"text": "'q'", "kind": "str", "value": "q"}]}
    line, f, frame, measured = (e["outputs"][k] for k in ("o0", "o1", "o2", "o3"))
    assert line["value"].startswith("hi x3 flag=False") and "when=2026-11-24T10:00:00" in line["value"]
    assert f["kind"] == "file" and f["uri"].startswith(override) and f["size"] == len(line["value"])
    assert frame["kind"] == "dataframe" and frame["uri"].startswith(override) and frame["format"] == "parquet"
    assert frame["columns"] == [{"name": "i", "type": "int"}, {"name": "s", "type": "str"}] and frame["size"] > 0
    assert measured["value"] == f"{len(line['value'])} chars, 3 rows, sum 3"
    assert [(n["path"], n["status"]) for n in e["nodes"]] == [("n0", "succeeded"), ("n1", "succeeded"),
                                                              ("n2", "succeeded")]
    assert [(n["id"], n["upstream"], n["status"]) for n in e["graph"]["nodes"]] == [
        ("n0", [], "succeeded"), ("n1", ["n0"], "succeeded"), ("n2", ["n1"], "succeeded")]

    node = api.get(f"/api/v1/executions/{e['id']}/nodes/n0")
    (attempt,) = node["attempts"]
    assert attempt["inputs"]["b"]["value"] == "hi" and attempt["outputs"]["o0"] == line
    assert attempt["logs"] == "describing 'hi' for 3 times\n" and attempt["error"] is None
    assert attempt["worker"].startswith("pid ") and attempt["duration"] > 0
    logs = api.get(f"/api/v1/executions/{e['id']}/logs", node="n1")["attempts"]
    assert [(a["path"], a["logs"]) for a in logs] == [("n1", "making 3 rows\n")]
    with_values = api.get(f"/api/v1/executions/{e['id']}", values="true")
    assert with_values["nodes"][2]["inputs"]["f"] == f and "inputs" not in e["nodes"][0]


def test_bad_launches_get_a_4xx_that_says_what_to_fix_and_record_nothing(served: FerryServer) -> None:
    from ferry.config import active_settings

    api = served.client()
    cases = [
        ({"launch_plan": "nope"}, "No launch plan named 'nope' is registered"),
        ({"launch_plan": "served.everything", "inputs": {"b": "x"}}, "needs input 'a' (int)"),
        ({"launch_plan": "served.everything", "inputs": {"a": "three", "b": "x"}},
         "a: expected int (a whole number), got string 'three'"),
        ({"launch_plan": "served.everything", "inputs": {"a": 1, "b": "x", "color": "blue"}},
         "color: 'blue' is not one of ['red', 'green']"),
        ({"launch_plan": "served.everything", "inputs": {"a": 1, "b": "x", "zzz": 1}}, "has no input 'zzz'"),
        ({"launch_plan": "served.everything", "inputs": {"a": 1, "b": "x", "tags": "p"}},
         "tags: expected list[str] (a JSON array)"),
        ({"launch_plan": "served.file_size", "inputs": {"f": "data/x.csv"}}, "is not a URI"),
        ({"launch_plan": "tagged.pinned", "inputs": {"tag": "mine"}}, "fixes input(s) ['tag']"),
        ({"launch_plan": "served.everything@v9", "inputs": {}}, "has no version 'v9'"),
        ({"inputs": {}}, "Give the launch plan to run"),
        ({"launch_plan": "served.everything", "input": {}}, "Unknown field(s) ['input']"),
        ({"launch_plan": "served.tagged", "inputs": []}, '"inputs" must be a JSON object'),
        ({"launch_plan": "served.tagged", "inputs": {"tag": None}}, "got null."),
        ({"launch_plan": "served.file_size", "inputs": {"f": "file:///etc/passwd"}},
         "file:///etc/passwd is a file of the server's machine outside its stores"),
        ({"launch_plan": "served.file_size", "inputs": {"f": "/etc/../etc/passwd"}}, "outside its stores"),
        ({"launch_plan": "served.tagged", "inputs": {"tag": "x"}, "raw_output_prefix": 5}, "must be a URL string"),
        ({"launch_plan": "served.tagged", "inputs": {"tag": "x"}, "raw_output_prefix": "zz://x"},
         "unknown storage protocol 'zz'"),
    ]
    for body, message in cases:
        with pytest.raises(ServerError, match=None) as caught:
            api.post("/api/v1/executions", body)
        assert message in str(caught.value), (body, str(caught.value))
    status, headers, text = raw_request(served.url + "/api/v1/executions", "POST", b"{not json",
                                        {"Content-Type": "APPLICATION/JSON"})  # media types ignore case
    assert status == 400 and "not valid JSON" in json.loads(text)["error"]
    headers = {k.lower(): v for k, v in headers.items()}
    for method, path, status in (("GET", "/api/v1/executions/x/unknown", 404), ("DELETE", "/api/v1/executions", 405),
                                 ("PUT", "/api/v1/executions", 405)):
        got, _, text = raw_request(served.url + path, method, b"{}" if method == "PUT" else None,
                                   {"Content-Type": "application/json"})
        assert got == status and "openapi.json" in json.loads(text)["error"], (method, path, got, text)
    assert headers["x-frame-options"] == "DENY" and "frame-ancestors 'none'" in headers["content-security-policy"]
    for option in (["--port", "99999"], ["--max-running", "0"]):
        assert CliRunner().invoke(cli, ["serve", *option]).exit_code == 2  # refused as a usage error, nothing starts
    escaping = active_settings().raw_output_prefix + "/../../../etc/passwd"  # in the raw store by its text only
    status, _, text = raw_request(served.url + "/api/v1/executions", "POST",
                                  json.dumps({"launch_plan": "served.file_size", "inputs": {"f": escaping}}).encode(),
                                  {"Content-Type": "application/json"})
    assert status == 403 and "leads outside its store" in json.loads(text)["error"]
    status, _, text = raw_request(served.url + "/api/v1/executions", "POST", b'\xff\xfe{"launch_plan": 1}',
                                  {"Content-Type": "application/json"})
    assert status == 400 and "not valid JSON (UTF-8)" in json.loads(text)["error"]
    from ferry.server.app import MAX_BODY

    status, _, text = raw_request(served.url + "/api/v1/executions", "POST", b" " * (MAX_BODY + 1),
                                  {"Content-Type": "application/json"})
    assert status == 413 and "is over 64 MiB" in json.loads(text)["error"]
    status, _, text = raw_request(served.url + "/api/v1/executions", "POST",
                                  b"launch_plan=served.tagged&inputs=x",
                                  {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 415 and "Content-Type: application/json" in json.loads(text)["error"]
    status, _, text = raw_request(served.url + "/api/v1/executions", "POST",
                                  json.dumps({"launch_plan": "served.tagged", "inputs": {"tag": "x"}}).encode(),
                                  {"Content-Type": "application/json", "Origin": "https://evil.example"})
    assert status == 403 and "Cross-origin" in json.loads(text)["error"]
    assert api.get("/api/v1/executions")["executions"] == []  # none of them recorded anything


def test_listing_filters_by_status_workflow_and_time_and_pages_through_everything(
        served: FerryServer, ferry_home: Path) -> None:
    from ferry.config import active_settings
    from ferry.engine.records import ExecutionRecord, Records

    records = Records(active_settings().database_url)
    for i in range(23):
        records.create_execution(ExecutionRecord(
            f"x{i:03d}", "wf.a" if i % 2 else "wf.b", "wf", ["succeeded", "failed", "running"][i % 3], 1000.0 + i,
            1000.5 + i, "file:///m", "file:///r", "process", None, None, None))
    records.close()
    api = served.client()
    seen, cursor = [], None
    while True:
        page = api.get("/api/v1/executions", limit=5, cursor=cursor)
        seen += [e["id"] for e in page["executions"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == [f"x{i:03d}" for i in reversed(range(23))]
    failed = api.get("/api/v1/executions", status="failed", workflow="wf.b")["executions"]
    assert [e["id"] for e in failed] == [f"x{i:03d}" for i in reversed(range(23)) if i % 3 == 1 and i % 2 == 0]
    window = api.get("/api/v1/executions", since="1005", until="1970-01-01T00:16:50+00:00")["executions"]
    assert [e["id"] for e in window] == [f"x{i:03d}" for i in reversed(range(5, 10))]
    for query, message in (({"status": "done"}, "Unknown status 'done'"), ({"limit": 0}, "limit must be between"),
                           ({"since": "yesterday"}, "neither Unix seconds nor an ISO 8601"),
                           ({"cursor": "!!"}, "is not one this server handed out")):
        with pytest.raises(ServerError, match=message):
            api.get("/api/v1/executions", **query)
    with pytest.raises(ServerError, match="No execution 'zzz'"):
        api.get("/api/v1/executions/zzz")


def test_abort_a_queued_and_a_running_execution(marks: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    register()
    monkeypatch.setenv("GATE", "gate")
    with FerryServer("--max-running", "1") as server:
        api = server.client()
        running = api.post("/api/v1/executions", {"launch_plan": "served.tagged", "inputs": {"tag": "one"}})
        wait_for(lambda: (marks / "one").exists(), "the first task running")
        queued = api.post("/api/v1/executions", {"launch_plan": "served.tagged", "inputs": {"tag": "two"}})
        assert api.get(f"/api/v1/executions/{queued['id']}")["status"] == "queued"  # one at a time: it waits
        assert api.post(f"/api/v1/executions/{queued['id']}/abort")["status"] == "aborted"
        assert api.post(f"/api/v1/executions/{running['id']}/abort")["abort_requested"] is True
        e = finished(api, running["id"])
        assert e["status"] == "aborted" and e["error"] == "aborted through the server"
        assert api.get(f"/api/v1/executions/{queued['id']}")["error"] == "aborted before it started"
        with pytest.raises(ServerError, match="only a queued or running one can be aborted"):
            api.post(f"/api/v1/executions/{running['id']}/abort")
        assert not (marks / "two").exists()
        stopped = api.get(f"/api/v1/executions/{running['id']}/nodes/n0")["attempts"]
        assert [a["status"] for a in stopped] == ["aborted"]  # stopped by the abort: not "failed"
        (marks / "gate").write_text("open")
        api.post(f"/api/v1/executions/{running['id']}/resume")
        assert finished(api, running["id"])["status"] == "succeeded"
        attempts = api.get(f"/api/v1/executions/{running['id']}/nodes/n0")["attempts"]
        assert [a["status"] for a in attempts] == ["aborted", "succeeded"]  # the aborted one stays as it was
        assert attempts[0]["ended"] == stopped[0]["ended"]


def test_resume_runs_only_what_failed_and_relaunch_starts_anew(served: FerryServer, marks: Path) -> None:
    api = served.client()
    first = finished(api, api.post("/api/v1/executions", {"launch_plan": "served.flaky", "inputs": {"n": 4}})["id"])
    assert first["status"] == "failed" and "the first time, this fails" in first["error"]
    node = api.get(f"/api/v1/executions/{first['id']}/nodes/n1")["attempts"][0]
    assert node["error"]["code"] == "RuntimeError" and node["error"]["origin"] == "user"
    assert "Traceback" in node["error"]["message"] and "the first time, this fails" in node["logs"]
    assert api.post(f"/api/v1/executions/{first['id']}/resume")["id"] == first["id"]
    again = finished(api, first["id"])
    assert again["status"] == "succeeded" and again["outputs"]["o0"]["value"] == 50 and again["claims"] == 2
    assert (marks / "first").read_text().count("\n") == 1  # the node that had finished did not run again
    with pytest.raises(ServerError, match="is succeeded; only a failed, aborted or stopped"):
        api.post(f"/api/v1/executions/{first['id']}/resume")
    relaunched = api.post(f"/api/v1/executions/{first['id']}/relaunch")
    assert relaunched["id"] != first["id"] and relaunched["launch_plan"] == first["launch_plan"]
    second = finished(api, relaunched["id"])
    assert second["status"] == "succeeded" and second["inputs"] == first["inputs"]
    assert (marks / "first").read_text().count("\n") == 2


def test_registered_specs_are_listed_with_typed_interfaces_and_registered_over_the_api(served: FerryServer) -> None:
    api = served.client()
    plans = {p["name"]: p for p in api.get("/api/v1/launchplans")}
    assert plans["everything.shouting"]["workflow"].startswith("served.everything@")
    plan = api.get("/api/v1/launchplans/everything.shouting")
    assert plan["inputs"]["flag"]["default"]["value"] is True and plan["inputs"]["a"]["default_json"] == 2
    assert plan["inputs"]["b"] == {"type": {"text": "str", "form": "str"}, "description": "A greeting, any text",
                                   "required": True, "default": None, "default_json": None}
    assert plan["inputs"]["color"]["type"] == {"text": "Enum('red', 'green')", "form": "enum", "values": ["red", "green"]}
    assert plan["inputs"]["note"]["type"]["form"] == "int" and plan["inputs"]["note"]["type"]["optional"] is True
    assert plan["inputs"]["when"]["default_json"] == "2026-01-02T03:04:05"
    assert plan["outputs"]["o2"]["type"]["reference"] == "dataframe"
    wf = api.get("/api/v1/workflows/served.everything")
    assert wf["launch_plans"] == ["everything.shouting", "served.everything"]
    assert api.get("/api/v1/tasks/served.read_file")["inputs"]["f"]["type"]["form"] == "uri"
    with pytest.raises(ServerError, match="Unknown kind 'pipelines'"):
        api.get("/api/v1/pipelines")

    with pytest.raises(ServerError, match="takes no registrations: a registered spec holds a command"):
        api.post("/api/v1/registrations", registration_body())  # no token: anyone here could run anything


def registration_body() -> dict[str, Any]:
    from ferry.runtime.load import load_module
    from ferry.sdk.compile import bundle

    module = load_module(str(Path(__file__).parent / "flows" / "registered.py"))
    specs = bundle([module.greeting, module.loud], "v-api", None)
    return {"tasks": [base64.b64encode(t.SerializeToString()).decode() for t in specs.tasks],
            "workflows": [base64.b64encode(w.SerializeToString()).decode() for w in specs.workflows],
            "launch_plans": [base64.b64encode(lp.SerializeToString()).decode() for lp in specs.launch_plans]}


def test_the_openapi_document_covers_every_route(served: FerryServer) -> None:
    from ferry.server.openapi import OPENAPI

    document = served.client().get("/api/v1/openapi.json")
    assert document == OPENAPI and document["openapi"].startswith("3.1")
    from ferry.config import active_settings
    from ferry.server.app import create_app

    app = create_app(active_settings(), engine=False).app  # type: ignore[attr-defined]
    routes = {r.path.replace(":path}", "}") for r in app.routes if getattr(r, "path", "").startswith("/api/v1")}
    assert routes == set(document["paths"])


def test_a_token_guards_every_request_and_the_console_signs_in_once(marks: Path) -> None:
    register()
    token = uuid.uuid4().hex
    with FerryServer("--token", token) as server:
        with pytest.raises(ServerError, match="needs a token"):
            server.client().get("/api/v1/executions")
        with pytest.raises(ServerError, match="needs a token"):
            server.client(token="wrong").get("/api/v1/executions")
        api = server.client(token=token)
        assert api.get("/api/v1/executions") == {"executions": [], "next": None}
        body = registration_body()  # with a token, registrations are taken
        report = api.post("/api/v1/registrations", body)
        assert "launch plan greeting.loud@v-api" in report["registered"] and report["unchanged"] == []
        assert api.post("/api/v1/registrations", body)["unchanged"] == report["registered"]
        assert api.get("/api/v1/launchplans/greeting.loud")["version"] == "v-api"
        local = marks.parent / "local.txt"  # outside the stores: a caller with the token may name it
        local.write_text("12345")
        sized = api.post("/api/v1/executions", {"launch_plan": "served.file_size", "inputs": {"f": str(local)}})
        assert finished(api, sized["id"])["outputs"]["o0"]["value"] == 5
        for bad, message in (({"tasks": ["%%%"]}, r"tasks\[0\]: not a base64 serialized TaskSpec"),
                             ({"tasks": 5}, "tasks must be a list of base64 serialized specs; got int"),
                             ({**body, "raw_output_prefix": ["x"]}, "must be a URL string"),
                             ({**body, "raw_output_prefix": "relative/dir"}, "is relative; give a URL"),
                             ({**body, "raw_output_prefix": "zz://x"}, "unknown storage protocol 'zz'")):
            with pytest.raises(ServerError, match=message):
                api.post("/api/v1/registrations", bad)
        opener = urllib.request.build_opener(NoRedirect)
        for path in ("/executions", "/static/console.js"):
            with pytest.raises(urllib.error.HTTPError) as redirected:
                opener.open(server.url + path)
            redirected.value.close()
            assert redirected.value.code == 303 and redirected.value.headers["Location"].startswith("/login?next=")
        status, _, _ = raw_request(server.url + "/login", "POST", b"token=wrong",
                                   {"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 401
        with pytest.raises(urllib.error.HTTPError) as signed_in:
            opener.open(urllib.request.Request(server.url + "/login?next=%2Fexecutions", data=f"token={token}".encode(),
                                               method="POST"))
        signed_in.value.close()
        cookie = signed_in.value.headers["Set-Cookie"]
        assert signed_in.value.code == 303 and "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert token not in cookie  # the cookie is derived from the token, never the token itself
        status, _, page = raw_request(server.url + "/executions", headers={"Cookie": cookie.split(";")[0]})
        assert status == 200 and b"<h1>Executions</h1>" in page
    assert token not in "".join(server.output)  # never printed


def test_only_this_servers_host_names_are_served_and_other_binds_need_a_token(served: FerryServer) -> None:
    status, _, text = raw_request(served.url + "/api/v1/executions", headers={"Host": "rebound.example:80"})
    assert status == 421 and "is not this server" in json.loads(text)["error"]
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--port", "0"])
    assert result.exit_code == 1 and "give it a token" in result.output


def test_the_cli_launches_and_inspects_through_a_server(served: FerryServer, marks: Path) -> None:
    runner = CliRunner()
    launched = runner.invoke(cli, ["--server", served.url, "launch", "served.tagged", "--tag", "from-cli"])
    assert launched.exit_code == 0, launched.output
    assert "o0 = 'from-cli'" in launched.stdout
    execution_id = launched.stderr.split()[1].rstrip(":")
    listed = runner.invoke(cli, ["--server", served.url, "executions", "list"])
    assert execution_id in listed.output and "succeeded" in listed.output
    assert not set("┏┃━│─╭") & set(listed.output)  # plain columns when piped, as without --server
    as_json = json.loads(runner.invoke(cli, ["--server", served.url, "executions", "list", "--json"]).stdout)
    assert as_json[0]["id"] == execution_id and as_json[0]["status"] == "succeeded"
    latest = runner.invoke(cli, ["--server", served.url, "executions", "show"])  # no ID: the latest, as locally
    assert latest.exit_code == 0 and f"execution {execution_id}" in latest.output
    assert json.loads(runner.invoke(cli, ["--server", served.url, "executions", "show", "--json"]).stdout)["id"] \
        == execution_id
    shown = runner.invoke(cli, ["--server", served.url, "executions", "show", execution_id])
    assert shown.exit_code == 0 and "tag = 'from-cli'" in shown.output and "n0 [task] served.once attempt 1" in shown.output
    failed = runner.invoke(cli, ["--server", served.url, "launch", "served.failing", "--no-wait"])
    failed_id = failed.stdout.strip()
    finished(served.client(), failed_id)
    traced = runner.invoke(cli, ["--server", served.url, "executions", "show", failed_id, "--traceback"])
    assert "Traceback (most recent call last)" in traced.output and "ValueError: cannot handle 1" in traced.output
    logs = runner.invoke(cli, ["--server", served.url, "executions", "logs", failed_id, "n0"])
    assert logs.exit_code == 0 and "about to fail" in logs.output
    wrong = runner.invoke(cli, ["--server", served.url, "launch", "served.tagged", "--tagg", "x"])
    assert wrong.exit_code == 1 and "has no input 'tagg'" in wrong.output
    inputs = marks.parent / "inputs.json"
    inputs.write_text('{"tag": "from-file"}')  # the same flags as `ferry launch` without a server
    from_file = runner.invoke(cli, ["--server", served.url, "launch", "served.tagged", "--inputs-file", str(inputs)])
    assert from_file.exit_code == 0 and "o0 = 'from-file'" in from_file.stdout, from_file.output
    local = runner.invoke(cli, ["executions", "list"])  # without --server: the local records, as before
    assert local.exit_code == 0 and execution_id in local.output
    down = runner.invoke(cli, ["--server", "http://127.0.0.1:9", "executions", "list"])
    assert down.exit_code == 1 and "Can't reach the ferry server" in down.output


@pytest.mark.s3
def test_a_server_denied_on_the_raw_store_runs_files_and_frames(s3_server: Any, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from ferry.errors import AccessDeniedError
    from ferry.storage import read_bytes, write_bytes

    run = uuid.uuid4().hex[:8]
    urls = {"metadata_url": f"s3://meta/{run}", "raw_output_prefix": f"s3://raw/{run}",
            "persistent_url": f"s3://persistent/{run}"}
    tasks, engine = s3_server.options_for("tasks"), s3_server.options_for("engine")
    worker_toml = tmp_path / "worker.toml"
    lines = [f'{k} = "{v}"' for k, v in urls.items()]
    for store in ("metadata", "raw", "persistent"):
        lines += [f"[stores.{store}]", f'key = "{tasks["key"]}"', f'secret = "{tasks["secret"]}"',
                  f'client_kwargs = {{ endpoint_url = "{s3_server.endpoint}", region_name = "us-east-1" }}']
    worker_toml.write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("MARKS", str(tmp_path / "marks"))
    monkeypatch.setenv("FERRY_METADATA_URL", urls["metadata_url"])
    monkeypatch.setenv("FERRY_RAW_OUTPUT_PREFIX", urls["raw_output_prefix"])
    monkeypatch.setenv("FERRY_PERSISTENT_URL", urls["persistent_url"])
    monkeypatch.setenv("FERRY_METADATA_OPTIONS", json.dumps(engine))  # the server's identity: meta only
    monkeypatch.setenv("FERRY_WORKER_CONFIG", str(worker_toml))
    register()
    given = f"{urls['raw_output_prefix']}/given/input.bin"
    write_bytes(given, b"x" * 1234, tasks, "raw")
    with FerryServer() as server:
        api = server.client()
        e = finished(api, api.post("/api/v1/executions", {"launch_plan": "served.everything",
                                                          "inputs": {"a": 5, "b": "s3"}})["id"])
        assert e["status"] == "succeeded", e["error"]
        assert e["outputs"]["o3"]["value"].endswith("5 rows, sum 10")
        refs = [e["outputs"][k]["uri"] for k in ("o1", "o2")]
        assert all(uri.startswith(urls["raw_output_prefix"]) for uri in refs)
        sized = finished(api, api.post("/api/v1/executions", {"launch_plan": "served.file_size",
                                                              "inputs": {"f": given}})["id"])
        assert sized["status"] == "succeeded" and sized["outputs"]["o0"]["value"] == 1234
    for uri in [*refs, given]:  # what the server shows, it never could have read
        with pytest.raises(AccessDeniedError):
            read_bytes(uri, engine, "raw")
    assert os.environ["FERRY_METADATA_OPTIONS"] == json.dumps(engine)


@pytest.mark.parametrize("python_type, given, shown", [
    (int, "12345678901234567890"[:19], "1234567890123456789"),
    (float, 2, "2.0"),
    (bool, True, "True"),
    ("datetime", "2026-11-24T10:00:00+01:00", "2026-11-24T09:00:00"),
    ("timedelta", 90, "0:01:30"),
    ("list[dict[str, int]]", [{"a": 1}], "[{a: 1}]"),
    ("Optional[int]", None, "None"),
    ("Optional[int]", "5", "5"),
    ("File", "s3://bucket/key.csv", "file s3://bucket/key.csv (file)"),
    ("Directory", "/data/in", "directory file:///data/in (folder)"),
    ("Point", {"x": 1, "y": 2.5}, "{x: 1, y: 2.5}"),
], ids=lambda v: str(v)[:20])
def test_typed_json_becomes_literals_of_the_declared_type_without_reading_anything(
        python_type: Any, given: Any, shown: str) -> None:
    import dataclasses
    import datetime as dt
    from typing import Optional

    from ferry import Directory, File
    from ferry.literals import describe, literal_mismatch
    from ferry.server.values import meta_value, plain, to_literal
    from ferry.types import default_engine

    @dataclasses.dataclass
    class Point:
        x: int
        y: float

    names = {"datetime": dt.datetime, "timedelta": dt.timedelta, "list[dict[str, int]]": list[dict[str, int]],
             "Optional[int]": Optional[int], "File": File, "Directory": Directory, "Point": Point}
    lt = default_engine().literal_type(names.get(python_type, python_type))
    lit = to_literal(given, lt, "x")
    assert literal_mismatch(lit, lt) is None
    assert describe(lit) == shown
    if python_type in ("list[dict[str, int]]", "File"):
        assert plain(meta_value(lit)) == given  # a form prefilled with it launches the same value


@pytest.mark.parametrize("python_type, given, message", [
    (int, 1.5, "expected int (a whole number), got number 1.5"),
    (int, True, "expected int (a whole number), got boolean True"),
    (int, 2**64, "doesn't fit a 64-bit integer"),
    (str, 3, "expected str (a string), got number 3"),
    (bool, "yes", "expected bool (true or false)"),
    ("datetime", "tomorrow", "an ISO 8601 date and time"),
    ("File", "", "a URI such as s3://bucket/key"),
    ("File", {"path": "x"}, "as a URI string or"),
    ("Optional[int]", "x", "matches no variant of int | NoneType"),
    ("dict[str, int]", {"a": "b"}, "x['a']: expected int"),
], ids=lambda v: str(v)[:20])
def test_typed_json_that_doesnt_fit_says_where_and_what_was_expected(python_type: Any, given: Any,
                                                                     message: str) -> None:
    import datetime as dt
    from typing import Optional

    from ferry import File
    from ferry.errors import TypeMismatchError
    from ferry.server.values import to_literal
    from ferry.types import default_engine

    names = {"datetime": dt.datetime, "File": File, "Optional[int]": Optional[int], "dict[str, int]": dict[str, int]}
    lt = default_engine().literal_type(names.get(python_type, python_type))
    with pytest.raises(TypeMismatchError) as caught:
        to_literal(given, lt, "x")
    assert message in str(caught.value) and str(caught.value).startswith("x")


def test_the_readme_server_commands_work(tmp_path: Path) -> None:
    import shlex

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    block = readme[readme.index("## Web console and API"):]
    block = block[block.index("```bash\n") + 8:block.index("```\n", block.index("```bash\n"))]
    commands = [shlex.split(line.split("#")[0]) for line in block.splitlines() if line.startswith("ferry ")]
    register_cmd, serve_cmd, launch_cmd = commands[:3]
    assert register_cmd[:2] == ["ferry", "register"] and serve_cmd == ["ferry", "serve"]
    runner = CliRunner()
    registered = runner.invoke(cli, [register_cmd[1], str(Path(__file__).parent.parent / register_cmd[2])])
    assert registered.exit_code == 0, registered.output
    with FerryServer() as server:
        launched = runner.invoke(cli, ["--server", server.url, *launch_cmd[3:]])
        assert launched.exit_code == 0, launched.output
        assert "o1 = 2" in launched.stdout
