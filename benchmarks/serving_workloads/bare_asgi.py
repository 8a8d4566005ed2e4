"""The reference "bare app": the least a Python server can do to answer the benchmark's model.

A raw ASGI callable under uvicorn (uvloop, httptools): read the body, parse it with
orjson, build a DataFrame of the request's rows, call ``model.predict`` on it in the
event loop, write ``{"outputs": [...]}``. No framework, no validation beyond what
pandas does, no batching across requests, no metrics, no logs. It answers the same
bodies as forgeml's ``/v1/deployments/{name}/predict``: ``{"inputs": {...}}`` (one
record) or ``{"inputs": [{...}, ...]}`` (records), on any path.

    BENCH_MODEL_PICKLE=model.pkl uvicorn bare_asgi:app --loop uvloop --http httptools
"""

from __future__ import annotations

import os
import pickle
from typing import Any

import numpy as np
import orjson
import pandas as pd

with open(os.environ["BENCH_MODEL_PICKLE"], "rb") as handle:
    MODEL = pickle.load(handle)
COLUMNS = list(MODEL.feature_names_in_)
JSON_HEADERS = [(b"content-type", b"application/json")]


def predict(inputs: Any) -> list[Any]:
    records = [inputs] if isinstance(inputs, dict) else inputs
    matrix = np.array([[record[name] for name in COLUMNS] for record in records], dtype=float)
    frame = pd.DataFrame(matrix, columns=COLUMNS, copy=False)
    return list(MODEL.predict(frame).tolist())


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    try:
        body = orjson.dumps({"outputs": predict(orjson.loads(b"".join(chunks))["inputs"])})
        status = 200
    except Exception as exc:  # a bad request: say why, as any server would
        body = orjson.dumps({"error": f"{type(exc).__name__}: {exc}"})
        status = 422
    headers = [*JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
