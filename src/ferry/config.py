"""One settings object, resolved as: explicit argument > FERRY_* env > ferry.toml > default.

Nothing is read at import time; ``Settings.load()`` does the I/O. Each store
carries its own fsspec options, so that a process holds only the credentials
for the stores it is given; printing settings never shows them.

The home folder is one per user by default (``$XDG_DATA_HOME/ferry``, else
``~/.local/share/ferry``), so every folder sees the same executions; a project
keeps its own with ``home = ".ferry"`` in its ``ferry.toml`` (relative to that
file) or ``FERRY_HOME``. Storage protocols named in the settings
(``[protocols] my_fs = "mypkg.fs:MyFS"`` or ``FERRY_PROTOCOLS``) are registered
whenever settings load, so the engine, the CLI and every task process know them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ferry.errors import ConfigError, redact
from ferry.units import parse_size

DEFAULT_MAX_LITERAL_BYTES = 1024 * 1024
DEFAULT_META_IN_RECORDS_BYTES = 64 * 1024
DEFAULT_CACHE_MAX_BYTES = 10 * 1024**3
DEFAULT_CACHE_TTL = 5.0  # seconds a persistent object's identity is trusted before re-checking
STORES = ("metadata", "raw", "persistent")


@dataclass(frozen=True)
class Settings:
    """Where ferry keeps things and how it reaches them."""

    home: Path
    metadata_url: str
    raw_output_prefix: str
    persistent_url: str
    cache_dir: Path
    cache_max_bytes: int = DEFAULT_CACHE_MAX_BYTES
    cache_ttl: float = DEFAULT_CACHE_TTL
    database_url: str = ""
    max_literal_bytes: int = DEFAULT_MAX_LITERAL_BYTES
    offload_large_literals: bool = True  # over max_literal_bytes: a file of its own, not an error
    # an in-process attempt's inputs.pb / outputs.pb up to this size live in its node record, not as objects
    meta_in_records_bytes: int = DEFAULT_META_IN_RECORDS_BYTES
    worker_config: str = ""  # settings file that task processes read instead of the engine's
    store_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    pickle_key: str = ""  # signs pickled values; empty: a key generated once in $FERRY_HOME/pickle.key
    trust_pickles: bool = False  # load pickles without a valid signature (only for stores you trust)
    protocols: Mapping[str, str] = field(default_factory=dict)  # protocol -> "module:FileSystemClass"
    home_source: str = "default"  # what chose the home: "argument", "FERRY_HOME", a ferry.toml's path, "default"

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self))
        return redact(f"Settings({shown})")

    @classmethod
    def load(cls, config_file: str | os.PathLike[str] | None = None, **overrides: Any) -> "Settings":
        """Resolve settings from overrides, the environment, ferry.toml and defaults."""
        file_values, file_path = _load_file(config_file)
        env = os.environ

        def pick(name: str, env_name: str) -> Any:
            if overrides.get(name) is not None:
                return overrides[name]
            if env.get(env_name):
                return env[env_name]
            return file_values.get(name)

        home, home_source = _home(overrides, env, file_values, file_path)
        options = {
            store: _store_options(store, overrides, env, file_values) for store in STORES
        }
        protocols = _protocols(overrides, env, file_values, file_path)
        register_protocols(protocols)
        return cls(
            home=home,
            metadata_url=as_url(pick("metadata_url", "FERRY_METADATA_URL") or home / "metadata"),
            raw_output_prefix=as_url(pick("raw_output_prefix", "FERRY_RAW_OUTPUT_PREFIX") or home / "raw"),
            persistent_url=as_url(pick("persistent_url", "FERRY_PERSISTENT_URL") or home / "persistent"),
            cache_dir=Path(pick("cache_dir", "FERRY_CACHE_DIR") or home / "cache").expanduser().absolute(),
            cache_max_bytes=_size("cache_max_bytes", pick("cache_max_bytes", "FERRY_CACHE_MAX_BYTES"), DEFAULT_CACHE_MAX_BYTES),
            cache_ttl=_float("cache_ttl", pick("cache_ttl", "FERRY_CACHE_TTL"), DEFAULT_CACHE_TTL),
            database_url=str(pick("database_url", "FERRY_DATABASE_URL") or f"sqlite:///{home / 'ferry.db'}"),
            max_literal_bytes=_int("max_literal_bytes", pick("max_literal_bytes", "FERRY_MAX_LITERAL_BYTES"), DEFAULT_MAX_LITERAL_BYTES),
            offload_large_literals=_bool("offload_large_literals", pick("offload_large_literals", "FERRY_OFFLOAD_LARGE_LITERALS"),
                                         True),
            meta_in_records_bytes=_size("meta_in_records_bytes", pick("meta_in_records_bytes",
                                        "FERRY_META_IN_RECORDS_BYTES"), DEFAULT_META_IN_RECORDS_BYTES),
            worker_config=str(pick("worker_config", "FERRY_WORKER_CONFIG") or ""),
            store_options=options,
            pickle_key=str(pick("pickle_key", "FERRY_PICKLE_KEY") or ""),
            trust_pickles=_bool("trust_pickles", pick("trust_pickles", "FERRY_TRUST_PICKLES"), False),
            protocols=protocols,
            home_source=home_source,
        )

    def options_for(self, uri: str, fallback: str | None = None) -> dict[str, Any]:
        """The fsspec options of the store that holds ``uri`` (matched by protocol and bucket).

        A URI on a bucket none of the stores names (a raw-output prefix chosen for one
        execution, a File a user passed by URI) gets the ``fallback`` store's options when
        it is on the same protocol: e.g. the raw store's endpoint and credentials.
        """
        stores = {
            "metadata": self.metadata_url,
            "raw": self.raw_output_prefix,
            "persistent": self.persistent_url,
        }
        for name, url in stores.items():
            if _same_bucket(uri, url):
                return dict(self.store_options.get(name, {}))
        if fallback is not None and uri.partition("://")[0] == stores[fallback].partition("://")[0]:
            return dict(self.store_options.get(fallback, {}))
        return {}

    def to_env(self, stores: tuple[str, ...] = STORES) -> dict[str, str]:
        """Environment variables that reproduce these settings in a child process.

        Only the options of ``stores`` are included, so a caller can hand a child
        process less than it holds itself.
        """
        env = {
            "FERRY_HOME": str(self.home),
            "FERRY_METADATA_URL": self.metadata_url,
            "FERRY_RAW_OUTPUT_PREFIX": self.raw_output_prefix,
            "FERRY_PERSISTENT_URL": self.persistent_url,
            "FERRY_CACHE_DIR": str(self.cache_dir),
            "FERRY_CACHE_MAX_BYTES": str(self.cache_max_bytes),
            "FERRY_CACHE_TTL": str(self.cache_ttl),
            "FERRY_DATABASE_URL": self.database_url,
            "FERRY_MAX_LITERAL_BYTES": str(self.max_literal_bytes),
            "FERRY_OFFLOAD_LARGE_LITERALS": "1" if self.offload_large_literals else "0",
            "FERRY_TRUST_PICKLES": "1" if self.trust_pickles else "0",
        }
        if self.pickle_key:
            env["FERRY_PICKLE_KEY"] = self.pickle_key
        if self.protocols:
            env["FERRY_PROTOCOLS"] = json.dumps(dict(self.protocols))
        for store in stores:
            if self.store_options.get(store):
                env[f"FERRY_{store.upper()}_OPTIONS"] = json.dumps(self.store_options[store])
        return env


_active: Settings | None = None


def active_settings() -> Settings:
    """The process-wide settings, loaded on first use (``reset_settings()`` forgets them)."""
    global _active
    if _active is None:
        _active = Settings.load()
    return _active


def reset_settings(settings: Settings | None = None) -> None:
    """Forget (or replace) the process-wide settings, e.g. after changing FERRY_* variables."""
    global _active
    _active = settings


def as_url(value: Any) -> str:
    """A URL from a setting; bare paths become absolute file:// URLs."""
    text = str(value)
    if "://" in text:
        return text.rstrip("/")
    return "file://" + str(Path(text).expanduser().absolute())


