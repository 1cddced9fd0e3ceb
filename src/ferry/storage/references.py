"""Checks at launch that every object a launch's inputs refer to can be reached, so a typo fails at once.

Without it, ``foo://x`` or a missing File URI is accepted at launch and fails
later inside a task, after the queue, on a worker.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ferry.errors import AccessDeniedError, ObjectNotFoundError, UnknownProtocolError
from ferry.literals import LiteralMap, references
from ferry.storage.io import exists, store_errors
from ferry.storage.registry import filesystem

PARALLEL_CHECKS = 16


def check_input_references(literal_map: LiteralMap, settings: Any) -> None:
    """Every URI the inputs refer to has a known protocol and exists, with the options of the store holding it.

    Raises UnknownProtocolError or ObjectNotFoundError naming the input and the URI. A reference this
    process may not read (access denied: the launcher holds no credentials for that store) is left for
    the task, which has its own.
    """
    checks = [(name, uri) for name, lit in sorted(literal_map.literals.items()) for uri in references(lit)]
    for name, uri in checks:
        try:
            with store_errors("check", uri, "raw"):
                filesystem(uri, settings.options_for(uri))
        except UnknownProtocolError as exc:
            raise UnknownProtocolError(f"Input {name!r} refers to {uri}: {exc}") from exc
    with ThreadPoolExecutor(min(PARALLEL_CHECKS, max(1, len(checks)))) as pool:
        found = list(pool.map(lambda check: _exists(check[1], settings), checks))
    missing = [(name, uri) for (name, uri), ok in zip(checks, found, strict=True) if not ok]
    if missing:
        shown = "; ".join(f"input {name!r}: {uri}" for name, uri in missing[:5])
        more = f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
        raise ObjectNotFoundError(
            f"The launch inputs refer to objects that do not exist: {shown}{more}. Check the URIs for typos, "
            "and that the objects were uploaded (an empty folder has no objects in an object store)."
        )


def _exists(uri: str, settings: Any) -> bool:
    try:
        return exists(uri, settings.options_for(uri), "raw")
    except AccessDeniedError:
        return True
