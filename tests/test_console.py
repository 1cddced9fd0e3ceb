"""The web console in a real browser (headless Chromium, Debian's package, driven by Playwright): launch from the
form with a raw-output prefix override, watch it succeed live, read a node's meta values and logs, see the graph;
every value escaped. With CONSOLE_SCREENSHOTS=DIR the main pages are saved there (docs/console-*.png)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest
from click.testing import CliRunner

from ferry.cli.main import cli
from ferry.testing.server import FerryServer

FLOWS = str(Path(__file__).parent / "flows" / "served.py")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run"]
TIMEOUT = 120_000  # ms


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.skip("Chromium is not installed here (scripts/setup installs Debian's chromium with apt-get as root)")
    playwright_api = pytest.importorskip("playwright.sync_api", reason="the test extra installs playwright")
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FerryServer]:
    monkeypatch.setenv("MARKS", str(tmp_path / "marks"))
    result = CliRunner().invoke(cli, ["register", FLOWS])
    assert result.exit_code == 0, result.output
    with FerryServer() as running:
        yield running


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT)
    dialogs: list[str] = []
    tab.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    tab.dialogs = dialogs
    yield tab
    context.close()


def screenshot(tab: Any, name: str) -> None:
    folder = os.environ.get("CONSOLE_SCREENSHOTS")
    if folder:
        tab.screenshot(path=str(Path(folder) / f"console-{name}.png"), full_page=True)


def test_launch_from_the_form_watch_it_succeed_and_read_a_node(server: FerryServer, page: Any, tmp_path: Path) -> None:
    override = (tmp_path / "raw-override").as_uri()
    page.goto(server.url + "/launchplans/served.everything")
    assert page.locator(".field[data-name=a] .description").inner_text() == "How many times"  # from the docstring
    assert page.locator("#in-color option").all_inner_texts() == ["red", "green"]  # an enum is a select
    assert page.locator("#in-flag").get_attribute("type") == "checkbox"
    assert page.locator("#in-tags").input_value() == '["x", "y"]'  # a list, as JSON, with its default
    page.fill("#in-a", "3")
    page.fill("#in-b", "  <script>alert(1)</script>  ")  # a str is sent as typed, spaces and all
    page.select_option("#in-color", "green")
    page.fill("#raw-output-prefix", override)
    screenshot(page, "launch")
    page.click("#launch-button")
    page.wait_for_url("**/executions/*")
    page.wait_for_selector("#status .status-succeeded")  # the page follows the execution without a reload
    nodes = page.locator("#graph g.node")
    assert nodes.count() == 3
    assert all("status-succeeded" in (nodes.nth(i).get_attribute("class") or "") for i in range(3))
    assert page.locator("#graph path.edge").count() == 2
    assert page.locator("#gantt rect").count() == 3  # one bar per attempt
    assert override in page.locator("table.summary").inner_text()
    page.click('#graph g.node[data-node="n0"]')
    page.wait_for_selector("#detail .logs")
    detail = page.locator("#detail")
    assert detail.locator('tr[data-value="b"] td').text_content() == "'  <script>alert(1)</script>  '"  # text, not markup
    assert detail.locator('tr[data-value="color"] td').inner_text() == "'green'"
    assert detail.locator(".logs").inner_text().strip() == "describing '  <script>alert(1)</script>  ' for 3 times"
    assert detail.locator("details.long").count() == 1  # the long output line is expandable
    screenshot(page, "execution")
    page.click('#nodes tr[data-path="n1"]')
    page.wait_for_selector('#detail .attempt tr[data-value="o1"]')
    frame = detail.locator('tr[data-value="o1"] td').inner_text()
    assert frame.startswith("dataframe " + override) and "parquet" in frame and "columns: i: int, s: str" in frame
    assert detail.locator('tr[data-value="o0"] td').inner_text().startswith("file " + override)
    assert "<script>alert(1)</script>" in page.locator("#execution-inputs").inner_text()
    assert page.locator("script:not([src]):not([type])").count() == 0  # no script made of a value
    assert page.dialogs == []


def test_the_executions_list_updates_live(server: FerryServer, page: Any) -> None:
    page.goto(server.url + "/executions")
    assert "No executions yet" in page.locator("#executions").inner_text()
    launched = server.client().post("/api/v1/executions", {"launch_plan": "served.fanout", "inputs": {"n": 12}})
    row = page.locator(f'#executions tr[data-id="{launched["id"]}"]')
    row.locator(".status-succeeded").wait_for()  # appeared and finished while the page stayed open
    assert "served.fanout" in row.inner_text()
    page.goto(server.url + f"/executions/{launched['id']}")
    page.wait_for_selector("#status .status-succeeded")
    assert "succeeded · 12/12" in page.locator('#graph g.node[data-kind="map"] .node-status').text_content()
    assert page.locator("#nodes tbody tr").count() == 3 + 12  # the map node, its 12 elements, two tasks
    screenshot(page, "map")
    page.goto(server.url + "/executions")
    page.locator(f'#executions tr[data-id="{launched["id"]}"]').wait_for()
    screenshot(page, "executions")


def test_an_older_page_of_executions_stays_that_page_while_it_updates(server: FerryServer, page: Any) -> None:
    from ferry.config import active_settings
    from ferry.engine.records import ExecutionRecord, Records

    records = Records(active_settings().database_url)
    for i in range(55):  # more than one page of 50
        records.create_execution(ExecutionRecord(f"x{i:03d}", "wf.a", "wf", "succeeded", 1000.0 + i, 1000.5 + i,
                                                 "file:///m", "file:///r", "process", None, None, None))
    records.close()
    page.goto(server.url + "/executions")
    page.get_by_text("Older →").click()
    page.wait_for_url("**cursor=**")
    first = page.locator("#executions tbody tr").first.get_attribute("data-id")
    assert first == "x004"  # the 51st newest
    page.wait_for_function("document.getElementById('live').textContent.includes('updated')")  # a refresh came
    assert page.locator("#executions tbody tr").first.get_attribute("data-id") == "x004"
    assert page.locator("#executions tbody tr").count() == 5


def test_a_failed_node_shows_its_error_with_traceback_and_its_logs(server: FerryServer, page: Any) -> None:
    launched = server.client().post("/api/v1/executions", {"launch_plan": "served.failing", "inputs": {"x": 7}})
    page.goto(server.url + f"/executions/{launched['id']}")
    page.wait_for_selector("#status .status-failed")
    assert "cannot handle 7" in page.locator("#execution-error").inner_text()
    assert "status-failed" in (page.locator('#graph g.node[data-node="n0"]').get_attribute("class") or "")
    page.click('#nodes tr[data-path="n0"]')
    page.wait_for_selector("#detail .traceback")
    traceback = page.locator("#detail .traceback").inner_text()
    assert "Traceback (most recent call last)" in traceback and "ValueError: cannot handle 7" in traceback
    assert "about to fail" in page.locator("#detail .logs").inner_text()
    assert "ValueError" in page.locator("#detail .attempt").inner_text()


def test_a_bad_launch_from_the_form_says_why_and_starts_nothing(server: FerryServer, page: Any) -> None:
    page.goto(server.url + "/launchplans/served.file_size")
    page.fill("#in-f", "relative/path.csv")
    page.click("#launch-button")
    error = page.locator("#launch-error")
    error.wait_for(state="visible")
    assert "is not a URI" in error.inner_text()
    assert page.url.endswith("/launchplans/served.file_size")
    assert server.client().get("/api/v1/executions")["executions"] == []
    page.goto(server.url + "/workflows/served.everything")
    assert "How many times" in page.locator("table.kv").inner_text()
    screenshot(page, "workflow")
