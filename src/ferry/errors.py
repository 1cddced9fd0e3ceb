"""Every error ferry raises, in one tree, so callers can catch by meaning.

Each message says what went wrong, why, and how to fix it. Errors from
dependencies (OSError, botocore, protobuf) are mapped into this tree at the
boundary where they happen, chained with ``from exc``. No message shows a
credential: ``redact`` masks passwords in URLs and secret-looking options, and
every ferry error's text goes through it.

    FerryError
    ├── ConfigError                   bad setting value or settings file
    ├── InterfaceError                a task's signature can't become a typed interface
    ├── TypeTransformerError          a value can't become a literal or back
    │   ├── TypeMismatchError         value or literal doesn't match the declared type
    │   ├── UnsupportedTypeError      no transformer for a Python type
    │   └── UntrustedPickleError      a pickle without a valid signature (never loaded)
    ├── LiteralTooLargeError          an inline literal is over the metadata limit
    ├── CorruptMetadataError          an inputs.pb / outputs.pb can't be parsed
    ├── StorageError                  anything a store did wrong
    │   ├── UnknownProtocolError      no fsspec implementation for a URL's protocol
    │   ├── ObjectNotFoundError       the object isn't there
    │   ├── AccessDeniedError         the credentials don't allow it
    │   ├── StoreUnavailableError     network / server trouble; retryable
    │   ├── DiskFullError             the local disk (or quota) filled up while writing; keeps the OSError errno
    │   └── UnsafePathError           a store key or link reaches outside its folder
    ├── MissingDependencyError        an optional library isn't installed (also an ImportError); names the extra
    ├── TaskLoadError                 MODULE:NAME doesn't name a task
    └── TaskFailedError               a task raised (user) or its runtime broke (system)
"""

from __future__ import annotations

import re

DISTRIBUTION = "ferry-flow"  # the name on the package index; the import name is ``ferry``


def install_line(extra: str = "") -> str:
    """The command that installs ferry with ``extra``: ``pip install 'ferry-flow[pandas]'``."""
    return f"pip install '{DISTRIBUTION}[{extra}]'" if extra else f"pip install {DISTRIBUTION}"

_SECRET_NAME = r"[\w.-]*(?:secret|passw(?:or)?d|pwd|token|credentials?|signature|key(?:_?id)?)"
_VALUE = r"(?:\"[^\"]*\"|'[^']*'|[^\s,;&)\]}]+)"
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/:@]*):[^\s/]*@")
_ASSIGNED_SECRET = re.compile(rf"(?P<head>\b{_SECRET_NAME}\s*=\s*)(?P<value>{_VALUE})", re.IGNORECASE)
_QUOTED_SECRET = re.compile(rf"(?P<head>([\"']){_SECRET_NAME}\2\s*:\s*)(?P<value>{_VALUE})", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with credentials masked: URL passwords (``user:***@host``) and the values of secret-looking
    options (``key``, ``secret``, ``token``, ``password``, ... as ``name=value`` or ``"name": value``)."""
    text = _URL_PASSWORD.sub(r"\g<head>:***@", text)
    for pattern in (_ASSIGNED_SECRET, _QUOTED_SECRET):
        text = pattern.sub(lambda m: m.group("head") + _masked(m.group("value")), text)
    return text


def _masked(value: str) -> str:
    quote = value[0] if value[:1] in ("'", '"') else ""
    return f"{quote}***{quote}"


class FerryError(Exception):
    """Base class of all ferry errors. Its text never shows credentials (see ``redact``)."""

    def __str__(self) -> str:
        return redact(super().__str__())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class ConfigError(FerryError):
    """A setting has a value ferry can't use."""


class InterfaceError(FerryError):
    """A task's signature or docstring can't be turned into a typed interface."""


class TypeTransformerError(FerryError):
    """A value can't be converted to a literal, or a literal back to a value."""


class TypeMismatchError(TypeTransformerError, TypeError):
    """A value (or literal) doesn't match the type it was declared with."""


class UnsupportedTypeError(TypeTransformerError, TypeError):
    """No transformer handles a Python type."""


class UntrustedPickleError(TypeTransformerError):
    """A pickled value has no valid signature from this process's key, so it is not loaded."""


class LiteralTooLargeError(FerryError):
    """An inline literal is larger than the metadata limit."""


class CorruptMetadataError(FerryError):
    """A stored literal map can't be parsed."""


class StorageError(FerryError):
    """A store operation failed."""

    retryable = False


class UnknownProtocolError(StorageError):
    """No filesystem implementation is registered for a URL's protocol."""


class ObjectNotFoundError(StorageError, FileNotFoundError):
    """The object at a URI does not exist."""


class AccessDeniedError(StorageError, PermissionError):
    """The store refused the operation with the credentials given."""


class StoreUnavailableError(StorageError):
    """The store could not be reached or timed out; worth retrying."""

    retryable = True


class DiskFullError(StorageError, OSError):
    """A transfer ran out of local disk space (ENOSPC) or quota (EDQUOT); ``errno`` says which.

    It is an ``OSError`` too, so code that falls back on a full disk (the node cache
    streams from the store instead) catches it by its errno.
    """

    def __init__(self, code: int, message: str) -> None:
        OSError.__init__(self, code, message)

    def __str__(self) -> str:
        return redact(str(self.strerror))


class UnsafePathError(StorageError):
    """A store key (``../x``) or a symlink would make ferry read or write outside the folder it works in."""


class MissingDependencyError(FerryError, ImportError):
    """An optional library a value needs isn't installed: a user error (never retried) that says what to install.

    It is an ``ImportError`` too, so code that falls back when a library is missing keeps working.
    """

    def __init__(self, library: str, extra: str, needed_for: str, reason: str = "") -> None:
        super().__init__(f"{needed_for} needs {library}, which can't be imported where this runs"
                         f"{f' ({reason})' if reason else ''}. Install it there: {install_line(extra)}")
        self.library = library
        self.extra = extra
        self.name = library


class TaskLoadError(FerryError):
    """A task reference (MODULE:NAME or FILE.py:NAME) doesn't resolve to a ferry task."""


class TaskFailedError(FerryError):
    """A task failed: ``kind`` is "user" (the function raised) or "system"."""

    def __init__(self, message: str, *, kind: str, task: str, traceback: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.task = task
        self.traceback = traceback
