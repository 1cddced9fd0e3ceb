"""Moving object bytes fast and in bounded memory: concurrent ranged GETs written in place, concurrent multipart PUTs.

S3 objects move through obstore (Rust: on a 2-core machine beside SeaweedFS it spent about half the CPU
per byte of boto3 and a sixth of s3fs's, and CPU is what bounds throughput there; see benchmarks/transfer.py).
A download asks for the first chunk, learns the object's size and ETag from that answer, preallocates the
destination and fetches the other chunks on ``concurrency`` threads, each streaming its range into place
with ``pwrite`` (a chunk never sits whole in memory) and pinned to the ETag, so an object replaced
mid-download fails instead of mixing two versions. An upload is one PUT up to a chunk, else a multipart
upload of ``concurrency`` parts at a time. Writes time out like reads.

Every other protocol (file, memory, gs, a user's) goes through its fsspec implementation, and so does S3
when obstore is not installed or the store's options hold something obstore can't do; s3fs is then given
this store's chunk size and as many chunks at once as fit in 64 MiB (by default it holds ten 50 MiB parts,
each twice), and told not to wait for "100 Continue" (a PUT to a stalled server would wait forever).

Tuning, per store, in its options (``[stores.raw.transfer]`` in ferry.toml, or ``"transfer": {...}`` in
FERRY_RAW_OPTIONS): ``chunk_size`` (bytes, or "8MiB") and ``concurrency``. The functions here raise what
the libraries raise (obstore's transport failures as ConnectionError); ``storage.io`` maps and retries.
"""

from __future__ import annotations

import datetime
import errno
import functools
import json
import math
import os
import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, cast

from ferry.errors import ConfigError
from ferry.storage.registry import TRANSFER_OPTION, filesystem, import_module, protocol_of

# 8 MiB parts (boto3's default too): a 512 MiB upload to SeaweedFS ran at a median 161 MiB/s against 141-148 with
# 16 MiB parts (8 alternated rounds each, twice), in half the memory
DEFAULT_CHUNK_SIZE = 8 << 20
DEFAULT_CONCURRENCY = 4  # uploads hold chunk_size x concurrency (32 MiB) in flight; downloads 1 MiB each
MIN_PART_SIZE = 5 << 20  # S3's smallest multipart part (all but the last)
MAX_PARTS = 10_000  # S3's most parts in one upload
STREAM_PIECE = 1 << 20  # a ranged GET is written out this much at a time
FSSPEC_PIECE = 4 << 20  # where fsspec serves a range, it reads this much per request
MAX_RANGE = 64 << 20  # the longest ranged GET of a download (each streams: memory is not the limit)
ALIGN = 1 << 20  # downloads write whole MiBs at MiB offsets (see AlignedWriter)
COPY_CHUNK = 8 << 20  # a watched local copy reports this often
S3FS_BUFFER_BYTES = 64 << 20  # what s3fs may hold for one transfer (when it, not obstore, serves S3)
S3_PROTOCOLS = ("s3", "s3a")

Progress = Callable[[int], None]  # called with the bytes just moved (from any thread)


@dataclass(frozen=True)
class TransferConfig:
    """How one store's objects move: chunks of ``chunk_size`` bytes, ``concurrency`` of them in flight."""

    chunk_size: int = DEFAULT_CHUNK_SIZE
    concurrency: int = DEFAULT_CONCURRENCY

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None) -> "TransferConfig":
        table = (options or {}).get(TRANSFER_OPTION) or {}
        if not isinstance(table, Mapping) or set(table) - {"chunk_size", "concurrency"}:
            raise ConfigError(
                f"A store's {TRANSFER_OPTION!r} options must be a table with chunk_size and/or concurrency, got "
                f"{table!r}. Example: [stores.raw.transfer] chunk_size = \"16MiB\", concurrency = 8."
            )
        from ferry.units import parse_size

        try:
            chunk = parse_size(str(table.get("chunk_size", DEFAULT_CHUNK_SIZE)))
            concurrency = int(table.get("concurrency", DEFAULT_CONCURRENCY))
        except ValueError:
            chunk, concurrency = 0, 0
        if chunk < MIN_PART_SIZE or not 1 <= concurrency <= 64:
            raise ConfigError(
                f"Transfer options {dict(table)!r} are out of range: chunk_size must be a size of at least 5MiB "
                "(S3's smallest part) and concurrency a whole number from 1 to 64. Memory in flight per transfer "
                "is about chunk_size x concurrency for uploads, 1MiB x concurrency for downloads."
            )
        return cls(chunk, concurrency)

    def part_size(self, size: int) -> int:
        """The multipart part size for an object of ``size`` bytes (grown to stay within S3's 10,000 parts)."""
        return max(self.chunk_size, math.ceil(size / MAX_PARTS))


