"""Live progress of an execution's nodes: a rich display on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from typing import Any

import click


class NodeProgress:
    """A listener for the engine: counts node states and shows what is running."""

    def __init__(self, execution_hint: str = "") -> None:
        self.lock = threading.Lock()
        self.running: dict[str, str] = {}
        self.counts: Counter[str] = Counter()
        self.started = time.monotonic()
        self.tty = sys.stderr.isatty()
        self.live: Any = None
        self.hint = execution_hint

    def __enter__(self) -> "NodeProgress":
        if self.tty:
            from rich.console import Console
            from rich.live import Live

            self.live = Live(self._render(), console=Console(stderr=True), refresh_per_second=8, transient=True)
            self.live.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.stop()

    def __call__(self, path: str, kind: str, label: str, status: str, detail: str) -> None:
        with self.lock:
            if status == "running":
                self.running[path] = label
            else:
                self.running.pop(path, None)
                if kind == "task":
                    self.counts[status] += 1
            if status in ("failed", "retrying") and kind == "task":
                click.secho(f"  {status}: {path} {label}: {detail.splitlines()[0] if detail else ''}", err=True,
                            fg="red" if status == "failed" else "yellow")
            if self.live is not None:
                self.live.update(self._render())

    def _render(self) -> Any:
        from rich.text import Text

        done = self.counts["succeeded"]
        elapsed = time.monotonic() - self.started
        text = Text(f"{self.hint} {elapsed:5.1f}s  succeeded {done}  running {len(self.running)}  failed {self.counts['failed']}\n")
        for path, label in list(self.running.items())[:8]:
            text.append(f"  ▶ {path}  {label}\n", style="cyan")
        return text
