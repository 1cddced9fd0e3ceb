"""Dataset names: paths inside the persistent store, checked so they can't point anywhere else."""

from __future__ import annotations

import posixpath

from ferry.config import Settings, active_settings
from ferry.errors import FerryError


class DatasetNameError(FerryError, ValueError):
    """A dataset name that would leave the persistent store."""


def check_name(name: str, settings: Settings | None = None) -> str:
    """A normalized relative name, or an error for ``..``, absolute paths and other stores."""
    s = settings or active_settings()
    root = s.persistent_url.rstrip("/")
    if "://" in name:
        if not name.startswith(root + "/"):
            raise DatasetNameError(
                f"Dataset {name!r} is not in the persistent store {root}. Name datasets relative to it "
                "(e.g. 'refs/hg38.fa'), or change FERRY_PERSISTENT_URL."
            )
        name = name[len(root) + 1:]
    if name.startswith("/") or name.startswith("\\"):
        raise DatasetNameError(f"Dataset name {name!r} is absolute; give a path relative to the store, e.g. 'refs/hg38.fa'.")
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise DatasetNameError(f"Dataset name {name!r} contains '..'; names can't leave the persistent store.")
    if not parts:
        raise DatasetNameError("A dataset name can't be empty; e.g. 'refs/hg38.fa'.")
    return posixpath.join(*parts)


def relative_name(uri: str, settings: Settings | None = None) -> str:
    root = (settings or active_settings()).persistent_url.rstrip("/") + "/"
    return uri[len(root):] if uri.startswith(root) else uri


def dataset_of(uri: str, settings: Settings | None = None) -> str:
    """The dataset an object belongs to: the first part of its name (what was uploaded)."""
    return relative_name(uri, settings).split("/", 1)[0]