# ---- the operations (each picks obstore or fsspec for the URI) ------------------------------------------


def get_bytes(uri: str, options: Mapping[str, Any] | None) -> bytes:
    """The whole object."""
    target = _obstore_target(uri, options)
    if target is None:
        fs, path = filesystem(uri, options)
        return bytes(fs.cat_file(path))
    store, key = target
    with _obstore_errors():
        return bytes(_obstore().get(store, key).bytes())


def put_bytes(uri: str, data: bytes, options: Mapping[str, Any] | None) -> None:
    """One write of ``data``; on object stores it is published whole or not at all."""
    target = _obstore_target(uri, options)
    if target is None:
        fs, path = filesystem(uri, options)
        _without_expect_continue(fs)
        fs.pipe_file(path, data)
        return
    store, key = target
    config = TransferConfig.from_options(options)
    part = config.part_size(len(data))
    with _obstore_errors():
        if len(data) <= config.chunk_size:
            _obstore().put(store, key, data, use_multipart=False)
        else:
            _obstore().put(store, key, _pieces(memoryview(data), part), chunk_size=part,
                           max_concurrency=config.concurrency)


def get_range(uri: str, options: Mapping[str, Any] | None) -> Callable[[int, int], Iterator[bytes | memoryview]]:
    """A function streaming bytes start..stop of the object (one ranged GET each) in pieces, for repeated use."""
    target = _obstore_target(uri, options)
    if target is None:
        fs, path = filesystem(uri, options)

        def read_fsspec(start: int, stop: int) -> Iterator[bytes]:
            for a in range(start, stop, FSSPEC_PIECE):  # a long range is never whole in memory
                yield fs.cat_file(path, start=a, end=min(stop, a + FSSPEC_PIECE))

        return read_fsspec
    store, key = target
    obstore = _obstore()

    def read(start: int, stop: int) -> Iterator[memoryview]:
        with _obstore_errors():
            for piece in obstore.get(store, key, options={"range": (start, stop)}).stream(min_chunk_size=STREAM_PIECE):
                yield memoryview(piece)

    return read


Wrote = Callable[[int, int], None]  # (a range's start, how far it is now on disk): a reader may follow a download


def reports_writes(uri: str, options: Mapping[str, Any] | None) -> bool:
    """Whether ``download`` of ``uri`` calls its ``wrote`` as each range's bytes reach the file (a ranged GET
    download does; fsspec's copies report no positions)."""
    return _obstore_target(uri, options) is not None


def download(uri: str, dest: str, options: Mapping[str, Any] | None, progress: Progress | None = None,
             wrote: Wrote | None = None) -> int:
    """Write the object into the local file ``dest`` (created or truncated); returns its size. Where
    ``reports_writes``, ``wrote(start, end)`` says that bytes start..end of one of its ranges are in the file."""
    target = _obstore_target(uri, options)
    config = TransferConfig.from_options(options)
    if target is None:
        fs, path = filesystem(uri, options)
        if progress is not None and protocol_of(uri) == "file":  # fsspec's local copy reports nothing
            return _copy_counted(path, dest, progress)
        fs.get_file(path, dest, callback=_fsspec_callback(progress), **_s3fs_limits(fs, config))
        return os.path.getsize(dest)
    store, key = target
    with _obstore_errors():
        return _RangedDownload(store, key, dest, config, progress, wrote).run()


def upload(local: str, uri: str, options: Mapping[str, Any] | None, progress: Progress | None = None) -> int:
    """Write the local file at ``uri`` (one PUT, or a multipart upload for a large one); returns its size."""
    size = os.path.getsize(local)
    target = _obstore_target(uri, options)
    config = TransferConfig.from_options(options)
    if target is None:
        fs, path = filesystem(uri, options)
        if progress is not None and protocol_of(uri) == "file":  # fsspec's local copy reports nothing
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            return _copy_counted(local, path, progress)
        _without_expect_continue(fs)
        fs.put_file(local, path, callback=_fsspec_callback(progress), **_s3fs_limits(fs, config))
        return size
    store, key = target
    part = config.part_size(size)
    with _obstore_errors():
        if size <= config.chunk_size:
            with open(local, "rb") as fh:
                _obstore().put(store, key, fh.read(), use_multipart=False)
            if progress:
                progress(size)
        else:
            _obstore().put(store, key, _file_parts(local, part, progress), chunk_size=part,
                           max_concurrency=config.concurrency)
    return size


