"""Transfers: ranged downloads and multipart uploads that are exact, atomic, bounded in memory, and fail over a stall."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from ferry.errors import ConfigError, StorageError
from ferry.storage import download_file, read_bytes, transfer, upload_file, write_bytes
from ferry.storage.transfer import TransferConfig, s3_config

FLOWS = str(Path(__file__).parent / "flows" / "transfer.py")
SMALL_CHUNKS = {"chunk_size": "5MiB", "concurrency": 3}
# a real botocore option obstore has no equivalent for: such a store goes through s3fs
FSSPEC_ONLY = {"config_kwargs": {"tcp_keepalive": True}}


def s3_options(server: Any, path: str = "obstore", **extra: Any) -> dict[str, Any]:
    options = {**server.options(), **extra}
    if path == "fsspec":
        options["config_kwargs"] = {**options.get("config_kwargs", {}), **FSSPEC_ONLY["config_kwargs"]}
    return options


def patterned(path: Path, size: int) -> bytes:
    """A file whose every 4-byte word is its own offset, so a chunk written at the wrong place shows."""
    import numpy as np

    data = (np.arange((size + 3) // 4, dtype="<u4") * 4).tobytes()[:size]
    path.write_bytes(data)
    return data


# ---- which client serves a store ------------------------------------------------------------------------


def test_s3_options_translate_to_obstore() -> None:
    config = s3_config({"key": "k", "secret": "s", "client_kwargs": {"endpoint_url": "http://127.0.0.1:9000",
                        "region_name": "eu-west-1"}, "config_kwargs": {"read_timeout": 2, "retries": {"max_attempts": 3}},
                        "skip_instance_cache": True, "transfer": {"concurrency": 2}})
    assert config is not None
    assert (config["access_key_id"], config["secret_access_key"], config["region"], config["endpoint"]) == \
        ("k", "s", "eu-west-1", "http://127.0.0.1:9000")
    assert config["client_options"]["allow_http"] and config["client_options"]["read_timeout"].total_seconds() == 2
    assert config["retry_config"]["max_retries"] == 2 and not config["virtual_hosted_style_request"]


def test_s3_credentials_come_from_botocore_when_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    config = s3_config({"profile": "team"})
    assert config is not None and config["botocore_credentials"] and config["profile"] == "team"
    assert config["virtual_hosted_style_request"]  # AWS itself: bucket.s3.amazonaws.com
    assert s3_config({"anon": True, "endpoint_url": "http://x:1"})["skip_signature"]  # type: ignore[index]


@pytest.mark.parametrize("options", [
    {"s3_additional_kwargs": {"ServerSideEncryption": "AES256"}},
    FSSPEC_ONLY,
    {"client_kwargs": {"verify": "/etc/ca.pem"}},
    {"key": "k", "secret": "s"},  # AWS with no region anywhere: s3fs finds the bucket's region, obstore can't
], ids=["extra-kwargs", "botocore-option", "ca-bundle", "no-region"])
def test_options_obstore_cannot_honour_go_through_s3fs(options: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    assert s3_config(options) is None


def test_transfer_settings_are_checked_and_hidden_from_fsspec() -> None:
    assert TransferConfig.from_options({"transfer": {"chunk_size": "32MiB", "concurrency": 2}}) == \
        TransferConfig(32 << 20, 2)
    assert TransferConfig().part_size(200 << 30) == (200 << 30) // 10_000 + 1  # S3's 10,000 parts at most
    for bad in ({"chunk_size": "1MiB"}, {"concurrency": 0}, {"chunk_size": "lots"}, {"threads": 4}):
        with pytest.raises(ConfigError, match="transfer|Transfer"):
            TransferConfig.from_options({"transfer": bad})
    options = {"transfer": {"concurrency": 2}}
    write_bytes("memory://bucket/transfer-opts/x", b"ok", options)  # fsspec would refuse an unknown 'transfer'
    assert read_bytes("memory://bucket/transfer-opts/x", options) == b"ok"


# ---- exact and atomic -----------------------------------------------------------------------------------


@pytest.mark.s3
@pytest.mark.parametrize("path", ["obstore", "fsspec"])
@pytest.mark.parametrize("size", [0, 1, 5 << 20, (17 << 20) + 3], ids=["empty", "one-byte", "one-chunk", "chunks"])
def test_ranged_download_and_multipart_upload_are_exact(s3_server: Any, tmp_path: Path, size: int, path: str) -> None:
    options = s3_options(s3_server, path, transfer=SMALL_CHUNKS)
    data = patterned(tmp_path / "src.bin", size)
    uri = f"s3://raw/{uuid.uuid4().hex[:8]}/obj.bin"
    assert upload_file(tmp_path / "src.bin", uri, options) == size
    back = download_file(uri, tmp_path / "out" / "back.bin", options)
    assert Path(back).read_bytes() == data
    assert read_bytes(uri, options) == data
    assert sorted(os.listdir(tmp_path / "out")) == ["back.bin"]  # no temporary left behind


@pytest.mark.parametrize("short", [False, True], ids=["whole-writes", "short-writes"])
def test_downloads_write_whole_mibs_at_mib_offsets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   short: bool) -> None:
    """Pieces of any size become writes that end on MiB boundaries (the page cache then holds the file in
    large folios), the bytes exact, even when the kernel writes less than asked."""
    import random

    rng = random.Random(7)
    data = rng.randbytes((5 << 20) + 12_345)
    offset = 3 * 4096 + 17  # a range can start anywhere
    writes: list[tuple[int, int]] = []
    real = os.pwritev

    def recording(fd: int, views: list[Any], at: int) -> int:
        if short:  # the kernel writes at most 300 KB of it
            room, capped = 300_000, []
            for view in views:
                capped.append(view[:room])
                room -= len(capped[-1])
            views = [v for v in capped if len(v)]
        done = real(fd, views, at)
        writes.append((at, done))
        return done

    monkeypatch.setattr(transfer.os, "pwritev", recording)
    fd = os.open(tmp_path / "f.bin", os.O_RDWR | os.O_CREAT)
    try:
        writer, pos = transfer.AlignedWriter(fd, offset), 0
        while pos < len(data):
            n = rng.choice([1, 4096, 100_000, 1_254_000, 3 << 20])
            writer.add(memoryview(data)[pos:pos + n])
            pos += n
            assert offset + pos - writer.written < (1 << 20) + n  # holds less than a MiB and the last piece
        writer.flush()
    finally:
        os.close(fd)
    assert (tmp_path / "f.bin").read_bytes()[offset:] == data
    assert writer.written == offset + len(data)
    assert writes[0][0] == offset and all(a + n == b for (a, n), (b, _) in zip(writes[:-1], writes[1:], strict=True))  # in order
    if not short:
        assert all((at + n) % (1 << 20) == 0 for at, n in writes[:-1])  # every write but the last ends on a MiB
        assert len(writes) > 2


def test_more_held_pieces_than_one_write_takes_are_written_exactly(tmp_path: Path) -> None:
    """A MiB of 400-byte pieces: more than IOV_MAX (1024) views at once, written in several calls."""
    data = os.urandom(3000 * 400)
    fd = os.open(tmp_path / "f.bin", os.O_RDWR | os.O_CREAT)
    try:
        writer = transfer.AlignedWriter(fd, 0)
        for i in range(0, len(data), 400):
            writer.add(memoryview(data)[i:i + 400])
        writer.flush()
    finally:
        os.close(fd)
    assert (tmp_path / "f.bin").read_bytes() == data


@pytest.mark.s3
def test_one_at_a_time_is_sequential_and_exact(s3_server: Any, tmp_path: Path) -> None:
    options = s3_options(s3_server, transfer={"chunk_size": "5MiB", "concurrency": 1})
    data = patterned(tmp_path / "src.bin", (11 << 20) + 5)
    uri = f"s3://raw/{uuid.uuid4().hex[:8]}/one.bin"
    upload_file(tmp_path / "src.bin", uri, options)
    assert Path(download_file(uri, tmp_path / "back.bin", options)).read_bytes() == data


@pytest.mark.s3
def test_an_object_replaced_mid_download_fails_and_publishes_nothing(s3_server: Any, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Between the first ranged GET and the others, the object is overwritten: the others carry its ETag, so they
    fail (412) instead of mixing two versions into one file."""
    options = s3_options(s3_server, transfer=SMALL_CHUNKS)
    uri = f"s3://raw/{uuid.uuid4().hex[:8]}/changing.bin"
    patterned(tmp_path / "v1.bin", 16 << 20)
    (tmp_path / "v2.bin").write_bytes(os.urandom(16 << 20))
    upload_file(tmp_path / "v1.bin", uri, options)
    first = transfer._RangedDownload._first

    def first_then_replace(self: Any) -> Any:
        answer = first(self)
        upload_file(tmp_path / "v2.bin", uri, options)
        return answer

    monkeypatch.setattr(transfer._RangedDownload, "_first", first_then_replace)
    with pytest.raises(StorageError, match="replaced while it was being read"):
        download_file(uri, tmp_path / "out" / "x.bin", options)
    assert os.listdir(tmp_path / "out") == []


