"""The last resort: any other Python object pickled into a Blob, signed so that only ferry's own pickles load.

Unpickling runs code, so a store must not be able to hand a task a pickle to
load. Every pickle ferry writes starts with a header: ``MAGIC``, a 4-byte key
id and an HMAC-SHA256 of the payload, made with the process's signing key:
``pickle_key`` (``FERRY_PICKLE_KEY``) or, when that is not set, a key generated
once in ``$FERRY_HOME/pickle.key`` (mode 0600). A pickle is loaded only when its
signature verifies, unless the user trusts their stores (``FERRY_TRUST_PICKLES=1``).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import pickle
import secrets
import uuid
from pathlib import Path
from typing import IO, Any

from flyteidl.core import types_pb2

from ferry.errors import ConfigError, UntrustedPickleError
from ferry.literals import Literal, LiteralType
from ferry.types.engine import Transformer, expect_scalar, type_name

PICKLE = "PythonPickle"
MAGIC = b"FERRYPK1"  # format and version of the header
KEY_ID_BYTES = 4
HEADER_BYTES = len(MAGIC) + KEY_ID_BYTES + hashlib.sha256().digest_size
KEY_FILE = "pickle.key"


class PickleTransformer(Transformer):
    name = "pickle"

    def literal_type(self, python_type: Any, engine: Any) -> LiteralType:
        lt = LiteralType(blob=types_pb2.BlobType(format=PICKLE, dimensionality=types_pb2.BlobType.SINGLE))
        lt.metadata.update({"python_class": type_name(python_type)})
        return lt

    def to_literal(self, value: Any, python_type: Any, engine: Any, ctx: Any, path: str) -> Literal:
        from ferry.types.files import write_blob

        payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        header = signature_header(payload, signing_key(ctx.settings))

        def write(fh: IO[bytes]) -> None:
            fh.write(header)
            fh.write(payload)

        return write_blob(ctx, "value.pkl", PICKLE, write)

    def to_python(self, literal: Literal, python_type: Any, engine: Any, ctx: Any, path: str) -> Any:
        from ferry.storage import read_bytes
        from ferry.types.files import store_roots

        blob = expect_scalar(literal, "blob", python_type, path)
        data = read_bytes(blob.uri, ctx.options(blob.uri), "raw", roots=store_roots(ctx))
        return pickle.loads(verified_payload(data, ctx.settings, f"{path} ({blob.uri})"))


def signature_header(payload: bytes | memoryview, key: bytes) -> bytes:
    return MAGIC + key_id(key) + _mac(key, payload)


def _mac(key: bytes, payload: bytes | memoryview) -> bytes:
    mac = hmac.new(key, MAGIC, hashlib.sha256)  # the format is signed with the data
    mac.update(payload)
    return mac.digest()


def verified_payload(data: bytes, settings: Any, where: str) -> memoryview:
    """The pickle inside ``data`` if its signature is good (or the user trusts pickles); else a refusal."""
    signed = data.startswith(MAGIC) and len(data) >= HEADER_BYTES
    view = memoryview(data)  # slices without copying
    if settings.trust_pickles:
        return view[HEADER_BYTES:] if signed else view
    if not signed:
        raise UntrustedPickleError(
            f"{where}: this pickle has no ferry signature, so it was not loaded: unpickling runs code, and "
            "ferry signs every pickle it writes. Re-create the value with ferry, or, if you trust everything "
            "in your stores, set FERRY_TRUST_PICKLES=1 (trust_pickles = true in ferry.toml)."
        )
    found_id = data[len(MAGIC):len(MAGIC) + KEY_ID_BYTES]
    mac = data[len(MAGIC) + KEY_ID_BYTES:HEADER_BYTES]
    payload = view[HEADER_BYTES:]
    key = signing_key(settings)
    if hmac.compare_digest(mac, _mac(key, payload)):
        return payload
    if found_id != key_id(key):
        raise UntrustedPickleError(
            f"{where}: this pickle was signed with another key (id {found_id.hex()}; this process's key is "
            f"{key_id(key).hex()}), so it was not loaded. Give the process that wrote it and this one the same "
            "signing key: set pickle_key (FERRY_PICKLE_KEY) to one secret in the settings of the client, the "
            "engine and every worker, e.g. the contents of the writer's $FERRY_HOME/pickle.key."
        )
    raise UntrustedPickleError(
        f"{where}: this pickle's signature does not match its contents: it was changed after ferry wrote it, "
        "so it was not loaded. Re-run the task that produced it; if it keeps happening, find out what writes to "
        "your raw store."
    )


def key_id(key: bytes) -> bytes:
    """A short, one-way name for a key, so an error can tell 'another key' from 'altered'."""
    return hashlib.sha256(b"ferry pickle key id\0" + key).digest()[:KEY_ID_BYTES]


def signing_key(settings: Any) -> bytes:
    """``pickle_key`` when set, else the key in ``$FERRY_HOME/pickle.key``, created on first use."""
    if settings.pickle_key:
        return str(settings.pickle_key).encode()
    return _key_file(Path(settings.home) / KEY_FILE)


@functools.lru_cache(maxsize=None)
def _key_file(path: Path) -> bytes:
    try:
        if not path.exists():
            _create_key(path)
        return _read_key(path)
    except OSError as exc:
        raise ConfigError(
            f"Could not create the key that signs pickled values at {path} ({exc.strerror or exc}). "
            "Make FERRY_HOME writable, or set pickle_key (FERRY_PICKLE_KEY) to a secret of your own."
        ) from exc


def _create_key(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32) + "\n")
    try:
        os.link(tmp, path)  # the first process to link wins; the others read its key
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)


def _read_key(path: Path) -> bytes:
    key = path.read_bytes().strip()
    if not key:
        raise ConfigError(f"The pickle signing key {path} is empty. Delete it (a new one is made) or set FERRY_PICKLE_KEY.")
    return key
