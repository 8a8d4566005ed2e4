"""The feature server over real HTTP: a `forgeml features serve` process on a free port."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

import forgeml as fm
from conftest import CLEAR
from forgeml import backend


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Two drivers materialized, and one server over that home for the module's tests."""
    tmp_path = tmp_path_factory.mktemp("served")
    with pytest.MonkeyPatch.context() as patch:
        for name in CLEAR:
            patch.delenv(name, raising=False)
        patch.setenv("FORGEML_HOME", str(tmp_path / "home"))
        patch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
        backend.reset()
        try:
            yield from _serve(tmp_path)
        finally:
            backend.reset()


def _serve(tmp_path: Path) -> Iterator[str]:
    source = tmp_path / "stats.parquet"
    pd.DataFrame(
        {
            "driver_id": [1, 1, 2],
            "ts": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-01"]),
            "rating": [4.0, 4.5, 3.0],
            "trips": [10, 12, 7],
        }
    ).to_parquet(source)
    driver = fm.Entity("driver", join_keys=["driver_id"])
    view = fm.FeatureView(
        "driver_stats",
        entities=[driver],
        source=str(source),
        timestamp_field="ts",
        features=["rating", "trips"],
    )
    fm.features.apply([driver, view])
    fm.features.materialize([view], end=dt.datetime(2024, 2, 1))
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "forgeml", "features", "serve", "--port", str(port)],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"the feature server did not start: {output}")
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def test_lookup_over_http_returns_latest_values(served: str) -> None:
    response = httpx.post(
        f"{served}/v1/features",
        json={
            "features": ["driver_stats:rating", "driver_stats:trips"],
            "entities": {"driver_id": [1, 2, 3]},
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["features"] == {
        "driver_id": [1, 2, 3],
        "rating": [4.5, 3.0, None],
        "trips": [12, 7, None],
    }


def test_string_keys_from_json_match_integer_keys(served: str) -> None:
    response = httpx.post(
        f"{served}/v1/features",
        json={"features": ["driver_stats:*"], "entities": [{"driver_id": "2"}]},
    )
    assert response.status_code == 200
    assert response.json()["features"]["rating"] == [3.0]


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 422, "JSON object"),
        (b'{"features": "driver_stats:rating", "entities": {"driver_id": [1]}}', 422, "features"),
        (b'{"features": ["driver_stats:rating"], "entities": {}}', 422, "entities"),
        (b'{"features": ["driver_stats:speed"], "entities": {"driver_id": [1]}}', 404, "speed"),
        (b'{"features": ["nowhere:x"], "entities": {"driver_id": [1]}}', 404, "nowhere"),
        (b'{"features": ["driver_stats:rating"], "entities": {"rider": [1]}}', 422, "driver_id"),
    ],
)
def test_bad_requests_get_a_4xx_with_the_reason(
    served: str, body: bytes, status: int, fragment: str
) -> None:
    response = httpx.post(f"{served}/v1/features", content=body)
    assert response.status_code == status
    assert fragment in response.json()["error"]


def test_oversized_body_and_wrong_method(served: str) -> None:
    huge = b'{"features": [], "entities": {"driver_id": [' + b"1," * 600_000 + b"1]}}"
    assert httpx.post(f"{served}/v1/features", content=huge).status_code == 413
    assert httpx.get(f"{served}/v1/features").status_code == 405
    assert httpx.get(f"{served}/nothing").status_code == 404


def test_readiness_views_and_metrics(served: str) -> None:
    ready = httpx.get(f"{served}/readyz")
    assert ready.status_code == 200
    assert ready.json()["views"] == ["driver_stats"]
    views = httpx.get(f"{served}/v1/views").json()["views"]
    assert views["driver_stats"]["features"] == ["rating", "trips"]
    before = _metrics(served)
    for _ in range(3):
        httpx.post(
            f"{served}/v1/features",
            json={"features": ["driver_stats:rating"], "entities": {"driver_id": [1]}},
        )
    after = _metrics(served)

    def grew(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    assert grew('forgeml_feature_requests_total{status="200"}') == 3
    assert grew("forgeml_feature_request_seconds_count") == 3
    # the first lookup of driver 1 may already be cached by an earlier test: all three
    # are hits or the first is a miss
    assert (
        grew("forgeml_feature_cache_hits_total") + grew("forgeml_feature_cache_misses_total") == 3
    )
    assert grew("forgeml_feature_cache_hits_total") >= 2
    assert 0 < after["forgeml_feature_cache_hit_ratio"] <= 1


def _metrics(base: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in httpx.get(f"{base}/metrics").text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values
