"""Find tasks and workflows by reference: ``package.module:name`` or ``path/to/file.py:name``."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from ferry.errors import TaskLoadError

FILE_MARKER = "__ferry_file__"


def load_module(target: str) -> ModuleType:
    """Import a module by dotted name, or a Python file by path (its folder goes on sys.path)."""
    if target.endswith(".py") or os.sep in target or "/" in target:
        path = Path(target).expanduser().resolve()
        if not path.is_file():
            raise TaskLoadError(f"No such Python file: {target}. Check the path (relative to {os.getcwd()}).")
        name = path.stem
        existing = sys.modules.get(name)
        if existing is not None and getattr(existing, FILE_MARKER, None) == str(path):
            return existing
        sys.path.insert(0, str(path.parent))
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        setattr(module, FILE_MARKER, str(path))
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[name]
            raise TaskLoadError(f"{target} failed to import: {type(exc).__name__}: {exc}") from exc
        return module
    try:
        return importlib.import_module(target)
    except ImportError as exc:
        raise TaskLoadError(f"Cannot import module {target!r}: {exc}. Is it installed or on PYTHONPATH?") from exc


def load_object(module_target: str, name: str, kind: type | tuple[type, ...], what: str) -> Any:
    module = load_module(module_target)
    obj = getattr(module, name, None)
    if obj is None:
        found = sorted(k for k, v in vars(module).items() if isinstance(v, kind))
        raise TaskLoadError(
            f"{module_target} has no {what} named {name!r}. {what.capitalize()}s defined there: "
            f"{', '.join(found) or '(none)'}."
        )
    if not isinstance(obj, kind):
        raise TaskLoadError(f"{module_target}:{name} is a {type(obj).__name__}, not a ferry {what}. Decorate it with @{what}.")
    return obj


def split_reference(reference: str) -> tuple[str, str]:
    module, sep, name = reference.rpartition(":")
    if not sep or not module or not name:
        raise TaskLoadError(f"Task reference {reference!r} must be MODULE:NAME or FILE.py:NAME.")
    return module, name


def reference_of(fn: Any) -> str:
    """How another process finds ``fn``: by module inside a package, else by file.

    A top-level module (a script, ``__main__``, or a file next to it) may not be
    importable from the worker's sys.path, but its file always is.
    """
    module = sys.modules.get(fn.__module__)
    file_path = getattr(module, FILE_MARKER, None)
    if file_path is None and "." not in fn.__module__ and getattr(module, "__file__", None):
        file_path = os.path.abspath(module.__file__)  # type: ignore[union-attr, arg-type]
    return f"{file_path or fn.__module__}:{fn.__qualname__}"
