"""A real PostgreSQL server (Debian's packages) on 127.0.0.1, for tests and demos."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from ferry.testing.s3server import free_port


def postgres_bin() -> Path | None:
    """The folder holding initdb and pg_ctl, if PostgreSQL is installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


class PostgresServer:
    """initdb + pg_ctl in a private folder, trusting local connections; stopped on exit."""

    def __init__(self, data_dir: str | os.PathLike[str], database: str = "ferry") -> None:
        self.root = Path(data_dir)
        self.database = database
        self.port = 0
        self.bin = postgres_bin()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    def _as_postgres(self, *args: str | int | os.PathLike[str]) -> subprocess.CompletedProcess[str]:
        command = [str(a) for a in args]
        if os.geteuid() == 0:  # initdb refuses to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=True)

    def start(self) -> "PostgresServer":
        if self.bin is None:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql); scripts/setup installs it.")
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            os.chmod(self.root, 0o700)
        data = self.root / "data"
        self._as_postgres(self.bin / "initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync")
        self.port = free_port()
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off"
        self._as_postgres(self.bin / "pg_ctl", "-D", data, "-o", options, "-l", self.root / "log", "-w", "start")
        deadline = time.monotonic() + 30
        while True:
            try:
                self._as_postgres(self.bin / "createdb", "-h", "127.0.0.1", "-p", self.port, "-U", "postgres", self.database)
                break
            except subprocess.CalledProcessError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        return self

    def stop(self) -> None:
        if self.port and self.bin is not None:
            subprocess.run(["runuser", "-u", "postgres", "--", str(self.bin / "pg_ctl"), "-D", str(self.root / "data"),
                            "-m", "fast", "-w", "stop"] if os.geteuid() == 0 else
                           [str(self.bin / "pg_ctl"), "-D", str(self.root / "data"), "-m", "fast", "-w", "stop"],
                           capture_output=True)
            self.port = 0

    def __enter__(self) -> "PostgresServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
