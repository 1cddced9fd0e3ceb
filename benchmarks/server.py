"""``ferry serve``: API latency with 10,000 executions in the records, the console's page load for an execution
with a 1,000-element map (headless Chromium), and launching through the server against ``ferry launch``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

from common import Table

HERE = os.path.dirname(os.path.abspath(__file__))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
RECORDS = 10_000
MAP = 1_000


def _percentiles(fn: Callable[[], Any], count: int) -> tuple[float, float]:
    fn()  # warm: connections, caches
    times = []
    for _ in range(count):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2], times[max(0, int(len(times) * 0.99) - 1)]


def _fill_records(database_url: str, count: int) -> None:
    """``count`` finished executions, as a busy server's records would hold them."""
    from ferry.engine.records import ExecutionRecord, Records

    records = Records(database_url)
    now = time.time() - count
    for i in range(count):
        records.create_execution(ExecutionRecord(
            f"old{i:06d}", f"flows.wf{i % 7}", "flows.wf", ("succeeded", "failed", "aborted")[i % 3], now + i,
            now + i + 1.5, "file:///nowhere", "file:///nowhere", "process", None, None, None,
            launch_plan=f"flows.wf{i % 7}@v1", raw_output_source="settings", queued=now + i, claims=1))
    records.close()


def _finish(api: Any, execution_id: str) -> dict[str, Any]:
    while True:
        e = api.get(f"/api/v1/executions/{execution_id}")
        if e["status"] in ("succeeded", "failed", "aborted"):
            assert e["status"] == "succeeded", e["error"]
            return e
        time.sleep(0.05)


def api_latency(table: Table, server: Any, execution_id: str, count: int) -> None:
    api = server.client()
    for name, fn in (
        ("list executions (page of 50)", lambda: api.get("/api/v1/executions", limit=50)),
        ("list executions filtered (status + workflow)",
         lambda: api.get("/api/v1/executions", status="failed", workflow="flows.wf3", limit=50)),
        (f"get an execution with a {MAP:,}-element map", lambda: api.get(f"/api/v1/executions/{execution_id}")),
        ("get one node's attempt (meta values, logs)",
         lambda: api.get(f"/api/v1/executions/{execution_id}/nodes/n0-17")),
    ):
        p50, p99 = _percentiles(fn, count)
        note = f"{RECORDS:,} executions in the records (SQLite), {count} requests over HTTP"
        table.add(f"API {name}: p50", p50, "s", target="<= 50 ms", met=p50 <= 0.05, note=note)
        table.add(f"API {name}: p99", p99, "s", target="<= 200 ms", met=p99 <= 0.2, note=note)


def page_load(table: Table, server: Any, execution_id: str, repeat: int) -> None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        table.add(f"console page load, {MAP:,}-element map", None, "s", baseline_label="n/a (playwright missing)")
        return
    if not os.path.exists(CHROMIUM):
        table.add(f"console page load, {MAP:,}-element map", None, "s", baseline_label="n/a (no chromium)")
        return
    args = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
        page = browser.new_page(viewport={"width": 1360, "height": 900})
        url = f"{server.url}/executions/{execution_id}"

        def load() -> None:
            page.goto(url)
            page.wait_for_function(f"document.querySelectorAll('#nodes tbody tr').length >= {MAP}")
            page.wait_for_selector("#gantt svg")

        best = min(_timed(load) for _ in range(repeat))
        browser.close()
    table.add(f"console page load, execution with a {MAP:,}-element map", best, "s", target="<= 2 s",
              met=best <= 2.0, note="navigation until the graph, the timeline and every node row are drawn "
                                    f"(headless Chromium, best of {repeat})")


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def launch_overhead(table: Table, server: Any, env: dict[str, str], repeat: int) -> None:
    api = server.client()
    cli = [sys.executable, "-m", "ferry.cli.main"]

    def through_api() -> None:
        _finish(api, api.post("/api/v1/executions", {"launch_plan": "flows.map_reduce", "inputs": {"xs": [1]}})["id"])

    def local() -> None:
        subprocess.run([*cli, "launch", "flows.map_reduce", "--xs", "[1]", "--executor", "process"], env=env,
                       cwd=HERE, check=True, capture_output=True)

    def remote_cli() -> None:
        subprocess.run([*cli, "--server", server.url, "launch", "flows.map_reduce", "--xs", "[1]"], env=env,
                       cwd=HERE, check=True, capture_output=True)

    local_s = min(_timed(local) for _ in range(repeat))
    api_s = min(_timed(through_api) for _ in range(repeat))
    remote_s = min(_timed(remote_cli) for _ in range(repeat))
    post = min(_timed(lambda: api.post("/api/v1/executions", {"launch_plan": "flows.map_reduce",
                                                              "inputs": {"xs": [1]}})) for _ in range(repeat))
    label = "`ferry launch` (a process, process executor)"
    table.add("launch through the server: POST until the execution is recorded (201)", post, "s",
              target="<= 50 ms", met=post <= 0.05, note="map_reduce over [1]: inputs checked, closure and inputs "
                                                         "written, queued")
    table.add("launch through the server: POST until succeeded", api_s, "s", baseline=local_s, baseline_label=label,
              target="not slower (<= 1.0x)", met=api_s <= local_s,
              note="the server's warm engine and worker pool vs a fresh process per launch")
    table.add("`ferry --server URL launch` until succeeded (a process)", remote_s, "s", baseline=local_s,
              baseline_label=label, target="not slower (<= 1.0x)", met=remote_s <= local_s)


def run(table: Table, quick: bool) -> None:
    from ferry.testing.server import FerryServer

    with tempfile.TemporaryDirectory(prefix="ferry-bench-server-") as home:
        env = {**os.environ, "FERRY_HOME": home,
               "PYTHONPATH": os.pathsep.join(p for p in (HERE, os.environ.get("PYTHONPATH")) if p)}
        subprocess.run([sys.executable, "-m", "ferry.cli.main", "register", "flows.py"], env=env, cwd=HERE,
                       check=True, capture_output=True)
        _fill_records(f"sqlite:///{home}/ferry.db", RECORDS)
        with FerryServer("--max-running", "2", "--workers", "2", env=env, cwd=HERE) as server:
            api = server.client()
            mapped = _finish(api, api.post("/api/v1/executions", {"launch_plan": "flows.map_reduce",
                                                                  "inputs": {"xs": list(range(MAP))}})["id"])
            api_latency(table, server, mapped["id"], 100 if quick else 1000)
            page_load(table, server, mapped["id"], 2 if quick else 5)
            launch_overhead(table, server, env, 2 if quick else 5)
