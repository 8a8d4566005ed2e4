"""Models and servers for the serving tests: small real models, registered for real."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import numpy as np
import pandas as pd

import forgeml as fm
from forgeml.serving.app import ServingApp
from forgeml.serving.server import ModelServer, Source
from forgeml.serving.spec import DeploymentSpec

FEATURES = [f"f{i}" for i in range(5)]


def table(rows: int = 400, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, len(FEATURES))), columns=FEATURES)
    labels = (frame.f0 + 2 * frame.f1 - frame.f2 > 0).astype(int)
    return frame, labels


def register_versions(name: str = "clf", count: int = 2) -> list[Any]:
    """``count`` versions of a classifier; version k has k * 5 trees (they differ)."""
    from sklearn.ensemble import GradientBoostingClassifier

    frame, labels = table()
    versions = []
    for k in range(1, count + 1):
        model = GradientBoostingClassifier(n_estimators=5 * k, max_depth=2, random_state=k)
        model.fit(frame, labels)
        versions.append(fm.log_model(model, name, example=frame[:5], run_id=None))
    fm.set_alias(name, "champion", versions[0].version)
    return versions


def record(seed: int = 1) -> dict[str, float]:
    frame, _ = table(1, seed)
    return {k: float(v) for k, v in frame.iloc[0].items()}


@contextlib.asynccontextmanager
async def running(
    *specs: DeploymentSpec, stored: bool = False, **options: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, ModelServer]]:
    """A started server and an HTTP client talking to it in-process."""
    source = Source(names=None, specs=tuple(specs), stored=stored)
    server = ModelServer(source, **{"refresh_seconds": 3600.0, **options})
    await server.start()
    app = ServingApp(server, access_logs=False)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://serving") as client:
            yield client, server
    finally:
        await server.stop()
