"""Settings, resolved once per process from four layers.

Precedence, highest first: environment variables (``FORGEML_*``), the project file
(``forgeml.toml`` in the working directory or the nearest parent that has one), the
user file (``$XDG_CONFIG_HOME/forgeml/forgeml.toml``, default
``~/.config/forgeml/forgeml.toml``), then built-in defaults. Every value is validated
where it is read, so a mistake is reported with the key, the value and the place it
came from, before anything touches a database.
"""

from __future__ import annotations

import getpass
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import Any

from forgeml.errors import ConfigError

PROJECT_FILE = "forgeml.toml"
_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")


@dataclass(frozen=True)
class Settings:
    """The resolved settings of this process; ``sources`` says where each value came from."""

    home: Path
    db_url: str
    artifacts_url: str
    online_url: str
    user: str
    flush_interval: float
    flush_size: int
    monitor_interval: float
    executor: str
    heartbeat_interval: float
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def cache_dir(self) -> Path:
        """Local, verified copies of artifacts (model bundles) live here."""
        return self.home / "cache"


def _positive_float(key: str, value: Any, where: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}={value!r} ({where}): expected a number of seconds") from None
    if not number > 0:
        raise ConfigError(f"{key}={value!r} ({where}): must be greater than 0")
    return number


def _positive_int(key: str, value: Any, where: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}={value!r} ({where}): expected a whole number") from None
    if number < 1:
        raise ConfigError(f"{key}={value!r} ({where}): must be at least 1")
    return number


def _text(key: str, value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key}={value!r} ({where}): expected a non-empty string")
    return value.strip()


def _path(key: str, value: Any, where: str, base: Path) -> str:
    text = _text(key, value, where)
    return str((base / Path(text).expanduser()).resolve())


def normalize_db_url(key: str, value: Any, where: str, base: Path) -> str:
    """Accept SQLite and PostgreSQL URLs; pick the psycopg 3 driver for bare ``postgresql``."""
    text = _text(key, value, where)
    match = _URL_SCHEME.match(text)
    if match is None:
        raise ConfigError(
            f"{key}={text!r} ({where}): not a database URL "
            "(expected sqlite:///PATH or postgresql://USER@HOST/DB)"
        )
    scheme = match.group(1).lower()
    dialect, _, driver = scheme.partition("+")
    rest = text[match.end() :]
    if dialect == "sqlite":
        if driver not in ("", "pysqlite"):
            raise ConfigError(f"{key}={text!r} ({where}): unsupported SQLite driver {driver!r}")
        if not rest.startswith("/"):
            raise ConfigError(
                f"{key}={text!r} ({where}): a SQLite URL needs three slashes, "
                "sqlite:///relative/path or sqlite:////absolute/path"
            )
        path = rest[1:]
        if path in ("", ":memory:"):
            raise ConfigError(
                f"{key}={text!r} ({where}): an in-memory SQLite database cannot be shared "
                "between processes; give a file path"
            )
        return "sqlite:///" + str((base / Path(path).expanduser()).resolve())
    if dialect in ("postgresql", "postgres"):
        if driver not in ("", "psycopg", "psycopg2"):
            raise ConfigError(
                f"{key}={text!r} ({where}): unsupported PostgreSQL driver {driver!r} (use psycopg)"
            )
        return f"postgresql+{driver or 'psycopg'}://{rest}"
    raise ConfigError(
        f"{key}={text!r} ({where}): unsupported database {dialect!r} "
        "(forgeml stores metadata in SQLite or PostgreSQL)"
    )


def normalize_artifacts_url(key: str, value: Any, where: str, base: Path) -> str:
    """A local directory (plain path or ``file://``) or any URL fsspec has a filesystem for."""
    text = _text(key, value, where)
    match = _URL_SCHEME.match(text)
    if match is None:
        return str((base / Path(text).expanduser()).resolve())
    protocol = match.group(1).lower()
    if protocol in ("file", "local"):
        return str((base / Path(text[match.end() :]).expanduser()).resolve())
    import fsspec

    if protocol not in fsspec.available_protocols():
        raise ConfigError(
            f"{key}={text!r} ({where}): no filesystem is known for {protocol!r} "
            "(a local path, file://, s3://, gs://, memory:// ... are accepted)"
        )
    return text.rstrip("/")


def normalize_online_url(key: str, value: Any, where: str, base: Path) -> str:
    """The online feature store: a SQLite file (embedded default) or a Redis server."""
    text = _text(key, value, where)
    match = _URL_SCHEME.match(text)
    scheme = match.group(1).lower() if match else ""
    if scheme in ("redis", "rediss", "unix"):
        return text
    if scheme == "sqlite":
        rest = text[match.end() :] if match else ""
        path = rest[1:] if rest.startswith("/") else ""
        if path in ("", ":memory:"):
            raise ConfigError(
                f"{key}={text!r} ({where}): the online store must be a file that every "
                "process can open (sqlite:///PATH)"
            )
        return "sqlite:///" + str((base / Path(path).expanduser()).resolve())
    raise ConfigError(
        f"{key}={text!r} ({where}): unsupported online store "
        "(expected sqlite:///PATH or redis://HOST:PORT/DB)"
    )


