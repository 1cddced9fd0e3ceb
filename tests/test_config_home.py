"""Where ferry keeps things: one home per user by default, a project's own when it says so, and storage
protocols named in the settings that the engine, the CLI and task processes all know."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ferry.cli.main import cli
from ferry.config import Settings, reset_settings
from ferry.errors import ConfigError


@pytest.fixture
def no_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No FERRY_HOME: the default applies; the user's folders are under tmp_path."""
    monkeypatch.delenv("FERRY_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    reset_settings()
    return tmp_path / "user"


def test_the_default_home_is_one_per_user(no_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings.load()
    assert settings.home == no_home / ".local" / "share" / "ferry" and settings.home_source == "default"
    assert settings.database_url == f"sqlite:///{no_home}/.local/share/ferry/ferry.db"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert Settings.load().home == tmp_path / "xdg" / "ferry"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")  # the XDG spec: relative paths are ignored
    assert Settings.load().home == no_home / ".local" / "share" / "ferry"


def test_a_project_keeps_its_own_home_relative_to_its_ferry_toml(no_home: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    (project / "src" / "deep").mkdir(parents=True)
    (project / "ferry.toml").write_text('home = ".ferry"\n')
    monkeypatch.chdir(project / "src" / "deep")  # the nearest ferry.toml above is the project's
    settings = Settings.load()
    assert settings.home == project / ".ferry" and settings.home_source == str(project / "ferry.toml")
    monkeypatch.setenv("FERRY_HOME", str(tmp_path / "explicit"))
    assert Settings.load().home == tmp_path / "explicit"  # the environment wins over the file
    assert Settings.load().home_source == "FERRY_HOME"


def test_every_folder_lists_the_same_executions_and_says_which_home(no_home: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    flow = tmp_path / "tiny.py"
    flow.write_text("from ferry import task, workflow\n\n@task\ndef one(x: int) -> int:\n    return x\n\n"
                    "@workflow\ndef wf(x: int = 1) -> int:\n    return one(x=x)\n")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    ran = CliRunner().invoke(cli, ["run", str(flow), "wf"])
    assert ran.exit_code == 0, ran.output
    monkeypatch.chdir(tmp_path / "b")
    reset_settings()
    listed = CliRunner().invoke(cli, ["executions", "list"])
    assert "tiny.wf" in listed.stdout and "succeeded" in listed.stdout
    assert f"home: {no_home}/.local/share/ferry (the per-user default)" in listed.stderr
    assert not (tmp_path / "b" / ".ferry").exists() and not (tmp_path / "a" / ".ferry").exists()
    (tmp_path / "b" / ".ferry").mkdir()  # an old project home: said, not read
    hinted = CliRunner().invoke(cli, ["executions", "list"])
    assert f"note: {tmp_path}/b/.ferry is another ferry home, not read here" in hinted.stderr
    assert 'home = ".ferry"' in hinted.stderr


USER_FS = '''
"""A storage protocol of the user's own: userfs://PATH is a folder under $USERFS_ROOT."""
import os

from fsspec.implementations.dirfs import DirFileSystem
from fsspec.implementations.local import LocalFileSystem


class RootedFileSystem(DirFileSystem):
    protocol = "userfs"
    cachable = False  # its root comes from the environment, which each test sets anew

    def __init__(self, **kwargs):
        super().__init__(path=os.environ["USERFS_ROOT"], fs=LocalFileSystem(), **kwargs)

    @classmethod
    def _strip_protocol(cls, path):
        path = path[len("userfs://"):] if path.startswith("userfs://") else path
        return path.lstrip("/")
'''

FLOW = '''
from ferry import File, task, workflow


@task
def write(text: str) -> File:
    with open("note.txt", "w") as fh:
        fh.write(text)
    return File("note.txt")


@task
def read(f: File) -> str:
    with open(f) as fh:
        return fh.read().upper()


@workflow
def roundtrip(text: str = "hello") -> str:
    return read(f=write(text=text))
'''


@pytest.mark.parametrize("how", ["ferry.toml", "FERRY_PROTOCOLS"])
def test_a_protocol_named_in_the_settings_works_in_task_processes_and_the_cli(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "userfs.py").write_text(USER_FS)
    (tmp_path / "flow.py").write_text(FLOW)
    root = tmp_path / "userfs-root"
    root.mkdir()
    monkeypatch.setenv("USERFS_ROOT", str(root))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(modules), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.syspath_prepend(str(modules))
    monkeypatch.setenv("FERRY_METADATA_URL", "userfs://meta")
    monkeypatch.setenv("FERRY_RAW_OUTPUT_PREFIX", "userfs://raw")
    if how == "ferry.toml":
        (tmp_path / "ferry.toml").write_text('[protocols]\nuserfs = "userfs:RootedFileSystem"\n')
    else:
        monkeypatch.setenv("FERRY_PROTOCOLS", "userfs=userfs:RootedFileSystem")
    reset_settings()
    ran = CliRunner().invoke(cli, ["run", str(tmp_path / "flow.py"), "roundtrip", "--executor", "process"])
    assert ran.exit_code == 0, ran.output
    assert "o0 = 'HELLO'" in ran.stdout
    assert any(p.name == "note.txt" for p in (root / "raw").rglob("*"))  # the task processes wrote through it
    assert any(p.name == "outputs.pb" for p in (root / "meta").rglob("*"))
    # another process, knowing the protocol only from the settings, reads the metadata there
    shown = subprocess.run([sys.executable, "-m", "ferry.cli.main", "executions", "show", "--json"],
                           capture_output=True, text=True, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    execution = json.loads(shown.stdout)
    assert execution["outputs"]["o0"]["value"] == "HELLO"
    assert execution["nodes"][0]["inputs"]["text"]["value"] == "hello"
    # without the setting, the same command can't read it, and says which protocol is unknown
    env = {k: v for k, v in os.environ.items() if k != "FERRY_PROTOCOLS"}
    (tmp_path / "ferry.toml").unlink(missing_ok=True)
    bare = subprocess.run([sys.executable, "-m", "ferry.cli.main", "executions", "show"], capture_output=True,
                          text=True, cwd=tmp_path, env=env)
    assert bare.returncode == 1 and "Unknown storage protocol 'userfs'" in bare.stderr


@pytest.mark.parametrize("text, message", [
    ('[protocols]\n"bad name" = "x:Y"\n', "is not a protocol name"),
    ('[protocols]\nmine = "no-colon-or-dot"\n', 'must name its fsspec filesystem class as "module:ClassName"'),
    ('protocols = "mine"\n', "[protocols] must be a table"),
])
def test_bad_protocol_settings_are_refused_with_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str,
                                                        message: str) -> None:
    (tmp_path / "ferry.toml").write_text(text)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        Settings.load()


def test_protocols_pass_to_child_processes_and_load_nothing_until_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FERRY_PROTOCOLS", '{"lazyfs": "module_that_does_not_exist:FS"}')
    settings = Settings.load()
    assert settings.protocols == {"lazyfs": "module_that_does_not_exist:FS"}  # registered, not imported
    assert json.loads(settings.to_env()["FERRY_PROTOCOLS"]) == {"lazyfs": "module_that_does_not_exist:FS"}
    from ferry.errors import UnknownProtocolError
    from ferry.storage import read_bytes

    with pytest.raises(UnknownProtocolError, match="module_that_does_not_exist"):
        read_bytes("lazyfs://x/y")
    code = "import ferry, sys; from ferry.config import active_settings; active_settings(); print('fsspec' in sys.modules)"
    env = {k: v for k, v in os.environ.items() if k != "FERRY_PROTOCOLS"}
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env).stdout.strip() == "False"
