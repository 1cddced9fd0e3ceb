"""Protocol -> filesystem, resolved through fsspec on first use, with errors that help.

fsspec imports an implementation only when its protocol is used; ferry keeps
that, adds user registration, and turns fsspec's terse "Protocol not known"
into a message that lists what is available and how to add one.

Those first imports happen on whatever thread uses a store first, often
several at once. Python's per-module import locks deadlock when one thread
imports a package (``fsspec``) whose ``__init__`` imports a submodule
(``fsspec.callbacks``) that another thread is importing directly
("deadlock detected by _ModuleLock"), so every lazy import of a heavy package
in ferry's data path goes through ``import_module``: one thread at a time.
"""

from __future__ import annotations

import importlib
import sys
import threading
from types import ModuleType
from typing import TYPE_CHECKING, Any, Mapping

from ferry.errors import UnknownProtocolError, install_line, redact

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

_INSTALL_HINTS = {
    "s3": f"{install_line('s3')}  (s3fs)",
    "s3a": f"{install_line('s3')}  (s3fs)",
    "gs": f"{install_line('gcs')}  (gcsfs)",
    "gcs": f"{install_line('gcs')}  (gcsfs)",
    "az": "pip install adlfs",
    "abfs": "pip install adlfs",
}
TRANSFER_OPTION = "transfer"  # ferry's own table in a store's options (see storage.transfer); fsspec never sees it
_lock = threading.RLock()  # held while importing lazily and while fsspec resolves a URL (it may import)


def import_module(name: str) -> ModuleType:
    """``importlib.import_module``, made safe for first imports from several threads at once."""
    module = sys.modules.get(name)
    if module is not None and not getattr(getattr(module, "__spec__", None), "_initializing", False):
        return module
    with _lock:
        return importlib.import_module(name)


def protocol_of(url: str) -> str:
    proto, sep, _ = url.partition("://")
    return proto if sep else "file"


def register_protocol(protocol: str, implementation: str | type, *, clobber: bool = False) -> None:
    """Make ``protocol://`` URLs usable in every ferry store.

    ``implementation`` is an fsspec ``AbstractFileSystem`` subclass or its import
    path (``"mypkg.fs.MyFS"``), imported on first use.
    """
    import_module("fsspec").register_implementation(protocol, implementation, clobber=clobber)


def known_protocols() -> list[str]:
    return sorted(set(import_module("fsspec").available_protocols()))


def filesystem(url: str, options: Mapping[str, Any] | None = None) -> tuple["AbstractFileSystem", str]:
    """The fsspec filesystem for ``url`` and the path inside it."""
    fsspec = import_module("fsspec")
    protocol = protocol_of(url)
    fsspec_options = {k: v for k, v in (options or {}).items() if k != TRANSFER_OPTION}
    try:
        with _lock:
            found: tuple[AbstractFileSystem, str] = fsspec.core.url_to_fs(url, **fsspec_options)
            return found
    except ValueError as exc:
        if protocol not in fsspec.available_protocols():
            raise UnknownProtocolError(
                f"Unknown storage protocol {protocol!r} in {redact(url)!r}. Known protocols: "
                f"{', '.join(known_protocols())}. Register your own with "
                f"ferry.storage.register_protocol({protocol!r}, 'package.module.FileSystemClass')."
            ) from exc
        raise
    except ImportError as exc:
        hint = _INSTALL_HINTS.get(protocol, f"install the fsspec implementation for {protocol!r}")
        raise UnknownProtocolError(
            f"Storage protocol {protocol!r} (for {redact(url)!r}) needs a package that is not installed: {exc}. "
            f"Fix: {hint}."
        ) from exc
