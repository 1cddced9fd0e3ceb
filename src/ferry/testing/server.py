"""``ferry serve`` in a child process on 127.0.0.1, for tests and benchmarks: started, waited for, stopped or killed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from ferry.cli.remote import Server, ServerError


class FerryServer:
    """A server on a port it chooses itself (``--port 0``): no race for a free port."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, cwd: str | None = None) -> None:
        self.args = list(args)
        self.env = env
        self.cwd = cwd
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self._drainer: threading.Thread | None = None
        self.output: list[str] = []  # what the server printed, kept for failure messages

    def start(self, timeout: float = 60) -> "FerryServer":
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ferry.cli.main", "serve", "--port", "0", *self.args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=self.env, cwd=self.cwd,
            start_new_session=True,  # its own process group: kill() takes its task processes too
        )
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.output.append(line)
            found = re.search(r"ferry server on (http://\S+)", line)
            if found:
                self.url = found.group(1)
                break
        else:
            self.proc.wait(timeout=30)
            self.proc.stderr.close()
            raise RuntimeError("ferry serve did not start:\n" + "".join(self.output))
        self._drainer = threading.Thread(target=self._drain, daemon=True)
        self._drainer.start()
        deadline = time.monotonic() + timeout
        while True:  # listening and answering
            try:
                self.client().get("/api/v1/health")
                return self
            except ServerError as exc:
                if "needs a token" in str(exc):
                    return self
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"ferry serve at {self.url} never answered: {exc}\n" + "".join(self.output)) \
                        from None
                time.sleep(0.05)

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        with self.proc.stderr:
            for line in self.proc.stderr:
                self.output.append(line)

    def _reap(self) -> None:
        if self._drainer is not None:
            self._drainer.join(timeout=30)

    def client(self, token: str | None = None) -> Server:
        return Server(self.url, token=token)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL the server and every process it started (its task processes): as a crashed machine would."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self._reap()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()
        try:  # task processes it left (their server's leases were handed on)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._reap()

    def __enter__(self) -> "FerryServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
