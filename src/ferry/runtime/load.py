"""Find user code by reference (``package.module:name`` or ``path/to/file.py:name``), as a pod would.

Tasks, workflows and launch plans carry a ``ferry_kind`` attribute, so finding
them needs no import of the authoring SDK. ``load_task`` is what the task runtime
uses: when the task can't be found, it says so in error.pb like any other failure.
A task no other process can import (a notebook's, one defined in a function)
travels by value instead (``ferry.sdk.byvalue``): ``pickle:DIGEST@URI`` names its
signed pickle, loaded only when the signature verifies.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from ferry.errors import FerryError, TaskLoadError

FILE_MARKER = "__ferry_file__"
STAMP_MARKER = "__ferry_stamp__"  # the file's (mtime, size) when it was imported
PICKLED = "pickle:"  # a task reference by value: pickle:DIGEST@URI
_loaded: dict[str, Any] = {}  # a worker process imports each task once


def load_module(target: str) -> ModuleType:
    """Import a module by dotted name, or a Python file by path (its folder goes on sys.path)."""
    if target.endswith(".py") or os.sep in target or "/" in target:
        path = Path(target).expanduser().resolve()
        if not path.is_file():
            raise TaskLoadError(f"No such Python file: {target}. Check the path (relative to {os.getcwd()}).")
        name = path.stem
        existing = sys.modules.get(name)
        stamp = _stamp(path)
        if existing is not None and getattr(existing, FILE_MARKER, None) == str(path) and \
                getattr(existing, STAMP_MARKER, None) == stamp:
            return existing  # imported already, and the file hasn't changed since
        sys.path.insert(0, str(path.parent))
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        setattr(module, FILE_MARKER, str(path))
        setattr(module, STAMP_MARKER, stamp)
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


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


def kind_of(obj: Any) -> str | None:
    """"task", "workflow", "launch plan", ... for ferry entities; None for anything else."""
    kind = getattr(type(obj), "ferry_kind", None)
    return kind if isinstance(kind, str) else None


def entities(module: ModuleType) -> dict[str, Any]:
    """The module's ferry entities by attribute name, in definition order."""
    return {name: obj for name, obj in vars(module).items() if kind_of(obj) is not None}


def load_object(module_target: str, name: str, *kinds: str) -> Any:
    """The entity ``name`` of ``module_target``; a clear error if it isn't there or is another kind."""
    module = load_module(module_target)
    what = " or ".join(kinds)
    obj = getattr(module, name, None)
    if obj is None:
        found = sorted(k for k, v in entities(module).items() if kind_of(v) in kinds)
        raise TaskLoadError(
            f"{module_target} has no {what} named {name!r}. Defined there: {', '.join(found) or '(none)'}."
        )
    if kind_of(obj) not in kinds:
        raise TaskLoadError(f"{module_target}:{name} is a {kind_of(obj) or type(obj).__name__}, not a ferry {what}.")
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


def importable_reference(fn: Any) -> str | None:
    """``reference_of(fn)`` when another process can find the task there, else None: the task is defined in a
    function, in a notebook (a ``__main__`` without a file), or its name in its module is bound to something else."""
    module = sys.modules.get(fn.__module__)
    if module is None or "<locals>" in fn.__qualname__:
        return None
    if getattr(module, FILE_MARKER, None) is None and not getattr(module, "__file__", None):
        return None
    found: Any = module
    for part in fn.__qualname__.split("."):
        found = getattr(found, part, None)
    if kind_of(found) != "task" or getattr(found, "fn", None) is not fn:
        return None
    return reference_of(fn)


def source_digest(fn: Any) -> str:
    """A hash of the source file that defines ``fn`` ("" when it has none, e.g. in a notebook)."""
    import hashlib

    path = getattr(sys.modules.get(fn.__module__), "__file__", None)
    if not path:
        return ""
    try:
        stat = os.stat(path)
    except OSError:
        return ""
    known = _digests.get(path)
    if known is None or known[0] != (stat.st_mtime_ns, stat.st_size):
        with open(path, "rb") as fh:
            known = _digests[path] = ((stat.st_mtime_ns, stat.st_size), hashlib.sha256(fh.read()).hexdigest()[:16])
    return known[1]


_digests: dict[str, tuple[tuple[int, int], str]] = {}


def load_task(reference: str) -> Any:
    """The task at MODULE:NAME or FILE.py:NAME (imported once per process).

    A reference ending in ``#<digest>`` names the source it was registered with: if the file
    has changed since, running it would run other code than the registered version, so it is refused.
    """
    key = _key(reference)
    task = _loaded.get(key)
    if task is None and reference.startswith(PICKLED):
        task = _loaded[key] = _load_by_value(reference)
    if task is None:
        target, _, expected = reference.partition("#")
        task = load_object(*split_reference(target), "task")
        actual = source_digest(task.fn)
        if expected and actual and actual != expected:
            path = getattr(sys.modules.get(task.fn.__module__), "__file__", "?")
            raise TaskLoadError(
                f"The code of task {task.name} has changed since this version was registered ({path}). "
                "Register it again (ferry register FILE.py) and launch the new version."
            )
        _loaded[key] = task
    return task


def _key(reference: str) -> str:
    """A task by value is known by its digest wherever it was uploaded to."""
    return reference.partition("@")[0] if reference.startswith(PICKLED) else reference


def _load_by_value(reference: str) -> Any:
    """The task pickled at ``pickle:DIGEST@URI``, if ferry signed it (``ferry.types.pickled``)."""
    from ferry.config import active_settings
    from ferry.literals import Literal
    from ferry.types import TransferContext
    from ferry.types.pickled import PickleTransformer

    digest, _, uri = reference[len(PICKLED):].partition("@")
    if not uri:
        raise TaskLoadError(
            f"Task {digest} travels by value (it is defined in a notebook or a function) but was not uploaded, so "
            "only the process that defined it can run it. Run it with ferry.run(...) or ferry register, which "
            "upload it."
        )
    settings = active_settings()
    literal = Literal()
    literal.scalar.blob.uri = uri
    ctx = TransferContext(settings, raw_prefix=settings.raw_output_prefix)
    try:
        task = PickleTransformer().to_python(literal, object, None, ctx, f"task by value {uri}")
    except FerryError:
        raise
    except Exception as exc:  # noqa: BLE001 - unpickling fails in as many ways as the code it holds
        raise TaskLoadError(
            f"The task pickled at {uri} could not be loaded: {type(exc).__name__}: {exc}. A task defined in a "
            "notebook or a function runs where the same Python version and libraries (cloudpickle among them) "
            "are installed as where it was defined."
        ) from exc
    finally:
        ctx.cleanup()
    if kind_of(task) != "task":
        raise TaskLoadError(f"{uri} holds a {type(task).__name__}, not a ferry task.")
    return task


def remember(task: Any, reference: str) -> None:
    """Let ``load_task(reference)`` in this process find ``task`` without importing it: a client that holds
    the task object (a task defined in a function, a notebook) and runs it on the inline executor."""
    _loaded.setdefault(_key(reference), task)


def load_task_or_report(reference: str, output_prefix: str) -> Any:
    """``load_task``, or None after writing error.pb (and telling stderr) when it can't be loaded."""
    from ferry.config import active_settings
    from ferry.runtime.execute import write_error

    try:
        return load_task(reference)
    except FerryError as exc:
        print(f"ferry.runtime: {exc}", file=sys.stderr)
        try:
            write_error(output_prefix, exc, active_settings())
        except FerryError:
            pass  # the metadata store itself is unreachable: the engine reports a system error
        return None
