"""pytest fixtures for code built on ferry, loaded by pytest itself (the ``pytest11`` entry point ``ferry``).

    def test_pipeline(ferry_home):
        assert pipeline(xs=[1, 2]) == 5                 # direct calls, ferry.run, the CLI: all in ferry_home
        assert ferry.run(pipeline, {"xs": [1]}).status == "succeeded"

Or, for every test of a folder, in its ``conftest.py``::

    @pytest.fixture(autouse=True)
    def _isolated(ferry_home): ...
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest


@pytest.fixture
def ferry_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A ferry home of the test's own: its stores, records and caches under ``tmp_path``.

    Every ``FERRY_*`` variable is cleared, ``FERRY_HOME`` points into ``tmp_path``, and no ``ferry.toml``
    is read (``FERRY_CONFIG`` names an empty one). ferry loads its settings once per process; the fixture
    resets them before the test and after it, so each test sees its own home, whatever ran before.
    Change ``FERRY_*`` variables inside a test with ``monkeypatch`` and then ``ferry.config.reset_settings()``.
    """
    from ferry.config import reset_settings

    for name in list(os.environ):
        if name.startswith("FERRY_"):
            monkeypatch.delenv(name)
    home = tmp_path / "ferry-home"
    home.mkdir()
    settings_file = tmp_path / "ferry-settings.toml"
    settings_file.write_text("# no settings: the embedded default under FERRY_HOME\n")
    monkeypatch.setenv("FERRY_HOME", str(home))
    monkeypatch.setenv("FERRY_CONFIG", str(settings_file))
    reset_settings()
    yield home
    reset_settings()