# ---- obstore -----------------------------------------------------------------------------------------


class _RangedDownload:
    """One object into one local file: the first chunk tells the size, the rest come concurrently."""

    def __init__(self, store: Any, key: str, dest: str, config: TransferConfig, progress: Progress | None,
                 wrote: Wrote | None = None) -> None:
        self.store, self.key, self.dest, self.config, self.progress, self.wrote = store, key, dest, config, progress, wrote
        self.obstore = _obstore()
        self.failed = threading.Event()

    def run(self) -> int:
        fd = os.open(self.dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            first = self._first()
            size, etag = int(first.meta["size"]), first.meta.get("e_tag")
            _preallocate(fd, size)
            chunk = min(size, self.config.chunk_size)
            tasks: list[tuple[Callable[..., None], Any, Any, int, Any]] = [(self._write, fd, first, 0, chunk)]
            tasks += [(self._fetch, fd, start, stop, etag) for start, stop in self._ranges(chunk, size)]
            if self.config.concurrency == 1 or len(tasks) == 1:
                for fn, *args in tasks:
                    fn(*args)
                return size
            with ThreadPoolExecutor(min(len(tasks), self.config.concurrency), thread_name_prefix="ferry-download") as pool:
                futures = [pool.submit(fn, *args) for fn, *args in tasks]
                done, _ = wait(futures, return_when=FIRST_EXCEPTION)
                errors = [error for f in done if (error := f.exception()) is not None]
                if errors:
                    self.failed.set()
                    pool.shutdown(cancel_futures=True)
                    raise errors[0]
            return size
        finally:
            os.close(fd)

    def _ranges(self, start: int, size: int) -> list[tuple[int, int]]:
        """The rest of the object in ranges of at least a chunk: as long as gives each thread about two (so
        the server reads long runs, and the last ones even out), up to MAX_RANGE."""
        span = math.ceil((size - start) / (2 * self.config.concurrency))
        span = max(self.config.chunk_size, min(MAX_RANGE, span))
        span = -(-span // ALIGN) * ALIGN
        return [(a, min(size, a + span)) for a in range(start, size, span)]

    def _first(self) -> Any:
        try:
            return self.obstore.get(self.store, self.key, options={"range": (0, self.config.chunk_size)})
        except self._errors().GenericError as exc:
            if "416" not in str(exc):  # 416 Range Not Satisfiable: the object is empty
                raise
            return self.obstore.get(self.store, self.key)

    def _fetch(self, fd: int, start: int, stop: int, etag: str | None) -> None:
        if self.failed.is_set():
            return
        options: dict[str, Any] = {"range": (start, stop)}
        if etag:
            options["if_match"] = etag  # a replaced object fails (412) instead of mixing two versions
        with _obstore_errors():
            self._write(fd, self.obstore.get(self.store, self.key, options=options), start, stop)

    def _write(self, fd: int, result: Any, start: int, stop: int) -> None:
        writer = AlignedWriter(fd, start)
        for piece in result.stream(min_chunk_size=STREAM_PIECE):
            if self.failed.is_set():
                return
            view = memoryview(piece)
            before = writer.written
            writer.add(view)
            if self.wrote and writer.written > before:
                self.wrote(start, writer.written)
            if self.progress:
                self.progress(len(view))
        writer.flush()
        if self.wrote:
            self.wrote(start, writer.written)
        if writer.written != stop:
            raise ConnectionError(f"the server sent {writer.written - start} bytes of {stop - start} for bytes "
                                  f"{start}-{stop}")

    def _errors(self) -> Any:
        return import_module("obstore.exceptions")


_IOV_MAX = max(16, os.sysconf("SC_IOV_MAX")) if hasattr(os, "sysconf") else 1024


class AlignedWriter:
    """Writes the pieces of a stream, arriving in order, into a file from ``offset`` on, so that each write ends
    on an ALIGN boundary of the file (but the last). Pieces arrive in whatever sizes the network gives
    (obstore's are ~1.2 MiB); written as they come, each write begins and ends mid-MiB, and the page cache
    keeps the file in small folios around every seam: a warm read of a 512 MiB download ran at 16,660 MiB/s
    against 18,141 for a local file written in 8 MiB writes. Held pieces are views, not copies (one ``pwritev``
    joins them); what is held is less than ALIGN plus one piece."""

    def __init__(self, fd: int, offset: int) -> None:
        self.fd = fd
        self.written = offset  # the file holds the stream's bytes up to here
        self._held: list[memoryview] = []
        self._size = 0

    def add(self, piece: memoryview) -> None:
        """Take the next piece; writes the held bytes up to the last ALIGN boundary they reach."""
        self._held.append(piece)
        self._size += len(piece)
        end = self.written + self._size
        self._write(end - end % ALIGN - self.written)

    def flush(self) -> None:
        """Write what is held (the stream ended)."""
        self._write(self._size)

    def _write(self, n: int) -> None:
        while n > 0:
            views, total = [], 0
            for view in self._held[:_IOV_MAX]:  # one pwritev takes at most IOV_MAX pieces
                take = min(len(view), n - total)
                views.append(view[:take])
                total += take
                if total == n:
                    break
            done = os.pwritev(self.fd, views, self.written)
            if done <= 0:
                raise OSError(errno.EIO, f"a write of {n} bytes wrote nothing")
            self.written, self._size, n = self.written + done, self._size - done, n - done
            while done:
                first = self._held[0]
                if len(first) <= done:
                    self._held.pop(0)
                    done -= len(first)
                else:
                    self._held[0], done = first[done:], 0


def _preallocate(fd: int, size: int) -> None:
    """Reserve the file's blocks up front (a full disk fails now, not mid-way); sets its size either way."""
    if size:
        try:
            os.posix_fallocate(fd, 0, size)
            return
        except OSError as exc:
            if exc.errno not in (95, 22):  # EOPNOTSUPP / EINVAL: this filesystem can't; ENOSPC etc. propagate
                raise
    os.ftruncate(fd, size)


def _file_parts(local: str, part: int, progress: Progress | None) -> Iterator[bytes]:
    with open(local, "rb", buffering=0) as fh:
        while data := fh.read(part):
            yield data
            if progress:
                progress(len(data))


def _pieces(view: memoryview, part: int) -> Iterator[memoryview]:
    for start in range(0, len(view), part):
        yield view[start:start + part]


_stores: dict[tuple[int, str], Any] = {}
_stores_lock = threading.Lock()
_fsspec_s3: dict[str, bool] = {}


def _obstore() -> Any:
    return import_module("obstore")


def _obstore_target(uri: str, options: Mapping[str, Any] | None) -> tuple[Any, str] | None:
    """(obstore S3Store, key) for an S3 URI that obstore can serve with these options, else None (fsspec)."""
    protocol = protocol_of(uri)
    if protocol not in S3_PROTOCOLS or not _s3fs_serves(protocol) or not _obstore_installed():
        return None
    config = s3_config(options or {})
    if config is None:
        return None
    bucket, _, key = uri.partition("://")[2].partition("/")
    cache_key = (os.getpid(), json.dumps([bucket, config], sort_keys=True, default=str))  # a forked child makes its own
    with _stores_lock:
        store = _stores.get(cache_key)
        if store is None:
            store = _stores[cache_key] = _make_store(bucket, config)
    return store, key


@functools.cache
def _obstore_installed() -> bool:
    try:
        import_module("obstore")
    except ImportError:
        return False
    return True


def _s3fs_serves(protocol: str) -> bool:
    """Whether fsspec maps ``protocol`` to s3fs (a user may have registered their own implementation)."""
    if protocol not in _fsspec_s3:
        try:
            cls = import_module("fsspec").get_filesystem_class(protocol)
        except (ImportError, ValueError):
            return False
        _fsspec_s3[protocol] = cls.__module__.split(".")[0] == "s3fs"
    return _fsspec_s3[protocol]


def _make_store(bucket: str, config: dict[str, Any]) -> Any:
    from obstore.store import S3Store

    config = dict(config)
    client_options = config.pop("client_options")
    retry_config = config.pop("retry_config")
    profile = config.pop("profile", None)
    provider = _BotocoreCredentials(profile) if config.pop("botocore_credentials", False) else None
    return S3Store(bucket, config=cast(Any, config), client_options=client_options, retry_config=retry_config,
                   credential_provider=cast(Any, provider))


# s3fs options that only concern fsspec's caches or s3fs itself
_IGNORED = frozenset({
    "skip_instance_cache", "use_listings_cache", "listings_expiry_time", "max_paths", "default_block_size",
    "default_fill_cache", "default_cache_type", "cache_regions", "asynchronous", "loop", "max_concurrency",
    "fixed_upload_size", "version_aware", TRANSFER_OPTION,
})
_CLIENT_KEYS = frozenset({"endpoint_url", "region_name", "aws_access_key_id", "aws_secret_access_key",
                          "aws_session_token", "verify", "use_ssl"})  # use_ssl: the endpoint's scheme says it
_BOTOCORE_KEYS = frozenset({"connect_timeout", "read_timeout", "retries", "s3", "region_name", "signature_version"})


def s3_config(options: Mapping[str, Any]) -> dict[str, Any] | None:
    """obstore's S3Store settings equivalent to s3fs ``options``, or None when some option has no equivalent.

    Credentials: key/secret/token (top level or in client_kwargs), anon, else botocore's own chain (environment,
    ~/.aws, ``profile``, instance roles), asked again every few minutes.
    """
    client = dict(options.get("client_kwargs") or {})
    botocore = dict(options.get("config_kwargs") or {})
    unknown = set(options) - _IGNORED - {"key", "secret", "token", "anon", "endpoint_url", "client_kwargs",
                                         "config_kwargs", "requester_pays", "profile", "use_ssl"}
    retries = botocore.get("retries") or {}
    if (unknown or set(client) - _CLIENT_KEYS or set(botocore) - _BOTOCORE_KEYS
            or set(botocore.get("s3") or {}) - {"addressing_style"} or set(retries) - {"max_attempts", "mode"}
            or botocore.get("signature_version", "s3v4") != "s3v4" or isinstance(client.get("verify"), str)):
        return None
    endpoint = options.get("endpoint_url") or client.get("endpoint_url") or os.environ.get("AWS_ENDPOINT_URL")
    region = client.get("region_name") or botocore.get("region_name") or os.environ.get("AWS_REGION") \
        or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        if not endpoint:
            return None  # an AWS bucket in an unknown region: s3fs finds it, obstore would not
        region = "us-east-1"
    config: dict[str, Any] = {"region": region}
    if endpoint:
        config["endpoint"] = endpoint
    style = (botocore.get("s3") or {}).get("addressing_style", "auto")
    config["virtual_hosted_style_request"] = style == "virtual" or (style == "auto" and not endpoint)
    key = options.get("key") or client.get("aws_access_key_id")
    secret = options.get("secret") or client.get("aws_secret_access_key")
    token = options.get("token") or client.get("aws_session_token")
    if options.get("anon"):
        config["skip_signature"] = True
    elif key and secret:
        config.update(access_key_id=key, secret_access_key=secret)
        if token:
            config["session_token"] = token
    else:
        config["botocore_credentials"] = True
        if options.get("profile"):
            config["profile"] = options["profile"]
    if options.get("requester_pays"):
        config["request_payer"] = True
    client_options: dict[str, Any] = {
        "allow_http": str(endpoint or "").startswith("http://"),
        "connect_timeout": _seconds(botocore.get("connect_timeout", 60)),
        "read_timeout": _seconds(botocore.get("read_timeout", 60)),  # between two reads: a stalled server fails
        "timeout": "10m",  # a whole request (one chunk); the default 30 s would fail a part on a slow link
    }
    if client.get("verify") is False:
        client_options["allow_invalid_certificates"] = True
    attempts = int(retries.get("max_attempts", 4))
    config["client_options"] = client_options
    config["retry_config"] = {"max_retries": max(0, attempts - 1),
                              "retry_timeout": datetime.timedelta(seconds=60)}
    return config


def _seconds(value: Any) -> datetime.timedelta:
    return datetime.timedelta(seconds=float(value))


class _BotocoreCredentials:
    """obstore asks this for credentials: botocore's chain, as s3fs would use, re-read every few minutes."""

    REFRESH = datetime.timedelta(minutes=5)

    def __init__(self, profile: str | None) -> None:
        self.session = import_module("botocore.session").Session(profile=profile)

    def __call__(self) -> dict[str, Any]:
        credentials = self.session.get_credentials()
        if credentials is None:
            raise PermissionError("no S3 credentials found (options key/secret, AWS_* variables, ~/.aws, a role)")
        frozen = credentials.get_frozen_credentials()
        return {"access_key_id": frozen.access_key, "secret_access_key": frozen.secret_key, "token": frozen.token,
                "expires_at": datetime.datetime.now(datetime.timezone.utc) + self.REFRESH}


class _obstore_errors:
    """obstore's errors as the builtins ``storage.io`` maps: refused access, transport failures, a replaced object."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None or not type(exc).__module__.startswith("obstore"):
            return
        errors = import_module("obstore.exceptions")
        text = _brief(str(exc))
        if isinstance(exc, (errors.PermissionDeniedError, errors.UnauthenticatedError)):
            raise PermissionError(text) from exc
        if isinstance(exc, errors.PreconditionError):
            raise ChangedWhileReadingError(f"the object was replaced while it was being read ({text})") from exc
        if isinstance(exc, errors.GenericError) and _transport_failure(text):
            raise ConnectionError(text) from exc


def _brief(text: str) -> str:
    """obstore's message on one line: without its debug dump, an S3 error document as its code and message."""
    import re

    text = text.split("Debug source:")[0]
    document = re.search(r"<\?xml.*?(?:</Error>|$)", text, re.S)
    if document:
        fields = dict(re.findall(r"<(Code|Message)>(.*?)</\1>", document.group(0), re.S))
        text = text[:document.start()] + ": ".join(v for v in (fields.get("Code"), fields.get("Message")) if v) \
            + text[document.end():]
    return " ".join(text.split())


class ChangedWhileReadingError(Exception):
    """The object's ETag changed between two ranged GETs of one download."""


def _transport_failure(text: str) -> bool:
    """A request that got no (complete) answer, or a 5xx one, worth trying again later: any failed request but
    one the server refused with a 4xx status (those are answers: access, a missing bucket, a bad request)."""
    import re

    return "Error performing" in text and not re.search(r"status code: 4\d\d", text)


# ---- fsspec ------------------------------------------------------------------------------------------


def _copy_counted(source: str, dest: str, progress: Progress) -> int:
    """Copy a local file in chunks, reporting each (used only when someone watches a large copy)."""
    done = 0
    with open(source, "rb") as src, open(dest, "wb") as dst:
        while chunk := src.read(COPY_CHUNK):
            dst.write(chunk)
            done += len(chunk)
            progress(len(chunk))
    return done


def _fsspec_callback(progress: Progress | None) -> Any:
    """An fsspec callback feeding ``progress``."""
    callbacks = import_module("fsspec.callbacks")
    if progress is None:
        return callbacks.NoOpCallback()
    forward: Progress = progress

    class Forward(callbacks.Callback):  # type: ignore[misc, name-defined]
        def relative_update(self, inc: int = 1) -> None:
            self.value: int = self.value + inc
            forward(inc)

        def absolute_update(self, value: int) -> None:
            forward(value - self.value)
            self.value = value

    return Forward()


def _is_s3fs(fs: Any) -> bool:
    return type(fs).__module__.split(".")[0] == "s3fs"


def _s3fs_limits(fs: Any, config: TransferConfig) -> dict[str, Any]:
    """s3fs's transfer knobs: this store's chunks, as many at once as fit in S3FS_BUFFER_BYTES (s3fs holds each
    part twice; with one at a time it streams a download instead)."""
    if not _is_s3fs(fs):
        return {}
    fitting = S3FS_BUFFER_BYTES // (2 * config.chunk_size)
    return {"chunksize": config.chunk_size, "max_concurrency": max(1, min(config.concurrency, fitting))}


def _without_expect_continue(fs: Any) -> None:
    """Stop botocore asking an S3 server for "100 Continue" before a body: aiohttp waits for that answer
    with no timeout, so a write to a stalled server would hang instead of failing and being retried."""
    if not _is_s3fs(fs):
        return
    client = fs.s3  # connects on first use; s3fs may make a new client later, which gets the same treatment
    if not getattr(client, "_ferry_no_expect", False):
        client.meta.events.unregister("before-call.s3", import_module("botocore.handlers").add_expect_header)
        client._ferry_no_expect = True