def _same_bucket(uri: str, url: str) -> bool:
    def head(u: str) -> tuple[str, str]:
        proto, _, rest = u.partition("://")
        if not rest:
            return "file", ""
        if proto in ("file", "local"):
            return "file", url_path(u)
        return proto, rest.split("/", 1)[0]

    (p1, b1), (p2, b2) = head(uri), head(url)
    if p1 != p2:
        return False
    if p1 == "file":
        return b1 == b2 or b1.startswith(b2.rstrip("/") + "/")
    return b1 == b2


def url_path(url: str) -> str:
    """The path part of a file:// URL (or a bare path)."""
    return url[len("file://"):] if url.startswith("file://") else url


def _int(name: str, value: Any, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"Setting {name} must be a whole number of bytes, got {value!r}. "
            f"Set it to e.g. 1048576 (FERRY_{name.upper()} or {name} in ferry.toml)."
        ) from None


def _size(name: str, value: Any, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return parse_size(value)
    except ValueError:
        raise ConfigError(
            f"Setting {name} must be a size such as 10GiB, 512MiB or a number of bytes, got {value!r}."
        ) from None


def _float(name: str, value: Any, default: float) -> float:
    if value is None or value == "":
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"Setting {name} must be a number of seconds, got {value!r}.") from None


def _bool(name: str, value: Any, default: bool) -> bool:
    if isinstance(value, bool):
        return value
    if value is None or str(value).strip() == "":
        return default
    word = str(value).strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"Setting {name} must be on or off (1/0, true/false, yes/no), got {value!r}. "
                      f"Set FERRY_{name.upper()} or {name} in ferry.toml to one of those.")