def normalize_executor(key: str, value: Any, where: str) -> str:
    """``local``, ``ray`` (start or join a local Ray runtime) or ``ray://HOST:PORT``."""
    text = _text(key, value, where)
    if text in ("local", "ray") or text.startswith("ray://"):
        return text
    raise ConfigError(
        f"{key}={text!r} ({where}): unsupported executor (expected local, ray or ray://HOST:PORT)"
    )


@dataclass(frozen=True)
class _Key:
    env: str
    parse: Callable[..., Any]
    needs_base: bool = False


_KEYS: dict[str, _Key] = {
    "home": _Key("FORGEML_HOME", _path, needs_base=True),
    "db_url": _Key("FORGEML_DB_URL", normalize_db_url, needs_base=True),
    "artifacts_url": _Key("FORGEML_ARTIFACTS_URL", normalize_artifacts_url, needs_base=True),
    "online_url": _Key("FORGEML_ONLINE_URL", normalize_online_url, needs_base=True),
    "user": _Key("FORGEML_USER", _text),
    "flush_interval": _Key("FORGEML_FLUSH_INTERVAL", _positive_float),
    "flush_size": _Key("FORGEML_FLUSH_SIZE", _positive_int),
    "monitor_interval": _Key("FORGEML_MONITOR_INTERVAL", _positive_float),
    "executor": _Key("FORGEML_EXECUTOR", lambda *args: normalize_executor(*args)),
    "heartbeat_interval": _Key("FORGEML_HEARTBEAT_INTERVAL", _positive_float),
}
assert set(_KEYS) == {f.name for f in fields(Settings)} - {"sources"}


def user_config_path() -> Path:
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "forgeml" / PROJECT_FILE


def find_project_file(start: Path | None = None) -> Path | None:
    """The nearest ``forgeml.toml`` from ``start`` (default: the working directory) upward."""
    directory = (start or Path.cwd()).resolve()
    for candidate in (directory, *directory.parents):
        path = candidate / PROJECT_FILE
        if path.is_file():
            return path
    return None


def _read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror}") from None
    # Settings may sit at the top level or under a [forgeml] table.
    if "forgeml" in data and isinstance(data["forgeml"], dict):
        nested = data.pop("forgeml")
        data = {**data, **nested}
    unknown = sorted(set(data) - set(_KEYS))
    if unknown:
        raise ConfigError(
            f"{path}: unknown setting {unknown[0]!r} (known: {', '.join(sorted(_KEYS))})"
        )
    return data


def resolve(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> Settings:
    """Build settings from the four layers without caching; :func:`settings` caches this."""
    environ = os.environ if environ is None else environ
    layers: list[tuple[str, Mapping[str, Any], Path]] = []
    user_file = user_config_path()
    if user_file.is_file():
        layers.append((str(user_file), _read_file(user_file), user_file.parent))
    project_file = find_project_file(cwd)
    if project_file is not None:
        layers.append((str(project_file), _read_file(project_file), project_file.parent))
    env_layer = {name: environ[key.env] for name, key in _KEYS.items() if key.env in environ}
    layers.append(("environment", env_layer, (cwd or Path.cwd()).resolve()))

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for where, layer, base in layers:
        for name, raw in layer.items():
            key = _KEYS[name]
            label = key.env if where == "environment" else name
            source = where if where == "environment" else f"in {where}"
            args = (label, raw, source, base) if key.needs_base else (label, raw, source)
            values[name] = key.parse(*args)
            sources[name] = where

    home = Path(values.get("home", str(Path.home() / ".forgeml")))
    for name, default in {
        "db_url": f"sqlite:///{home / 'forgeml.db'}",
        "artifacts_url": str(home / "artifacts"),
        "online_url": f"sqlite:///{home / 'online.db'}",
        "user": _default_user(),
        "flush_interval": 1.0,
        "flush_size": 5000,
        "monitor_interval": 5.0,
        "executor": "local",
        "heartbeat_interval": 10.0,
    }.items():
        if name not in values:
            values[name] = default
            sources[name] = "default"
    sources.setdefault("home", "default")
    return Settings(
        home=home,
        db_url=values["db_url"],
        artifacts_url=values["artifacts_url"],
        online_url=values["online_url"],
        user=values["user"],
        flush_interval=values["flush_interval"],
        flush_size=values["flush_size"],
        monitor_interval=values["monitor_interval"],
        executor=values["executor"],
        heartbeat_interval=values["heartbeat_interval"],
        sources=sources,
    )


def _default_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@cache
def settings() -> Settings:
    """The settings of this process, resolved on first use and then fixed."""
    return resolve()


def reload() -> Settings:
    """Forget the cached settings (tests and long-lived tools that change the environment)."""
    settings.cache_clear()
    return settings()
