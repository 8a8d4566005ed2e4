"""Settings: four layers in a fixed order, and one clear line for every mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from forgeml import config
from forgeml.errors import ConfigError


@pytest.fixture
def clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in (
        "FORGEML_HOME",
        "FORGEML_DB_URL",
        "FORGEML_ARTIFACTS_URL",
        "FORGEML_USER",
        "FORGEML_FLUSH_INTERVAL",
        "FORGEML_FLUSH_SIZE",
        "FORGEML_MONITOR_INTERVAL",
    ):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    project = tmp_path / "project"
    (project / "sub").mkdir(parents=True)
    monkeypatch.chdir(project / "sub")
    return tmp_path


def write(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)


def test_defaults_live_under_the_home(clean: Path) -> None:
    settings = config.resolve(environ={})
    home = clean / "user" / ".forgeml"
    assert settings.home == home
    assert settings.db_url == f"sqlite:///{home / 'forgeml.db'}"
    assert settings.artifacts_url == str(home / "artifacts")
    assert settings.sources["db_url"] == "default"


def test_precedence_environment_then_project_then_user(clean: Path) -> None:
    write(
        clean / "xdg" / "forgeml" / "forgeml.toml",
        'home = "/u/home"\nuser = "from-user"\nflush_size = 10\n',
    )
    write(clean / "project" / "forgeml.toml", '[forgeml]\nuser = "from-project"\nflush_size = 20\n')
    settings = config.resolve(environ={"FORGEML_FLUSH_SIZE": "30"})
    assert settings.home == Path("/u/home")
    assert settings.user == "from-project"
    assert settings.flush_size == 30
    assert settings.db_url == "sqlite:////u/home/forgeml.db"
    assert settings.sources["home"].endswith("xdg/forgeml/forgeml.toml")
    assert settings.sources["user"].endswith("project/forgeml.toml")
    assert settings.sources["flush_size"] == "environment"


def test_relative_paths_in_a_project_file_are_relative_to_that_file(clean: Path) -> None:
    write(
        clean / "project" / "forgeml.toml",
        'db_url = "sqlite:///meta/db.sqlite"\nartifacts_url = "store"\n',
    )
    settings = config.resolve(environ={})
    assert settings.db_url == f"sqlite:///{clean / 'project' / 'meta' / 'db.sqlite'}"
    assert settings.artifacts_url == str(clean / "project" / "store")


def test_postgres_and_fsspec_urls_are_normalised(clean: Path) -> None:
    settings = config.resolve(
        environ={
            "FORGEML_DB_URL": "postgresql://me@db:5432/ml",
            "FORGEML_ARTIFACTS_URL": "s3://bucket/prefix/",
        }
    )
    assert settings.db_url == "postgresql+psycopg://me@db:5432/ml"
    assert settings.artifacts_url == "s3://bucket/prefix"
    assert (
        config.resolve(environ={"FORGEML_ARTIFACTS_URL": "file:///tmp/x"}).artifacts_url == "/tmp/x"
    )


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"FORGEML_DB_URL": "mysql://x/y"},
            "FORGEML_DB_URL='mysql://x/y' (environment): unsupported database 'mysql'",
        ),
        (
            {"FORGEML_DB_URL": "not a url"},
            "FORGEML_DB_URL='not a url' (environment): not a database URL",
        ),
        ({"FORGEML_DB_URL": "sqlite://x.db"}, "needs three slashes"),
        ({"FORGEML_DB_URL": "sqlite:///:memory:"}, "in-memory SQLite"),
        (
            {"FORGEML_ARTIFACTS_URL": "nosuchfs://bucket"},
            "FORGEML_ARTIFACTS_URL='nosuchfs://bucket' (environment): no filesystem",
        ),
        (
            {"FORGEML_FLUSH_SIZE": "lots"},
            "FORGEML_FLUSH_SIZE='lots' (environment): expected a whole number",
        ),
        (
            {"FORGEML_FLUSH_INTERVAL": "-1"},
            "FORGEML_FLUSH_INTERVAL='-1' (environment): must be greater than 0",
        ),
    ],
)
def test_bad_values_name_the_key_and_value(
    clean: Path, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        config.resolve(environ=environ)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_key_in_a_file_is_named_with_the_file(clean: Path) -> None:
    path = clean / "project" / "forgeml.toml"
    write(path, 'db_uri = "sqlite:///x.db"\n')
    with pytest.raises(ConfigError, match=r"forgeml.toml: unknown setting 'db_uri' \(known: "):
        config.resolve(environ={})


def test_bad_value_in_a_file_names_the_file(clean: Path) -> None:
    write(clean / "project" / "forgeml.toml", "flush_size = 0\n")
    with pytest.raises(
        ConfigError, match=r"flush_size=0 \(in .*project/forgeml.toml\): must be at least 1"
    ):
        config.resolve(environ={})


def test_malformed_toml(clean: Path) -> None:
    write(clean / "project" / "forgeml.toml", "home = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.resolve(environ={})


def test_settings_are_resolved_once(clean: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORGEML_USER", "first")
    assert config.reload().user == "first"
    monkeypatch.setenv("FORGEML_USER", "second")
    assert config.settings().user == "first"
    assert config.reload().user == "second"
    monkeypatch.delenv("FORGEML_USER")
    config.reload()
