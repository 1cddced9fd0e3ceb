"""A file:// object replaced by one of the same size and modification time is fetched anew."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import pytest

from ferry import File, task
from ferry.config import reset_settings
from ferry.storage import local_path_of

Put = Callable[[str, bytes], str]


@task
def read(f: File) -> str:
    return Path(f).read_text()


def _cp_p(path: str, data: bytes) -> None:
    """``cp -p new path``: the same inode rewritten, then the old mtime put back."""
    before = os.stat(path)
    with open(path, "r+b") as fh:
        fh.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def _rsync_t(path: str, data: bytes) -> None:
    """``rsync -t``: a temporary with the old mtime renamed over the file (a new inode)."""
    before = os.stat(path)
    tmp = f"{path}.rsync-tmp"
    Path(tmp).write_bytes(data)
    os.utime(tmp, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(tmp, path)


@pytest.mark.parametrize("replace", [_cp_p, _rsync_t], ids=["cp-p", "rsync-t"])
def test_same_size_same_mtime_replacement_is_fetched_anew(store: str, put: Put, replace: Callable[[str, bytes], None],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FERRY_CACHE_TTL", "0")  # re-check the identity on every access
    reset_settings()
    uri = put("refs/a.txt", b"version one")
    assert read(f=File(uri)) == "version one"
    path = local_path_of(uri)
    assert path is not None
    size, mtime = os.stat(path).st_size, os.stat(path).st_mtime_ns
    replace(path, b"version two")
    assert (os.stat(path).st_size, os.stat(path).st_mtime_ns) == (size, mtime)  # looks the same
    assert read(f=File(uri)) == "version two"
