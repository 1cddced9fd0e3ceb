"""Settings precedence, bad settings, and the curated public API."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import ferry
from ferry.config import Settings
from ferry.errors import ConfigError


def test_embedded_default_lives_under_home(ferry_home: Path) -> None:
    s = Settings.load()
    assert s.metadata_url == f"file://{ferry_home}/metadata"
    assert s.raw_output_prefix == f"file://{ferry_home}/raw"
    assert s.persistent_url == f"file://{ferry_home}/persistent"
    assert s.cache_dir == ferry_home / "cache"
    assert s.database_url == f"sqlite:///{ferry_home}/ferry.db"
    assert s.max_literal_bytes == 1024 * 1024
    assert s.offload_large_literals and not s.trust_pickles


def test_precedence_argument_env_file_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ferry.toml").write_text(
        'raw_output_prefix = "s3://from-file/raw"\nmetadata_url = "s3://from-file/meta"\n'
        'max_literal_bytes = 2048\n[stores.raw]\nendpoint_url = "http://file"\n'
    )
    monkeypatch.setenv("FERRY_METADATA_URL", "s3://from-env/meta")
    s = Settings.load(raw_output_prefix="gs://from-arg/raw")
    assert s.raw_output_prefix == "gs://from-arg/raw"
    assert s.metadata_url == "s3://from-env/meta"
    assert s.max_literal_bytes == 2048
    assert s.store_options["raw"] == {"endpoint_url": "http://file"}
    assert s.options_for("gs://from-arg/raw/x/y") == {"endpoint_url": "http://file"}
    assert s.options_for("s3://other-bucket/x") == {}


def test_bad_settings_say_what_and_how(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FERRY_MAX_LITERAL_BYTES", "1MB")
    with pytest.raises(ConfigError, match="max_literal_bytes must be a whole number of bytes, got '1MB'"):
        Settings.load()
    monkeypatch.delenv("FERRY_MAX_LITERAL_BYTES")
    monkeypatch.setenv("FERRY_OFFLOAD_LARGE_LITERALS", "sometimes")  # once read as off, silently
    with pytest.raises(ConfigError, match="offload_large_literals must be on or off .* got 'sometimes'"):
        Settings.load()
    monkeypatch.setenv("FERRY_OFFLOAD_LARGE_LITERALS", "off")
    assert not Settings.load().offload_large_literals
    monkeypatch.delenv("FERRY_OFFLOAD_LARGE_LITERALS")
    monkeypatch.setenv("FERRY_RAW_OPTIONS", "{not json")
    with pytest.raises(ConfigError, match="FERRY_RAW_OPTIONS is not valid JSON"):
        Settings.load()
    monkeypatch.delenv("FERRY_RAW_OPTIONS")
    (tmp_path / "ferry.toml").write_text("this is = = not toml")
    with pytest.raises(ConfigError, match="ferry.toml is not valid TOML"):
        Settings.load()


def test_settings_roundtrip_through_env(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings.load(raw_options={"key": "k"}, metadata_options={"key": "m"})
    env = s.to_env(stores=("metadata",))
    assert "FERRY_RAW_OPTIONS" not in env and env["FERRY_METADATA_OPTIONS"] == '{"key": "m"}'
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    again = Settings.load()
    assert again.metadata_url == s.metadata_url and again.store_options["metadata"] == {"key": "m"}


PUBLIC = {"ContainerTask", "Directory", "Execution", "File", "LaunchPlan", "Settings", "conditional", "current_context",
          "current_report", "dataset", "dynamic", "launch", "map_task", "resume", "run", "task", "workflow"}


def test_public_api_is_curated() -> None:
    assert set(ferry.__all__) == PUBLIC  # a name added or dropped is a decision, made here too
    for name in ferry.__all__:
        assert getattr(ferry, name) is not None  # every listed name resolves (lazily)
    with pytest.raises(AttributeError):
        ferry.not_a_name  # noqa: B018


def test_import_is_lazy() -> None:
    code = "import sys, ferry; print(sorted(m for m in ('fsspec', 'pyarrow', 'pandas', 'numpy', 'flyteidl') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
