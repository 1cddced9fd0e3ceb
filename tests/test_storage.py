"""Store contract: atomic writes, streaming transfers, error mapping, on file, memory and S3."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from ferry.errors import AccessDeniedError, ObjectNotFoundError, StorageError, StoreUnavailableError
from ferry.storage import (
    download_directory,
    download_file,
    exists,
    join,
    list_files,
    publishing,
    read_bytes,
    upload_directory,
    upload_file,
    write_bytes,
)


@pytest.fixture(params=["file", "memory", "s3"])
def base(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    """One test body against every backend."""
    if request.param == "file":
        return f"file://{tmp_path}/store", {}
    if request.param == "memory":
        return f"memory://bucket/{tmp_path.name}", {}
    server = request.getfixturevalue("s3_server")
    return f"s3://raw/{tmp_path.name}", server.options()


def test_bytes_roundtrip(base: tuple[str, dict[str, Any]]) -> None:
    root, opts = base
    write_bytes(join(root, "a/b/c.pb"), b"payload", opts)
    assert read_bytes(join(root, "a/b/c.pb"), opts) == b"payload"
    assert exists(join(root, "a/b/c.pb"), opts)
    assert list_files(root, opts) == {"a/b/c.pb": 7}


def test_file_and_folder_transfers(base: tuple[str, dict[str, Any]], tmp_path: Path) -> None:
    root, opts = base
    src = tmp_path / "src"
    (src / "deep").mkdir(parents=True)
    (src / "x.bin").write_bytes(os.urandom(300_000))
    (src / "deep" / "y.txt").write_text("y")
    assert upload_file(src / "x.bin", join(root, "one/x.bin"), opts) == 300_000
    download_file(join(root, "one/x.bin"), tmp_path / "back.bin", opts)
    assert (tmp_path / "back.bin").read_bytes() == (src / "x.bin").read_bytes()
    assert upload_directory(src, join(root, "dir"), opts) == 300_001
    out = download_directory(join(root, "dir"), tmp_path / "dir-back", opts)
    assert (Path(out) / "deep" / "y.txt").read_text() == "y"
    assert sorted(list_files(join(root, "dir"), opts)) == ["deep/y.txt", "x.bin"]


def test_missing_object_is_not_found(base: tuple[str, dict[str, Any]]) -> None:
    root, opts = base
    with pytest.raises(ObjectNotFoundError, match="does not exist"):
        read_bytes(join(root, "nothing-here"), opts)


def test_failed_publish_leaves_nothing(base: tuple[str, dict[str, Any]]) -> None:
    root, opts = base
    target = join(root, "half/written.bin")
    with pytest.raises(RuntimeError):
        with publishing(target, opts) as local:
            with open(local, "wb") as fh:
                fh.write(b"partial")
            raise RuntimeError("crash mid-write")
    assert not exists(target, opts)
    assert list_files(root, opts) == {} or not any(k.startswith("half") for k in list_files(root, opts))


def test_local_writes_leave_no_temporaries(tmp_path: Path) -> None:
    for i in range(5):
        write_bytes(f"file://{tmp_path}/m/outputs.pb", b"x" * i)
    assert os.listdir(tmp_path / "m") == ["outputs.pb"]


def test_interrupted_download_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(ObjectNotFoundError):
        download_file(f"file://{tmp_path}/missing.bin", tmp_path / "dest.bin")
    assert os.listdir(tmp_path) == []


@pytest.mark.s3
def test_s3_access_denied_names_the_store(s3_server: Any) -> None:
    engine_opts = s3_server.options_for("engine")
    write_bytes("s3://meta/denied-test/ok.pb", b"fine", engine_opts)
    with pytest.raises(AccessDeniedError, match=r"raw store\).*access denied.*FERRY_RAW_OPTIONS"):
        write_bytes("s3://raw/denied-test/x.pb", b"nope", engine_opts, "raw")


@pytest.mark.s3
def test_s3_unreachable_is_retryable(monkeypatch: pytest.MonkeyPatch) -> None:
    import ferry.storage.io as io

    monkeypatch.setattr(io, "RETRY_DELAYS", (0.01,))
    from ferry.testing.s3server import free_port

    opts = {"key": "k", "secret": "s", "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{free_port()}"},
            "config_kwargs": {"connect_timeout": 1, "retries": {"max_attempts": 1}}, "skip_instance_cache": True}
    with pytest.raises(StoreUnavailableError, match="unreachable") as info:
        io.read_bytes("s3://meta/x", opts)
    assert info.value.retryable and isinstance(info.value, StorageError)


def _store_failures() -> list[tuple[BaseException, type]]:
    from botocore.exceptions import (
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        ReadTimeoutError,
    )

    return [
        (FileNotFoundError("gone"), ObjectNotFoundError),
        (ClientError({"Error": {"Code": "NoSuchBucket", "Message": "x"}}, "GetObject"), ObjectNotFoundError),
        (PermissionError("nope"), AccessDeniedError),
        (ClientError({"Error": {"Code": "AccessDenied", "Message": "x"}}, "PutObject"), AccessDeniedError),
        (NoCredentialsError(), AccessDeniedError),
        (TimeoutError("slow"), StoreUnavailableError),
        (ConnectionRefusedError("down"), StoreUnavailableError),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), StoreUnavailableError),
        (ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), StoreUnavailableError),
        (ConnectTimeoutError(endpoint_url="http://127.0.0.1:1"), StoreUnavailableError),
        (ValueError("something else"), StorageError),
    ]


@pytest.mark.parametrize("error, expected", _store_failures(), ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else v.__name__)
def test_every_store_failure_maps_to_a_ferry_error(error: BaseException, expected: type) -> None:
    from ferry.storage.io import map_store_error

    mapped = map_store_error(error, "read", "s3://raw/x/y", "raw")
    assert type(mapped) is expected
    assert "s3://raw/x/y (raw store)" in str(mapped)
    assert mapped.retryable == (expected is StoreUnavailableError)


@pytest.mark.s3
def test_missing_bucket_says_so(s3_server: Any) -> None:
    with pytest.raises(ObjectNotFoundError, match="bucket exists"):
        read_bytes("s3://no-such-bucket/x.pb", s3_server.options())


def test_long_transfers_report_to_the_open_display(base: tuple[str, dict[str, Any]], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import ferry.progress
    from ferry.storage import progress as transfer_progress

    class Bar:
        def __init__(self, description: str, total: int) -> None:
            self.description, self.total, self.done, self.closed = description, total, 0, False

        def advance(self, nbytes: int) -> None:
            self.done += nbytes

        def set_total(self, nbytes: int) -> None:
            self.total = nbytes

        def close(self) -> None:
            self.closed = True

    class Sink:
        def __init__(self) -> None:
            self.bars: list[Bar] = []

        def transfer(self, description: str, total: int) -> Bar:
            self.bars.append(Bar(description, total))
            return self.bars[-1]

    monkeypatch.setattr(transfer_progress, "MIN_BYTES", 1)  # show every transfer at once
    monkeypatch.setattr(transfer_progress, "SHOW_AFTER_SECONDS", 0.0)
    prefix, options = base
    local = tmp_path / "big.bin"
    local.write_bytes(os.urandom(3 * 1024 * 1024))
    upload_file(local, join(prefix, "big.bin"), options)  # no display open: nothing is drawn, nothing breaks
    sink = Sink()
    previous = ferry.progress.set_sink(sink)
    try:
        upload_file(local, join(prefix, "big.bin"), options)
        download_file(join(prefix, "big.bin"), tmp_path / "back.bin", options)
    finally:
        ferry.progress.set_sink(previous)
    assert [b.description for b in sink.bars] == ["upload big.bin", "download big.bin"]
    assert all(b.done == 3 * 1024 * 1024 and b.closed for b in sink.bars)  # every byte counted once, then closed


@pytest.mark.s3
def test_the_test_s3_server_leaves_nothing_in_the_temporary_folder(tmp_path: Path) -> None:
    """weed writes logs and unix sockets to /tmp and leaves them: hundreds piled up over the suite's runs."""
    import signal
    import tempfile

    from ferry.testing.s3server import SeaweedS3

    def weeds() -> set[str]:
        return {n for root in {"/tmp", tempfile.gettempdir()} for n in os.listdir(root)
                if n.startswith(("seaweedfs-", "weed.", "ferry-weed-"))}

    before = weeds()
    with SeaweedS3(tmp_path / "s3", ["bucket"]) as s3:
        write_bytes("s3://bucket/a.bin", b"a", s3.options())
        assert weeds() - before  # it made some while running
    assert weeds() - before == set()
    with SeaweedS3(tmp_path / "killed", ["bucket"]) as s3:  # one that gets no chance to clean up after itself
        write_bytes("s3://bucket/a.bin", b"a", s3.options())
        assert s3.process is not None
        os.killpg(s3.process.pid, signal.SIGKILL)
        s3.process.wait()
    assert weeds() - before == set()


@pytest.mark.s3
def test_the_test_s3_server_starts_again_when_its_port_is_taken_first(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The S3 port found free is taken by another process before weed binds it: weed exits saying so, and the
    server starts again on other ports (a suite that starts many servers met this)."""
    import socket

    from ferry.testing import s3server

    taken = socket.socket()  # bound, not listening: weed can't have the port, and a probe of it is refused at once
    taken.bind(("127.0.0.1", 0))
    ports = iter([taken.getsockname()[1]])
    real = s3server.free_port
    monkeypatch.setattr(s3server, "free_port", lambda: next(ports, None) or real())
    try:
        with s3server.SeaweedS3(tmp_path / "weed", buckets=["raw"]) as server:
            assert server.port != taken.getsockname()[1]
            assert server.process is not None and server.process.poll() is None
    finally:
        taken.close()
