"""Task reports: an HTML page a task attaches to its attempt (as Flyte decks and Metaflow cards do).

Inside a task, ``current_report()`` is the running attempt's report::

    from ferry.reports import current_report

    @task
    def train(data: pd.DataFrame) -> float:
        report = current_report()
        report.add_table(data.describe(), "the features")
        report.add_image(png_bytes, "loss per epoch")      # a PNG, e.g. from matplotlib's savefig
        report.add_html("<p>anything</p>")

When the attempt ends (succeeded or failed), the task runtime writes the report as ``report.html``
beside the attempt's outputs in the metadata store (``ferry.layout.REPORT``); ``ferry executions
show`` lists it and ``ferry executions report ID NODE`` fetches it. Outside a task run by the
engine (a direct call ``my_task(...)``) the report is kept in memory only.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import html
from typing import Any, Iterator

MAX_BYTES = 16 * 1024 * 1024  # a larger report is replaced by a note saying so: the metadata store is for small things


class Report:
    """Sections of HTML, written as one self-contained page (no scripts loaded from elsewhere)."""

    def __init__(self, title: str = "") -> None:
        self.title = title
        self.sections: list[str] = []

    def __bool__(self) -> bool:
        return bool(self.sections)

    def add_html(self, content: str, title: str = "") -> "Report":
        """HTML of your own (a plot's SVG, a widget), added as it is."""
        heading = f"<h2>{html.escape(title)}</h2>\n" if title else ""
        self.sections.append(f"<section>{heading}{content}</section>")
        return self

    def add_text(self, text: str, title: str = "") -> "Report":
        return self.add_html(f"<pre>{html.escape(text)}</pre>", title)

    def add_table(self, rows: Any, title: str = "", max_rows: int = 1000) -> "Report":
        """A pandas / polars / pyarrow frame, or a list of dicts, as an HTML table (at most ``max_rows`` rows)."""
        records, columns = _records(rows, max_rows)
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in columns) + "</tr>"
                       for r in records)
        return self.add_html(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>", title)

    def add_image(self, data: bytes, title: str = "", mime: str = "image/png") -> "Report":
        """An image (PNG bytes by default), embedded in the page."""
        encoded = base64.b64encode(data).decode()
        return self.add_html(f'<img alt="{html.escape(title)}" src="data:{mime};base64,{encoded}">', title)

    def to_html(self) -> str:
        title = html.escape(self.title or "report")
        return ("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>" + title + "</title><style>"
                "body{font-family:system-ui,sans-serif;margin:2em;max-width:72em}"
                "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}"
                "img{max-width:100%}pre{background:#f6f6f6;padding:.5em;overflow:auto}</style></head><body>\n"
                f"<h1>{title}</h1>\n" + "\n".join(self.sections) + "\n</body></html>\n")


def _records(rows: Any, max_rows: int) -> tuple[list[dict[str, Any]], list[str]]:
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # pandas
        frame = rows.head(max_rows)
        return frame.to_dict("records"), [str(c) for c in frame.columns]
    if hasattr(rows, "to_pylist"):  # pyarrow
        return rows.slice(0, max_rows).to_pylist(), list(rows.column_names)
    if hasattr(rows, "to_dicts"):  # polars
        return rows.head(max_rows).to_dicts(), list(rows.columns)
    records = [dict(r) for r in list(rows)[:max_rows]]
    columns: list[str] = []
    for r in records:
        columns.extend(k for k in r if k not in columns)
    return records, columns


_current: contextvars.ContextVar[Report | None] = contextvars.ContextVar("ferry_report", default=None)


def current_report() -> Report:
    """The report of the running task attempt (outside one, a report that is not kept)."""
    report = _current.get()
    return report if report is not None else Report()


@contextlib.contextmanager
def collecting(title: str) -> Iterator[Report]:
    """Give the attempt run inside this block a report of its own (the runtime saves it afterwards)."""
    report = Report(title)
    token = _current.set(report)
    try:
        yield report
    finally:
        _current.reset(token)


def save(report: Report, output_prefix: str, options: dict[str, Any]) -> None:
    """Write ``report`` (if it has anything) as ``{output_prefix}/report.html``; an oversized one as a note."""
    if not report:
        return
    from ferry.layout import REPORT
    from ferry.storage import join, write_bytes
    from ferry.units import human_size

    data = report.to_html().encode()
    if len(data) > MAX_BYTES:
        note = Report(report.title).add_text(
            f"The report was {human_size(len(data))}, over the {human_size(MAX_BYTES)} limit, so it was not kept. "
            "Keep large plots and tables as task outputs (File, data frame) and put a summary in the report.")
        data = note.to_html().encode()
    write_bytes(join(output_prefix, REPORT), data, options, "metadata")