def _store_options(store: str, overrides: Mapping[str, Any], env: Mapping[str, str], file_values: Mapping[str, Any]) -> dict[str, Any]:
    explicit = overrides.get(f"{store}_options")
    if explicit is not None:
        return dict(explicit)
    env_name = f"FERRY_{store.upper()}_OPTIONS"
    if env.get(env_name):
        try:
            value = json.loads(env[env_name])
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{env_name} is not valid JSON ({exc.msg} at position {exc.pos}). "
                'It must be a JSON object of fsspec options, e.g. {"endpoint_url": "http://127.0.0.1:8333"}.'
            ) from None
        if not isinstance(value, dict):
            raise ConfigError(f"{env_name} must be a JSON object of fsspec options, got {type(value).__name__}.")
        return value
    return dict(file_values.get("stores", {}).get(store, {}))


def read_settings_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The values of one settings file (e.g. the workers' ``worker_config``)."""
    return _load_file(path)[0]


def user_data_home() -> Path:
    """The per-user default home: ``$XDG_DATA_HOME/ferry``, else ``~/.local/share/ferry``."""
    base = os.environ.get("XDG_DATA_HOME", "")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".local" / "share"
    return root / "ferry"


def settings_file_candidates() -> list[Path]:
    """Where settings are looked for, in order: FERRY_CONFIG alone if set; else ``ferry.toml`` in the current
    folder or the nearest folder above it (a project's), then the user's ``~/.config/ferry/ferry.toml``."""
    env_file = os.environ.get("FERRY_CONFIG")
    if env_file:
        return [Path(env_file)]
    here = Path.cwd()
    user_dir = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "ferry"
    return [folder / "ferry.toml" for folder in (here, *here.parents)] + [user_dir / "ferry.toml"]


def _load_file(config_file: str | os.PathLike[str] | None) -> tuple[dict[str, Any], Path | None]:
    """The first settings file's values and its path (({}, None) when there is none)."""
    candidates: list[Path]
    if config_file is not None:
        candidates = [Path(config_file)]
        if not candidates[0].exists():
            raise ConfigError(f"Settings file {config_file} does not exist. Check the path, or omit it to use defaults.")
    else:
        candidates = settings_file_candidates()
    for path in candidates:
        if path.is_file():
            try:
                return tomllib.loads(path.read_text()), path.absolute()
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"Settings file {path} is not valid TOML: {exc}. Fix the file or remove it.") from None
    return {}, None


