"""Every error ferry raises, in one tree, so callers can catch by meaning.

Each message says what went wrong, why, and how to fix it. Errors from
dependencies (OSError, botocore, protobuf) are mapped into this tree at the
boundary where they happen, chained with ``from exc``.

    FerryError
    ├── ConfigError                   bad setting value or settings file
    ├── InterfaceError                a task's signature can't become a typed interface
    ├── TypeTransformerError          a value can't become a literal or back
    │   ├── TypeMismatchError         value or literal doesn't match the declared type
    │   └── UnsupportedTypeError      no transformer for a Python type
    ├── LiteralTooLargeError          an inline literal is over the metadata limit
    ├── CorruptMetadataError          an inputs.pb / outputs.pb can't be parsed
    ├── StorageError                  anything a store did wrong
    │   ├── UnknownProtocolError      no fsspec implementation for a URL's protocol
    │   ├── ObjectNotFoundError       the object isn't there
    │   ├── AccessDeniedError         the credentials don't allow it
    │   ├── StoreUnavailableError     network / server trouble; retryable
    │   └── DiskFullError             the local disk (or quota) filled up while writing; keeps the OSError errno
    ├── TaskLoadError                 MODULE:NAME doesn't name a task
    └── TaskFailedError               a task raised (user) or its runtime broke (system)
"""

from __future__ import annotations


class FerryError(Exception):
    """Base class of all ferry errors."""


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
        return str(self.strerror)


class TaskLoadError(FerryError):
    """A task reference (MODULE:NAME or FILE.py:NAME) doesn't resolve to a ferry task."""


class TaskFailedError(FerryError):
    """A task failed: ``kind`` is "user" (the function raised) or "system"."""

    def __init__(self, message: str, *, kind: str, task: str, traceback: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.task = task
        self.traceback = traceback
