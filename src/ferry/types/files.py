"""``File`` and ``Directory``: path-like handles to offloaded data, fetched on first use.

A task that returns a local path gets it uploaded under its raw-output prefix;
a task that returns a URI already in a store passes it by reference, no copy.
A task that receives one gets a handle whose bytes are downloaded only when
it is opened or turned into a path (``open(f)``, ``os.fspath(f)``, ``Path(f)``).
"""

from __future__ import annotations

import os
import posixpath
from typing import IO, Any, ClassVar

from flyteidl.core import types_pb2

from ferry.errors import TypeMismatchError, TypeTransformerError
from ferry.literals import Literal, LiteralType, blob_literal
from ferry.types.context import TransferContext, current_context
from ferry.types.engine import Transformer, expect_scalar, type_name, value_type_name


class _Blob(os.PathLike):  # type: ignore[type-arg]
    """What File and Directory share: a local path, a remote URI, or both."""

    format: ClassVar[str] = ""
    _subclasses: ClassVar[dict[tuple[type, str], type]] = {}

    def __init__(self, path: str | os.PathLike[str], *, format: str | None = None) -> None:
        text = os.fspath(path)
        if "://" in text:
            self.uri: str | None = text.rstrip("/") if text.count("/") > 2 else text
            self._local: str | None = None
        else:
            self.uri = None
            self._local = os.path.abspath(text)
        if format is not None:
            self.format = format  # type: ignore[misc]
        self.size: int | None = None

    def __class_getitem__(cls, fmt: str) -> type:
        """``File["csv"]``: the same class, carrying a format into the literal type."""
        key = (cls, fmt)
        if key not in _Blob._subclasses:
            _Blob._subclasses[key] = type(f"{cls.__name__}[{fmt!r}]", (cls,), {"format": fmt, "__module__": cls.__module__})
        return _Blob._subclasses[key]

    @property
    def name(self) -> str:
        return posixpath.basename((self.uri or self._local or "").rstrip("/"))

    @property
    def is_remote(self) -> bool:
        return self.uri is not None

    @property
    def downloaded(self) -> bool:
        return self._local is not None

    def _needs_fetch(self) -> bool:
        # A scratch copy is dropped when its task ends; the URI stays, so fetch again.
        return self._local is None or (self.uri is not None and not os.path.exists(self._local))

    def __fspath__(self) -> str:
        return self.download()

    def download(self) -> str:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri or self._local!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and (self.uri, self._local if self.uri is None else None) == (
            other.uri, other._local if other.uri is None else None)

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.uri or self._local))


class File(_Blob):
    """A single file, local or in any store. ``File["csv"]`` declares a format."""

    def download(self) -> str:
        """Fetch the bytes once (to the task's scratch folder) and return the local path."""
        if self._needs_fetch():
            from ferry.datasets import is_persistent, local_copy
            from ferry.storage import download_file

            assert self.uri is not None
            ctx = current_context()
            if is_persistent(self.uri, ctx.settings):  # through the node cache, shared by every task here
                copy = local_copy(self.uri, ctx.settings)
                if copy is not None:
                    self._local, pin = copy
                    ctx.hold(pin, self.uri)
                    return self._local
            # A private copy even on file://, so a task that writes to it can't alter the store.
            self._local = download_file(self.uri, ctx.local_path(self.name), ctx.options(self.uri),
                                        roots=store_roots(ctx))
        assert self._local is not None
        return self._local

    def open(self, mode: str = "rb", **kwargs: Any) -> IO[Any]:
        """Open the file; a large persistent object opened "rb" is read block by block, on demand."""
        if mode == "rb" and self._needs_fetch() and self.uri is not None:
            from ferry.datasets import is_persistent, open_blocks

            ctx = current_context()
            if is_persistent(self.uri, ctx.settings):
                reader = open_blocks(self.uri, ctx.settings)
                if reader is not None:
                    ctx.datasets.add(self.uri)
                    return reader
        return open(self.download(), mode, **kwargs)


class Directory(_Blob):
    """A folder, local or in any store. Lists lazily; members can be fetched one by one."""

    def download(self) -> str:
        if self._needs_fetch():
            from ferry.datasets import is_persistent
            from ferry.storage import download_directory

            assert self.uri is not None
            ctx = current_context()
            target = ctx.local_path(self.name)
            if is_persistent(self.uri, ctx.settings):
                self._local = self._link_cached_members(target)
            else:
                self._local = download_directory(self.uri, target, ctx.options(self.uri), roots=store_roots(ctx))
        assert self._local is not None
        return self._local

    def _link_cached_members(self, target: "os.PathLike[str]") -> str:
        """A local folder of links to each member's node-cache copy (fetched once per node)."""
        from ferry.storage.io import member_path

        assert self.uri is not None
        links = {rel: member_path(target, rel, self.uri) for rel in self.listdir()}  # all checked before any fetch
        for rel, link in links.items():
            member = (self / rel).download()
            os.makedirs(os.path.dirname(link), exist_ok=True)
            os.symlink(member, link)
        os.makedirs(target, exist_ok=True)
        return os.fspath(target)

    def listdir(self) -> list[str]:
        """Relative paths of every file inside, without downloading any of them."""
        if self.uri is None:
            root = self._local or ""
            return sorted(
                os.path.relpath(os.path.join(d, f), root).replace(os.sep, "/")
                for d, _, files in os.walk(root) for f in files
            )
        from ferry.datasets import is_persistent, node_cache
        from ferry.storage import list_files

        ctx = current_context()
        if is_persistent(self.uri, ctx.settings):  # listings are cached with the same TTL as objects
            return sorted(node_cache(ctx.settings).listing(self.uri, ctx.options(self.uri)))
        return sorted(list_files(self.uri, ctx.options(self.uri), roots=store_roots(ctx)))

    def __truediv__(self, member: str) -> File:
        """One member as a ``File``, fetched on its own when used."""
        if self.uri is None:
            return File(os.path.join(self._local or "", member))
        from ferry.storage import join

        return File(join(self.uri, member))

    fetch = __truediv__


