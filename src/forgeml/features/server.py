"""The feature server: online lookups over HTTP, as a small ASGI application.

A lookup is a few microseconds of SQLite or one Redis round trip, so it runs inline
on the event loop: handing it to a thread would cost more than the lookup. Scale out
with ``--workers`` (processes), each with its own cache kept current by the store's
change notifications.

    POST /v1/features  {"features": ["weather:temp"], "entities": {"origin": ["JFK"]}}
    GET  /v1/views     what the online store holds
    GET  /healthz /readyz /metrics
"""

from __future__ import annotations

import os
import time

import orjson

from forgeml.asgi import Receive, Scope, Send, error_body, lifespan, read_body, respond
from forgeml.errors import ForgeMLError, InvalidArgumentError, NotFoundError
from forgeml.features.lookup import FeatureClient

MAX_BODY_BYTES = 1 << 20
_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class _Metrics:
    def __init__(self) -> None:
        self.requests: dict[int, int] = {}
        self.buckets = [0] * (len(_BUCKETS) + 1)
        self.latency_sum = 0.0
        self.latency_count = 0

    def observe(self, status: int, seconds: float) -> None:
        self.requests[status] = self.requests.get(status, 0) + 1
        self.latency_sum += seconds
        self.latency_count += 1
        for index, bound in enumerate(_BUCKETS):
            if seconds <= bound:
                self.buckets[index] += 1
                return
        self.buckets[-1] += 1

    def render(self, client: FeatureClient) -> bytes:
        lines = [
            "# HELP forgeml_feature_requests_total Feature lookups served, by HTTP status.",
            "# TYPE forgeml_feature_requests_total counter",
        ]
        for status, count in sorted(self.requests.items()):
            lines.append(f'forgeml_feature_requests_total{{status="{status}"}} {count}')
        lines += [
            "# HELP forgeml_feature_request_seconds Time to answer a lookup.",
            "# TYPE forgeml_feature_request_seconds histogram",
        ]
        running = 0
        for bound, count in zip(_BUCKETS, self.buckets, strict=False):
            running += count
            lines.append(f'forgeml_feature_request_seconds_bucket{{le="{bound}"}} {running}')
        lines.append(f'forgeml_feature_request_seconds_bucket{{le="+Inf"}} {self.latency_count}')
        lines.append(f"forgeml_feature_request_seconds_sum {self.latency_sum}")
        lines.append(f"forgeml_feature_request_seconds_count {self.latency_count}")
        stats = client.stats()
        lines += [
            "# TYPE forgeml_feature_entity_rows_total counter",
            f"forgeml_feature_entity_rows_total {stats['rows']}",
        ]
        cache = stats["cache"]
        if cache is not None:
            lines += [
                "# TYPE forgeml_feature_cache_hits_total counter",
                f"forgeml_feature_cache_hits_total {cache['hits']}",
                "# TYPE forgeml_feature_cache_misses_total counter",
                f"forgeml_feature_cache_misses_total {cache['misses']}",
                "# TYPE forgeml_feature_cache_invalidations_total counter",
                f"forgeml_feature_cache_invalidations_total {cache['invalidations']}",
                "# HELP forgeml_feature_cache_hit_ratio Hits over lookups since start.",
                "# TYPE forgeml_feature_cache_hit_ratio gauge",
                f"forgeml_feature_cache_hit_ratio {cache['hit_rate']}",
                "# TYPE forgeml_feature_cache_entries gauge",
                f"forgeml_feature_cache_entries {cache['size']}",
            ]
        return ("\n".join(lines) + "\n").encode()


class FeatureServer:
    """The ASGI application; ``client`` decides the store and whether a cache is used."""

    def __init__(self, client: FeatureClient) -> None:
        self.client = client
        self.metrics = _Metrics()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        path, method = scope["path"], scope["method"]
        if path == "/v1/features":
            if method != "POST":
                status, body = 405, _error("use POST")
            else:
                status, body = await self._lookup(receive)
            self.metrics.observe(status, time.perf_counter() - started)
            await respond(send, status, body)
        elif path == "/healthz" and method == "GET":
            await respond(send, 200, b'{"status":"ok"}')
        elif path == "/readyz" and method == "GET":
            await self._ready(send)
        elif path == "/v1/views" and method == "GET":
            views = {name: self.client.store.get_meta(name) for name in self.client.store.views()}
            await respond(send, 200, orjson.dumps({"views": views}))
        elif path == "/metrics" and method == "GET":
            await respond(
                send,
                200,
                self.metrics.render(self.client),
                [(b"content-type", b"text/plain; version=0.0.4")],
            )
        else:
            await respond(send, 404, _error(f"no route {method} {path}"))

    async def _lookup(self, receive: Receive) -> tuple[int, bytes]:
        raw = await _read_body(receive)
        if raw is None:
            return 413, _error(f"the request body is larger than {MAX_BODY_BYTES} bytes")
        try:
            request = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return 400, _error(f"the body is not valid JSON: {exc}")
        if not isinstance(request, dict):
            return 422, _error("the body must be a JSON object")
        features, entities = request.get("features"), request.get("entities")
        if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
            return 422, _error('"features" must be a list of "view:feature" strings')
        if not isinstance(entities, dict | list) or not entities:
            return 422, _error('"entities" must be {"key": [values]} or a list of objects')
        extra = request.get("request")
        if extra is not None and not isinstance(extra, dict):
            return 422, _error('"request" must be {"field": [values]}')
        try:
            columns = self.client.get(
                entities,
                features,
                request=extra,
                full_names=bool(request.get("full_names", False)),
                as_of=request.get("as_of"),
            )
        except NotFoundError as exc:
            return 404, _error(str(exc))
        except (InvalidArgumentError, TypeError, ValueError) as exc:
            return 422, _error(str(exc))
        except ForgeMLError as exc:
            return 503, _error(str(exc))
        return 200, orjson.dumps({"features": columns}, option=orjson.OPT_SERIALIZE_NUMPY)

    async def _ready(self, send: Send) -> None:
        try:
            views = self.client.store.views()
        except Exception as exc:  # the store is unreachable: not ready, and say why
            await respond(send, 503, _error(f"online store unavailable: {exc}"))
            return
        await respond(send, 200, orjson.dumps({"status": "ready", "views": views}))


def _error(message: str) -> bytes:
    return error_body(message)


async def _read_body(receive: Receive) -> bytes | None:
    return await read_body(receive, MAX_BODY_BYTES)


def create_app() -> FeatureServer:
    """The application for one worker process, configured from the environment."""
    cache = os.environ.get("FORGEML_FEATURE_CACHE", "1") not in ("0", "false", "no")
    ttl = float(os.environ.get("FORGEML_FEATURE_CACHE_TTL", "60"))
    return FeatureServer(FeatureClient(cache=cache, cache_ttl_seconds=ttl))


def serve(
    host: str = "127.0.0.1",
    port: int = 6566,
    workers: int = 1,
    cache: bool = True,
    cache_ttl_seconds: float = 60.0,
) -> None:
    """Run the feature server until interrupted."""
    try:
        import uvicorn
    except ImportError as exc:  # pragma: no cover - the serve extra is missing
        raise ForgeMLError(
            "the feature server needs uvicorn: pip install 'forgeml[serve]'"
        ) from exc

    os.environ["FORGEML_FEATURE_CACHE"] = "1" if cache else "0"
    os.environ["FORGEML_FEATURE_CACHE_TTL"] = str(cache_ttl_seconds)
    uvicorn.run(
        "forgeml.features.server:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="auto",  # uvloop and httptools when installed
        http="auto",
        access_log=False,
        log_level="warning",
    )