# ---- a stalled server -----------------------------------------------------------------------------------


@pytest.mark.s3
@pytest.mark.faults
@pytest.mark.parametrize("path", ["obstore", "fsspec"])
@pytest.mark.parametrize("operation", ["write_bytes", "upload_file"])
def test_a_write_to_a_stalled_server_times_out_and_is_retried(s3_server: Any, tmp_path: Path, path: str,
                                                              operation: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server is stopped (SIGSTOP) before the write; the first retry resumes it. Before the fix a PUT waited for
    "100 Continue" forever: the write must instead time out, be retried, and then succeed."""
    from ferry.storage import io

    options = s3_options(s3_server, path, transfer=SMALL_CHUNKS,
                         config_kwargs={"connect_timeout": 1, "read_timeout": 1, "retries": {"max_attempts": 1}})
    uri = f"s3://raw/{uuid.uuid4().hex[:8]}/stalled.bin"
    data = os.urandom((12 << 20) if operation == "upload_file" else 1000)  # a multipart upload of 3 parts
    (tmp_path / "src.bin").write_bytes(data)
    write_bytes(f"{uri}.warm", b"connections and imports ready", options, "raw")
    retried = threading.Event()
    retries: list[str] = []  # why each attempt failed: printed if the write fails in the end

    def resume_on_retry(event: str, detail: str) -> None:
        if event == "retry":
            retries.append(detail)
            if not retried.is_set():
                retried.set()
                s3_server.resume()

    monkeypatch.setattr(io, "observers", [resume_on_retry])
    outcome: list[BaseException | None] = []

    def write() -> None:
        try:
            if operation == "upload_file":
                upload_file(tmp_path / "src.bin", uri, options)
            else:
                write_bytes(uri, data, options, "raw")
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - reported below
            outcome.append(exc)

    s3_server.pause()
    writer = threading.Thread(target=write)
    try:
        writer.start()
        was_retried = retried.wait(120)  # only a guard against the old hang: a stalled write is retried in ~1-20 s
    finally:
        s3_server.resume()
        writer.join(120)
    assert was_retried, f"the write to a stalled server was not retried within 2 minutes; it ended with {outcome}"
    assert outcome == [None], (outcome, retries)
    assert read_bytes(uri, options) == data


# ---- bounded memory -------------------------------------------------------------------------------------

MEMORY_LIMIT_MIB = 150
_PEAK = """
import json, os, sys
from ferry.storage import download_file, upload_file, register_protocol
register_protocol("ferrytestfs", "fsspec.implementations.local.LocalFileSystem")

def hwm():
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) / 1024 for line in fh if line.startswith("VmHWM:"))

