"""Shared fixtures: an isolated forgeml home per test, and real database backends.

PostgreSQL tests run against the server named by ``FORGEML_TEST_POSTGRES_URL``
(default: the local server, database ``test``). Each test gets a schema of its own,
dropped afterwards. Without a server the tests skip, except under ``CI=true``, where a
missing server is a failure: a backend that silently stops being tested is lost.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from forgeml import backend

REDIS_URL = os.environ.get("FORGEML_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get("FORGEML_TEST_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

CLEAR = (
    "FORGEML_HOME",
    "FORGEML_DB_URL",
    "FORGEML_ARTIFACTS_URL",
    "FORGEML_ONLINE_URL",
    "FORGEML_USER",
    "FORGEML_FLUSH_INTERVAL",
    "FORGEML_FLUSH_SIZE",
    "FORGEML_MONITOR_INTERVAL",
    "FORGEML_EXECUTOR",
    "FORGEML_HEARTBEAT_INTERVAL",
    "FORGEML_LOCAL_GPUS",
)


def _postgres_available() -> str | None:
    """None if the server answers, else the reason it does not."""
    import psycopg

    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3):
            return None
    except Exception as exc:
        return str(exc).strip().splitlines()[0]


def require_postgres() -> None:
    reason = _postgres_available()
    if reason is None:
        return
    message = f"PostgreSQL at {POSTGRES_URL} is not reachable: {reason}"
    if IN_CI:
        pytest.fail(message + " (CI=true: PostgreSQL tests must run)")
    pytest.skip(message)


@pytest.fixture
def postgres_schema_url() -> Iterator[str]:
    """A database URL whose search_path is a fresh, empty schema."""
    require_postgres()
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in POSTGRES_URL else "?"
    url = f"{POSTGRES_URL}{separator}options={quote(f'-csearch_path={schema}')}"
    try:
        yield url
    finally:
        backend.reset()
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def require_redis() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
        return
    except redis.RedisError as exc:
        message = f"Redis at {REDIS_URL} is not reachable: {exc}"
    if IN_CI:
        pytest.fail(message + " (CI=true: Redis tests must run)")
    pytest.skip(message)


NATS_URL = os.environ.get("FORGEML_TEST_NATS_URL", "nats://127.0.0.1:4222")


def require_nats() -> None:
    """Skip without a NATS server with JetStream locally; under CI=true, fail."""
    import asyncio

    import nats

    async def probe() -> None:
        nc = await nats.connect(NATS_URL, connect_timeout=3, allow_reconnect=False)
        try:
            await nc.jetstream().account_info()
        finally:
            await nc.close()

    try:
        asyncio.run(probe())
        return
    except Exception as exc:
        message = f"NATS JetStream at {NATS_URL} is not reachable: {exc or type(exc).__name__}"
    if IN_CI:
        pytest.fail(message + " (CI=true: NATS tests must run)")
    pytest.skip(message)


@pytest.fixture
def redis_online_url() -> Iterator[str]:
    """An online-store URL on the local Redis with a key prefix of its own, removed afterwards."""
    require_redis()
    from forgeml.features.online_store import RedisOnlineStore

    url = f"{REDIS_URL}?prefix=t{uuid.uuid4().hex[:12]}:"
    yield url
    backend.reset()
    store = RedisOnlineStore(url)
    store.clear()
    store.close()


@pytest.fixture(params=["sqlite", "redis"])
def online_backend(
    request: pytest.FixtureRequest, home: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """Runs the test once with the SQLite online store and once with Redis."""
    if request.param == "redis":
        monkeypatch.setenv("FORGEML_ONLINE_URL", request.getfixturevalue("redis_online_url"))
        backend.reset()
    return str(request.param)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty forgeml home, with no user or project file in the way, as the cwd."""
    for name in CLEAR:
        monkeypatch.delenv(name, raising=False)
    forgeml_home = tmp_path / "home"
    monkeypatch.setenv("FORGEML_HOME", str(forgeml_home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("FORGEML_USER", "tester")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    backend.reset()
    yield forgeml_home
    backend.reset()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_backend(request: pytest.FixtureRequest, home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs the test once on SQLite and once on PostgreSQL; returns the backend name."""
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_schema_url")
        monkeypatch.setenv("FORGEML_DB_URL", url)
        backend.reset()
    return str(request.param)


@pytest.fixture
def python() -> str:
    return sys.executable


def require_ray() -> None:
    """Skip without Ray locally; under CI=true a missing Ray fails the test."""
    try:
        import ray  # noqa: F401
    except ImportError:
        if IN_CI:
            pytest.fail("CI=true: Ray must be installed, the Ray executor must be tested")
        pytest.skip("Ray is not installed")


@pytest.fixture(scope="session")
def ray_runtime() -> Iterator[None]:
    """One local Ray runtime for the whole test session (it takes seconds to start)."""
    require_ray()
    import ray

    ray.init(
        num_cpus=2,
        object_store_memory=150 * 1024**2,
        include_dashboard=False,
        logging_level="WARNING",
        log_to_driver=False,
    )
    yield
    ray.shutdown()
