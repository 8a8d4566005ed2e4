"""The model server's HTTP face: forgeml's own JSON/Arrow API and the V2 inference protocol.

POST /v1/deployments/{name}/predict   {"inputs": [{...}, ...]} or an Arrow IPC stream
GET  /v1/deployments[/{name}]         what is served, breaker states, queue depths
POST /v1/deployments/{name}/outcomes  {"key" | "arm": ..., "value": 1.0}  (A/B)
GET  /v1/deployments/{name}/ab        per-arm outcomes and Welch's t-test
POST /v1/admin/refresh                re-read deployments now
GET  /v2/health/ready, /v2/models/{name}, POST /v2/models/{name}/infer   (OIP V2)
GET  /healthz /readyz /metrics
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from typing import Any

import orjson

from forgeml.asgi import (
    TEXT,
    Receive,
    Scope,
    Send,
    error_body,
    header,
    lifespan,
    read_body,
    respond,
)
from forgeml.errors import ForgeMLError, InvalidArgumentError
from forgeml.serving import oip
from forgeml.serving.inputs import RequestError, Rows, rows_from_arrow, rows_from_json
from forgeml.serving.metrics import ab_summary
from forgeml.serving.server import Answer, ModelServer, PredictError

access_log = logging.getLogger("forgeml.access")
MAX_BODY_BYTES = 64 << 20
ARROW_TYPES = (b"application/vnd.apache.arrow.stream", b"application/vnd.apache.arrow.file")
_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


class ServingApp:
    def __init__(self, server: ModelServer, *, access_logs: bool = True) -> None:
        self.server = server
        self.access_logs = access_logs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send, self._startup, self.server.stop)
            return
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        status, body, headers, answer = await self._route(scope, receive, request_id)
        if answer is not None:
            request_id = answer.request_id
        headers = [*headers, (b"x-request-id", request_id.encode())]
        await respond(send, status, body, headers)
        if self.access_logs:
            self._access(scope, status, started, request_id, answer)

    async def _startup(self) -> None:
        await self.server.start()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().add_signal_handler(
                signal.SIGHUP, self.server.request_refresh
            )

    async def _route(
        self, scope: Scope, receive: Receive, request_id: str
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]], Answer | None]:
        path: str = scope["path"]
        method: str = scope["method"]
        parts = [p for p in path.split("/") if p]
        try:
            if len(parts) == 4 and parts[:2] == ["v1", "deployments"] and parts[3] == "predict":
                _need(method, "POST")
                return await self._predict(scope, receive, parts[2], request_id)
            if len(parts) >= 1 and parts[0] == "v2":
                return await self._v2(scope, receive, parts[1:], method, request_id)
            if path == "/healthz":
                return 200, b'{"status":"ok"}', [], None
            if path == "/readyz":
                return self._readyz()
            if path == "/metrics":
                return 200, await asyncio.to_thread(self.server.metrics.render), TEXT, None
            if parts[:2] == ["v1", "deployments"]:
                return await self._deployments(receive, parts[2:], method)
            if path == "/v1/admin/refresh":
                _need(method, "POST")
                self.server.request_refresh()
                return 202, b'{"status":"refresh requested"}', [], None
            raise PredictError(404, f"no route {method} {path}")
        except PredictError as exc:
            headers = []
            if exc.retry_after is not None:
                headers.append((b"retry-after", str(max(1, round(exc.retry_after))).encode()))
            return exc.status, error_body(str(exc)), headers, None
        except RequestError as exc:
            return exc.status, error_body(str(exc), field=exc.field), [], None
        except InvalidArgumentError as exc:
            return 422, error_body(str(exc)), [], None
        except ForgeMLError as exc:
            return 503, error_body(str(exc)), [], None

    # -- forgeml's own API ------------------------------------------------------------
    async def _predict(
        self, scope: Scope, receive: Receive, name: str, request_id: str
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]], Answer | None]:
        self.server.admit(name)  # 404 or 503 before reading a body that will not be scored
        body = await read_body(receive, MAX_BODY_BYTES)
        if body is None:
            raise PredictError(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
        key_header = header(scope, b"x-forgeml-key")
        key = key_header.decode() if key_header is not None else None
        content_type = header(scope, b"content-type") or b""
        if content_type.split(b";")[0].strip() in ARROW_TYPES:
            rows = rows_from_arrow(body)
        else:
            rows, request_id, key = _json_request(body, request_id, key)
        answer = await self.server.predict(name, rows, request_id, key)
        payload = {
            "id": request_id,
            "deployment": answer.deployment,
            "model": answer.model,
            "version": answer.version,
            "arm": answer.arm,
            "outputs": answer.outputs,
            "fallback": answer.fallback,
        }
        if answer.reason is not None:
            payload["fallback_reason"] = answer.reason
        return 200, orjson.dumps(payload, option=_JSON_OPTIONS), [], answer

    async def _deployments(
        self, receive: Receive, rest: list[str], method: str
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]], Answer | None]:
        if not rest:
            _need(method, "GET")
            return 200, orjson.dumps({"deployments": self.server.describe()}), [], None
        live = self.server.get(rest[0])
        if len(rest) == 1:
            _need(method, "GET")
            return 200, orjson.dumps(live.describe()), [], None
        if rest[1:] == ["ab"]:
            _need(method, "GET")
            summary = await asyncio.to_thread(ab_summary, self.server.metrics, live.name)
            return 200, orjson.dumps(summary), [], None
        if rest[1:] == ["outcomes"]:
            _need(method, "POST")
            body = await read_body(receive, 1 << 20)
            if body is None:
                raise PredictError(413, "the body is larger than 1 MiB")
            items = _loads(body)
            if isinstance(items, dict):
                items = [items]
            if not isinstance(items, list):
                raise RequestError("outcomes are an object or a list of objects", "body")
            arms = []
            for position, item in enumerate(items):
                value = item.get("value") if isinstance(item, dict) else None
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise RequestError(f'outcome {position}: "value" must be a number', "value")
                key = item.get("key")
                arms.append(
                    self.server.record_outcome(
                        live.name, item.get("arm"), None if key is None else str(key), value
                    )
                )
            return 200, orjson.dumps({"recorded": len(arms), "arms": arms}), [], None
        raise PredictError(404, f"no route for deployment {live.name!r}: {'/'.join(rest[1:])}")

    def _readyz(self) -> tuple[int, bytes, list[tuple[bytes, bytes]], Answer | None]:
        server = self.server
        body = {
            "ready": server.ready,
            "deployments": {
                name: {role: h.resolved.label for role, h in live.handles.items()}
                for name, live in server.deployments.items()
            },
            "control_plane": "ok" if server.control_plane_error is None else "unreachable",
        }
        if server.control_plane_error is not None:
            body["control_plane_error"] = server.control_plane_error
        return (200 if server.ready else 503), orjson.dumps(body), [], None

    # -- Open Inference Protocol V2 ------------------------------------------------------
    async def _v2(
        self, scope: Scope, receive: Receive, parts: list[str], method: str, request_id: str
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]], Answer | None]:
        if not parts:
            info = {"name": "forgeml", "version": _version(), "extensions": ["binary_tensor_data"]}
            return 200, orjson.dumps(info), [], None
        if parts == ["health", "live"]:
            return 200, b"{}", [], None
        if parts == ["health", "ready"]:
            return (200 if self.server.ready else 503), b"{}", [], None
        if parts[0] != "models" or len(parts) < 2:
            raise PredictError(404, f"no route {method} /v2/{'/'.join(parts)}")
        live = self.server.get(parts[1])
        rest = parts[2:]
        champion = live.handles["champion"]
        if len(rest) >= 2 and rest[0] == "versions":
            versions = {str(h.resolved.version) for h in live.handles.values()}
            if rest[1] not in versions:
                raise PredictError(
                    404,
                    f"deployment {live.name!r} serves versions {sorted(versions)}, not {rest[1]}",
                )
            rest = rest[2:]
        if not rest:
            _need(method, "GET")
            model = champion.model
            metadata = oip.model_metadata(
                live.name, model.resolved.version, model.manifest["flavor"], model.inputs,
                live.spec.method,
            )  # fmt: skip
            return 200, orjson.dumps(metadata), [], None
        if rest == ["ready"]:
            return (200 if self.server.ready else 503), b"{}", [], None
        if rest != ["infer"]:
            raise PredictError(404, f"no route {method} /v2/{'/'.join(parts)}")
        _need(method, "POST")
        self.server.admit(live.name)
        body = await read_body(receive, MAX_BODY_BYTES)
        if body is None:
            raise PredictError(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
        length = header(scope, b"inference-header-content-length")
        try:
            header_length = int(length) if length is not None else None
        except ValueError:
            raise RequestError(
                "Inference-Header-Content-Length must be a number", "header", 400
            ) from None
        request, tail = oip.parse_request(body, header_length)
        if isinstance(request.get("id"), str):
            request_id = request["id"]
        rows = oip.request_rows(request, tail, champion.model.inputs)
        key_header = header(scope, b"x-forgeml-key")
        answer = await self.server.predict(
            live.name, rows, request_id, key_header.decode() if key_header else None
        )
        extra = {"arm": answer.arm, "fallback": answer.fallback}
        payload, json_length = oip.response(
            live.name, answer.version or 0, request.get("id"), live.spec.method,
            answer.outputs, oip.wants_binary(request), extra,
        )  # fmt: skip
        headers: list[tuple[bytes, bytes]] = []
        if json_length is not None:
            headers = [
                (b"content-type", b"application/octet-stream"),
                (b"inference-header-content-length", str(json_length).encode()),
            ]
        return 200, payload, headers, answer

    def _access(
        self, scope: Scope, status: int, started: float, request_id: str, answer: Answer | None
    ) -> None:
        record: dict[str, Any] = {
            "at": time.time(),
            "request_id": request_id,
            "method": scope["method"],
            "path": scope["path"],
            "status": status,
            "latency_ms": round((time.perf_counter() - started) * 1000.0, 3),
        }
        if answer is not None:
            record.update(
                deployment=answer.deployment,
                arm=answer.arm,
                model=answer.model,
                version=answer.version,
                rows=len(answer.outputs),
                fallback=answer.fallback,
            )
        access_log.info(orjson.dumps(record).decode())


def _json_request(body: bytes, request_id: str, key: str | None) -> tuple[Rows, str, str | None]:
    request = _loads(body)
    if isinstance(request, list):
        return rows_from_json(request), request_id, key
    if not isinstance(request, dict) or "inputs" not in request:
        raise RequestError(
            'the body must be {"inputs": ...} (records, columns or one record) or a list of '
            "records",
            "inputs",
        )
    given_id = request.get("id")
    if given_id is not None:
        request_id = str(given_id)[:128]
    if request.get("key") is not None:
        key = str(request["key"])
    return rows_from_json(request["inputs"]), request_id, key


def _loads(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"the body is not valid JSON: {exc}", "body", 400) from None


def _need(method: str, expected: str) -> None:
    if method != expected:
        raise PredictError(405, f"use {expected}")


def _request_id(scope: Scope) -> str:
    given = header(scope, b"x-request-id")
    if given:
        return given.decode(errors="replace")[:128]
    return os.urandom(12).hex()


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("forgeml")
    except metadata.PackageNotFoundError:  # pragma: no cover - source checkout
        return "0"