src, uri, options, back = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
with open(src + ".warm", "wb") as fh:
    fh.write(b"w" * 100)
upload_file(src + ".warm", uri + ".warm", options)  # imports and clients first: not what is measured
download_file(uri + ".warm", back + ".warm", options)
base = hwm()
upload_file(src, uri, options)
up = hwm() - base
download_file(uri, back, options)
print(json.dumps({"upload": up, "download": hwm() - base}))
"""


@pytest.mark.s3
@pytest.mark.parametrize("store", ["file", "user-protocol", "s3", "s3-fsspec"])
def test_transfers_stay_within_150_mib_above_imports(store: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """A 384 MiB object: more than the limit, so any transfer holding it (or s3fs's ten 50 MiB parts) fails."""
    size = 384 << 20
    src = tmp_path / "src.bin"
    with open(src, "wb") as fh:
        block = os.urandom(1 << 20)
        for _ in range(size >> 20):
            fh.write(block)
    options: dict[str, Any] = {}
    if store == "file":
        uri = f"file://{tmp_path}/store/obj.bin"
    elif store == "user-protocol":
        uri = f"ferrytestfs://{tmp_path}/store/obj.bin"
    else:
        server = request.getfixturevalue("s3_server")
        options = s3_options(server, "fsspec" if store == "s3-fsspec" else "obstore")
        uri = f"s3://raw/{uuid.uuid4().hex[:8]}/obj.bin"
    proc = subprocess.run([sys.executable, "-c", _PEAK, str(src), uri, json.dumps(options), str(tmp_path / "back.bin")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    peaks = json.loads(proc.stdout.strip().splitlines()[-1])
    assert peaks["upload"] < MEMORY_LIMIT_MIB and peaks["download"] < MEMORY_LIMIT_MIB, peaks
    assert os.path.getsize(tmp_path / "back.bin") == size


@pytest.mark.s3
def test_a_2_gib_file_between_two_tasks_on_s3_stays_within_150_mib(s3_settings: Any) -> None:
    """Process executor, one warm worker: the producer's upload and the consumer's download each peak at most
    150 MiB above what the task process held when it started measuring (after its imports)."""
    import ferry
    from ferry.runtime.load import load_object

    mib = int(os.environ.get("TRANSFER_TEST_MIB", 2048))
    wf = load_object(FLOWS, "hand_over", "workflow")
    execution = ferry.run(wf, {"mib": mib}, executor="process", executor_options={"workers": 1})
    assert execution.status == "succeeded", execution.error
    producer, consumer, upload_peak, download_peak = execution.outputs
    assert producer == consumer, "both tasks must run in the one worker process for the upload to be measured"
    print(f"{mib} MiB File: upload peak {upload_peak:.0f} MiB, download peak {download_peak:.0f} MiB above the task's")
    assert upload_peak < MEMORY_LIMIT_MIB and download_peak < MEMORY_LIMIT_MIB, (upload_peak, download_peak)


def test_hashing_streams(tmp_path: Path) -> None:
    from ferry.types.hashing import HASH_LIMIT, file_hash

    data = os.urandom(3 << 20)
    (tmp_path / "x.bin").write_bytes(data)
    assert file_hash(tmp_path / "x.bin") == "sha256:" + hashlib.sha256(data).hexdigest()
    code = textwrap.dedent(f"""
        import resource
        from ferry.types.hashing import file_hash
        with open({str(tmp_path / 'big.bin')!r}, "wb") as fh:
            fh.truncate({HASH_LIMIT})
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        assert file_hash({str(tmp_path / 'big.bin')!r})
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
    """)
    grown = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert grown < 16, f"hashing {HASH_LIMIT >> 20} MiB grew the process by {grown:.0f} MiB"