def dataset(name: str, settings: Any = None) -> File | Directory:
    """A File (or Directory, for a folder) of the persistent store, by its name in the store."""
    from ferry.datasets import find

    uri, is_folder = find(name, settings)
    return Directory(uri) if is_folder else File(uri)


def store_roots(ctx: TransferContext) -> tuple[str, ...]:
    """The stores a task reads from: on file://, links inside them must not lead out of them."""
    settings = ctx.settings
    return (settings.metadata_url, settings.raw_output_prefix, settings.persistent_url, ctx.raw_prefix)


def write_blob(ctx: TransferContext, name: str, fmt: str, write: Any) -> Literal:
    """Offload a value that ``write(binary_file)`` serializes: a new raw URI, published atomically, hashed."""
    from ferry.storage import publishing
    from ferry.types.hashing import file_hash

    uri = ctx.new_raw_uri(name)
    with publishing(uri, ctx.options(uri), "raw") as local:
        with open(local, "wb") as fh:
            write(fh)
        size = os.path.getsize(local)
        digest = file_hash(local, size)
    lit = blob_literal(uri, fmt, size=size)
    lit.hash = digest
    return lit


def _blob_format(python_type: Any) -> str:
    return getattr(python_type, "format", "") or ""


class BlobTransformer(Transformer):
    """File / Directory <-> Blob literals (SINGLE / MULTIPART)."""

    def __init__(self, cls: type[_Blob], multipart: bool) -> None:
        self.cls = cls
        self.name = cls.__name__
        self.python_types = (cls,)
        self.multipart = multipart

    def matches(self, python_type: Any) -> bool:
        return isinstance(python_type, type) and issubclass(python_type, self.cls)

    def literal_type(self, python_type: Any, engine: Any) -> LiteralType:
        dim = types_pb2.BlobType.MULTIPART if self.multipart else types_pb2.BlobType.SINGLE
        return LiteralType(blob=types_pb2.BlobType(format=_blob_format(python_type), dimensionality=dim))

    def to_literal(self, value: Any, python_type: Any, engine: Any, ctx: TransferContext, path: str) -> Literal:
        if isinstance(value, (str, os.PathLike)) and not isinstance(value, _Blob):
            text = os.fspath(value)
            if ctx.work_dir is not None and "://" not in text and not os.path.isabs(text):
                text = os.path.join(ctx.work_dir, text)  # relative to the task's own folder, not the process's
            value = self.cls(text)
        if not isinstance(value, self.cls):
            raise TypeMismatchError(
                f"{path}: expected {type_name(python_type)} (or a path), got {value_type_name(value)}."
            )
        fmt = value.format or _blob_format(python_type)
        if value.uri is not None:  # already in a store: pass the reference, copy nothing
            return blob_literal(value.uri, fmt, self.multipart, value.size)
        local = value._local or ""
        if not (os.path.isdir(local) if self.multipart else os.path.isfile(local)):
            kind, other = ("folder", "file") if self.multipart else ("file", "folder")
            if os.path.exists(local):
                raise TypeTransformerError(
                    f"{path}: {local} is a {other}, not a {kind}: {self.cls.__name__} takes a {kind}. "
                    f"Give a {kind}, or declare {'File' if self.multipart else 'Directory'} for a {other}."
                )
            raise TypeTransformerError(
                f"{path}: there is no {kind} at {local}, so there is nothing to upload. Give the path of an "
                f"existing {kind} (a task creates it before returning it), or the URI of an object in a store."
            )
        from ferry.storage import upload_directory, upload_file
        from ferry.types.hashing import file_hash, folder_hash

        uri = ctx.new_raw_uri(os.path.basename(local.rstrip(os.sep)) or "data")
        upload = upload_directory if self.multipart else upload_file
        size = upload(local, uri, ctx.options(uri), "raw")
        lit = blob_literal(uri, fmt, self.multipart, size)
        lit.hash = folder_hash(local) if self.multipart else file_hash(local, size)
        return lit

    def to_python(self, literal: Literal, python_type: Any, engine: Any, ctx: TransferContext, path: str) -> Any:
        blob = expect_scalar(literal, "blob", python_type, path)
        is_multi = blob.metadata.type.dimensionality == types_pb2.BlobType.MULTIPART
        if is_multi != self.multipart:
            raise TypeMismatchError(
                f"{path}: expected {'a folder' if self.multipart else 'a single file'} for "
                f"{type_name(python_type)}, got a {'multipart' if is_multi else 'single'} blob ({blob.uri})."
            )
        cls = python_type if isinstance(python_type, type) and issubclass(python_type, self.cls) else self.cls
        uri = blob.uri if "://" in blob.uri else "file://" + os.path.abspath(blob.uri)  # flytekit's local paths
        result = cls(uri, format=blob.metadata.type.format or None)
        size = literal.metadata.get("size")
        result.size = int(size) if size else None
        return result