def _home(overrides: Mapping[str, Any], env: Mapping[str, str], file_values: Mapping[str, Any],
          file_path: Path | None) -> tuple[Path, str]:
    """The home folder and what chose it. A relative ``home`` in a ferry.toml is relative to that file."""
    if overrides.get("home") is not None:
        return Path(overrides["home"]).expanduser().absolute(), "argument"
    if env.get("FERRY_HOME"):
        return Path(env["FERRY_HOME"]).expanduser().absolute(), "FERRY_HOME"
    if file_values.get("home"):
        path = Path(str(file_values["home"])).expanduser()
        if not path.is_absolute() and file_path is not None:
            path = file_path.parent / path
        return path.absolute(), str(file_path)
    return user_data_home(), "default"


_PROTOCOL_NAME = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*")
_CLASS_PATH = re.compile(r"[A-Za-z_][\w.]*(?::[A-Za-z_][\w.]*|\.[A-Za-z_]\w*)")


def _protocols(overrides: Mapping[str, Any], env: Mapping[str, str], file_values: Mapping[str, Any],
               file_path: Path | None) -> dict[str, str]:
    """Storage protocols the settings name: ferry.toml's ``[protocols]``, then FERRY_PROTOCOLS (which wins per
    name; a JSON object or ``name=module:Class,...``), then an explicit ``protocols`` argument."""
    found: dict[str, str] = {}
    table = file_values.get("protocols", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{file_path}: [protocols] must be a table of protocol = \"module:FileSystemClass\" lines.")
    found.update(_checked_protocols(table, f"[protocols] in {file_path}"))
    text = env.get("FERRY_PROTOCOLS", "").strip()
    if text:
        if text.startswith("{"):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"FERRY_PROTOCOLS is not valid JSON ({exc.msg}). Give a JSON object "
                                  '{"my_fs": "mypkg.fs:MyFS"} or my_fs=mypkg.fs:MyFS,other=pkg.mod:Other.') from None
        else:
            value = dict(item.strip().partition("=")[::2] for item in text.split(",") if item.strip())
        if not isinstance(value, dict):
            raise ConfigError("FERRY_PROTOCOLS must name protocols: my_fs=mypkg.fs:MyFS,other=pkg.mod:Other.")
        found.update(_checked_protocols(value, "FERRY_PROTOCOLS"))
    found.update(_checked_protocols(dict(overrides.get("protocols") or {}), "protocols"))
    return found


def _checked_protocols(table: Mapping[str, Any], where: str) -> dict[str, str]:
    out = {}
    for name, target in table.items():
        if not _PROTOCOL_NAME.fullmatch(str(name)):
            raise ConfigError(f"{where}: {name!r} is not a protocol name (letters, digits, +, . and -, e.g. my_fs).")
        if not isinstance(target, str) or not _CLASS_PATH.fullmatch(target):
            raise ConfigError(f"{where}: protocol {name!r} must name its fsspec filesystem class as "
                              f"\"module:ClassName\" (e.g. \"mypkg.fs:MyFileSystem\"), got {target!r}.")
        out[str(name)] = target
    return out


def register_protocols(protocols: Mapping[str, str]) -> None:
    """Make the settings' protocols usable; fsspec imports each class only when its protocol is first used."""
    if not protocols:
        return  # fsspec (and storage) load only when there is something to register
    from ferry.storage.registry import register_protocol

    for name, target in protocols.items():
        register_protocol(name, target, clobber=True)
