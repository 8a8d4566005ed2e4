"""The model server's core: which deployments it holds, and how one request is answered.

The HTTP layer (``forgeml.serving.app``) only parses and encodes; everything a
request goes through lives here: routing to an arm, joining online features, the
breaker, the queue bound, the timeout, the fallback, the shadow copy, metrics and the
prediction log. Deployments are re-read from the metadata store in the background;
when it is unreachable the server goes on with what it has, and at start-up it falls
back to the snapshot it wrote the last time it loaded them.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from forgeml.errors import NotFoundError
from forgeml.serving.batching import Overloaded, Ticket
from forgeml.serving.breaker import STATE_VALUES
from forgeml.serving.deployment import (
    LiveDeployment,
    ModelCache,
    ModelHandle,
    build_handles,
)
from forgeml.serving.inputs import RequestError, Rows
from forgeml.serving.metrics import ServingMetrics
from forgeml.serving.prediction_log import LoggedRequest, PredictionLog
from forgeml.serving.runtime import LoadedModel, ResolvedModel, resolve
from forgeml.serving.spec import DeploymentSpec

log = logging.getLogger("forgeml.serving")
events_log = logging.getLogger("forgeml.serving.events")


class PredictError(Exception):
    """A request that could not be answered, with the HTTP status that says why."""

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


@dataclass
class Answer:
    outputs: list[Any]
    deployment: str
    arm: str
    model: str | None
    version: int | None
    fallback: bool
    reason: str | None = None
    request_id: str = ""


@dataclass(frozen=True)
class Source:
    """Where deployments come from: stored ones (by name, or all) and ad-hoc specs."""

    names: tuple[str, ...] | None = None
    specs: tuple[DeploymentSpec, ...] = ()
    stored: bool = True


class ModelServer:
    def __init__(
        self,
        source: Source,
        *,
        refresh_seconds: float = 2.0,
        log_predictions: bool = True,
        metrics: ServingMetrics | None = None,
        snapshot_dir: Path | None = None,
        prediction_log: PredictionLog | None = None,
    ) -> None:
        self.source = source
        self.refresh_seconds = refresh_seconds
        self.metrics = metrics or ServingMetrics()
        self.deployments: dict[str, LiveDeployment] = {}
        self.models = ModelCache()
        self.ready = False
        self.control_plane_error: str | None = None
        self.snapshot_dir = snapshot_dir
        self.prediction_log = prediction_log
        if prediction_log is None and log_predictions:
            self.prediction_log = PredictionLog(
                on_written=self.metrics.log_rows.inc, on_dropped=self.metrics.log_dropped.inc
            )
        self._refresh_task: asyncio.Task[None] | None = None
        self._refresh_now: asyncio.Event | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._features: Any = None

    # -- life cycle -----------------------------------------------------------------
    async def start(self) -> None:
        """Load every deployment; from the snapshot if the metadata store is down."""
        try:
            await self.refresh()
        except Exception as exc:
            if not self._snapshot_path().is_file():
                raise
            log.warning("metadata store unreachable (%s); serving from the local snapshot", exc)
            self.control_plane_error = str(exc)
            await self._start_from_snapshot()
        _settle_heap()
        self.ready = True
        self._refresh_now = asyncio.Event()
        self._refresh_task = asyncio.get_running_loop().create_task(self._refresh_loop())

    async def stop(self) -> None:
        """Stop refreshing, answer everything queued, then write the prediction log."""
        self.ready = False
        if self._refresh_task is not None:
            self._refresh_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresh_task
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        for deployment in list(self.deployments.values()):
            await self._retire(deployment, keep=set())
        if self.prediction_log is not None:
            await asyncio.to_thread(self.prediction_log.close)

    def request_refresh(self) -> None:
        """Re-read deployments now rather than at the next poll (API call, SIGHUP)."""
        if self._refresh_now is not None:
            self._refresh_now.set()

    async def _refresh_loop(self) -> None:
        assert self._refresh_now is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._refresh_now.wait(), self.refresh_seconds)
            self._refresh_now.clear()
            try:
                await self.refresh()
                if self.control_plane_error is not None:
                    log.info("metadata store reachable again")
                self.control_plane_error = None
            except Exception as exc:  # keep serving what is loaded
                if self.control_plane_error is None:
                    log.warning("cannot refresh deployments, serving what is loaded: %s", exc)
                self.control_plane_error = str(exc)

    # -- loading and swapping -------------------------------------------------------
    async def refresh(self) -> None:
        """Bring the served deployments in line with the store and the registry's aliases."""
        wanted = await asyncio.to_thread(self._wanted)
        for name in [n for n in self.deployments if n not in wanted]:
            old = self.deployments.pop(name)
            self._event(name, "removed", {})
            await self._retire(old, keep=set())
        for name, (spec, revision) in wanted.items():
            current = self.deployments.get(name)
            resolved = await asyncio.to_thread(self._resolve_all, spec)
            if current is not None and current.spec == spec and _same(current, resolved):
                if current.revision != revision:
                    current.revision = revision
                continue
            await self._install(spec, revision, resolved)

    def _wanted(self) -> dict[str, tuple[DeploymentSpec, int]]:
        wanted = {spec.name: (spec, 0) for spec in self.source.specs}
        if not self.source.stored:
            return wanted
        from forgeml import backend

        repo = backend.deployments()
        revisions = repo.revisions()
        names = self.source.names if self.source.names is not None else tuple(revisions)
        for name in names:
            if name not in revisions:
                if self.source.names is not None and not self.deployments and not wanted:
                    raise NotFoundError(f"no deployment named {name!r}")
                continue
            current = self.deployments.get(name)
            if current is not None and current.revision == revisions[name]:
                wanted[name] = (current.spec, current.revision)
                continue
            record = repo.get(name)
            wanted[name] = (
                DeploymentSpec.from_dict(record.spec, f"deployment {name!r}"),
                record.revision,
            )
        return wanted

    @staticmethod
    def _resolve_all(spec: DeploymentSpec) -> dict[str, ResolvedModel]:
        return {role: resolve(uri) for role, uri in spec.model_uris.items()}

    async def _install(
        self, spec: DeploymentSpec, revision: int, resolved: dict[str, ResolvedModel]
    ) -> None:
        models: dict[str, LoadedModel] = await asyncio.to_thread(
            lambda: {role: self.models.get(r, spec.method) for role, r in resolved.items()}
        )
        previous = self.deployments.get(spec.name)
        handles = build_handles(spec, models, previous, self._breaker_changed, self._batch_done)
        live = LiveDeployment(spec, revision, handles)
        self.deployments[spec.name] = live  # the swap: new requests see only the new one
        for role, handle in handles.items():
            self.metrics.breaker_state.labels(spec.name, role).set(
                STATE_VALUES[handle.breaker.state]
            )
        detail = {role: r.label for role, r in resolved.items()}
        self._event(spec.name, "loaded", {"revision": revision, "models": detail})
        if previous is not None:
            keep = {id(h) for h in handles.values()}
            task = asyncio.get_running_loop().create_task(self._retire(previous, keep))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        await asyncio.to_thread(self._write_snapshot)

    async def _retire(self, deployment: LiveDeployment, keep: set[int]) -> None:
        """Close the queues of a replaced deployment once its requests have answers."""
        deadline = time.monotonic() + 60.0
        while deployment.inflight > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for handle in deployment.handles.values():
            if id(handle) not in keep:
                await handle.batcher.close()

    # -- the snapshot: serving on when the metadata store is down ---------------------
    def _snapshot_path(self) -> Path:
        from forgeml import config

        directory = self.snapshot_dir or config.settings().cache_dir / "serving"
        names = ",".join(sorted(self.source.names or ())) or "all"
        specs = ",".join(sorted(s.name for s in self.source.specs))
        digest = hashlib.sha256(f"{names}|{specs}".encode()).hexdigest()[:16]
        return directory / f"deployments-{digest}.json"

    def _write_snapshot(self) -> None:
        entries = [
            {
                "spec": live.spec.to_dict(),
                "revision": live.revision,
                "models": {
                    role: {
                        "uri": h.resolved.uri,
                        "name": h.resolved.name,
                        "version": h.resolved.version,
                        "digest": h.resolved.digest,
                    }
                    for role, h in live.handles.items()
                },
            }
            for live in self.deployments.values()
        ]
        path = self._snapshot_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_bytes(orjson.dumps({"deployments": entries}, option=orjson.OPT_INDENT_2))
        os.replace(temporary, path)

    async def _start_from_snapshot(self) -> None:
        data = orjson.loads(self._snapshot_path().read_bytes())
        for entry in data["deployments"]:
            spec = DeploymentSpec.from_dict(entry["spec"], "snapshot")
            resolved = {
                role: ResolvedModel(m["uri"], m["name"], int(m["version"]), m["digest"])
                for role, m in entry["models"].items()
            }
            await self._install(spec, int(entry["revision"]), resolved)

    # -- answering ------------------------------------------------------------------
    def get(self, name: str) -> LiveDeployment:
        live = self.deployments.get(name)
        if live is None:
            served = ", ".join(sorted(self.deployments)) or "none"
            raise PredictError(404, f"no deployment named {name!r} here (serving: {served})")
        return live

    def admit(self, name: str) -> None:
        """Refuse (404, 503) a request its deployment's champion cannot take now.

        Called before a request's body is read: under overload, refusing must cost less
        than answering, or the refusals themselves starve the model.
        """
        live = self.get(name)
        handle = live.handles["champion"]
        try:
            handle.batcher.admit(0, live.spec.timeout_ms / 1000.0)
        except Overloaded as exc:
            raise self._shed(name, "champion", exc) from None

    def _shed(self, deployment: str, role: str, reason: Overloaded) -> PredictError:
        """The 503 a refused request gets, counted."""
        self.metrics.errors.labels(deployment, role, "overloaded").inc()
        return PredictError(503, f"overloaded: {reason}", retry_after=1.0)

    async def predict(
        self, name: str, rows: Rows, request_id: str, key: str | None = None
    ) -> Answer:
        started = time.perf_counter()
        live = self.get(name)
        live.inflight += 1
        try:
            return await self._predict(live, rows, request_id, key, started)
        finally:
            live.inflight -= 1

    async def _predict(
        self, live: LiveDeployment, rows: Rows, request_id: str, key: str | None, started: float
    ) -> Answer:
        spec = live.spec
        features: dict[str, list[Any]] | None = None
        if spec.features:
            rows, features = await self._join_features(spec, rows)
        if key is None and spec.sticky_key is not None and rows.columns is not None:
            values = rows.columns.get(spec.sticky_key)
            key = None if not values else str(values[0])
        arm = live.route(key)
        handle = live.handles[arm]
        answer: Answer | None = None
        status = 200
        try:
            answer = await self._call(live, handle, rows)
        except PredictError as exc:
            status = exc.status
            raise
        except RequestError as exc:
            status = exc.status
            self.metrics.errors.labels(spec.name, arm, "invalid").inc()
            raise
        finally:
            elapsed = time.perf_counter() - started
            self._account(live, handle, arm, answer, rows, status, elapsed, request_id, features)
        answer.request_id = request_id
        if spec.policy == "shadow" and "challenger" in live.handles:
            self._spawn(self._shadow(live, rows, answer, request_id, features))
        return answer

    async def _call(self, live: LiveDeployment, handle: ModelHandle, rows: Rows) -> Answer:
        spec = live.spec
        deadline = spec.timeout_ms / 1000.0
        try:
            # Before validation: a request that will be refused should cost nothing more.
            handle.batcher.admit(rows.count, deadline)
        except Overloaded as exc:
            raise self._shed(spec.name, handle.role, exc) from None
        checked = handle.model.inputs.check(rows)  # RequestError: the caller's fault, 422
        if not handle.breaker.allow():
            return await self._fallback(live, rows, f"circuit open: {handle.breaker.reason}")
        ticket = Ticket()
        try:
            async with asyncio.timeout(deadline):
                outputs = await handle.batcher.submit(checked, checked.count, ticket)
        except Overloaded as exc:
            raise self._shed(spec.name, handle.role, exc) from None
        except TimeoutError:
            # Only a model call that used most of the time says the model is sick; a
            # request that spent it waiting in the queue says the server is busy.
            began = ticket.started_at
            if began is not None and time.perf_counter() - began > deadline / 2:
                handle.breaker.failure(f"no answer within {spec.timeout_ms:g} ms")
            self.metrics.errors.labels(spec.name, handle.role, "timeout").inc()
            return await self._fallback(
                live, rows, f"timeout after {spec.timeout_ms:g} ms", status=504
            )
        except Exception as exc:
            handle.breaker.failure(f"{type(exc).__name__}: {exc}")
            self.metrics.errors.labels(spec.name, handle.role, "model").inc()
            log.warning("model %s failed: %s", handle.model.label, exc)
            return await self._fallback(live, rows, f"model {handle.model.label} failed: {exc}")
        assert ticket.started_at is not None
        handle.breaker.success(time.perf_counter() - ticket.started_at)
        resolved = handle.resolved
        return Answer(outputs, spec.name, handle.role, resolved.name, resolved.version, False)

    async def _fallback(
        self, live: LiveDeployment, rows: Rows, reason: str, status: int = 503
    ) -> Answer:
        spec = live.spec
        fallback = live.handles.get("fallback")
        if fallback is not None:
            try:
                checked = fallback.model.inputs.check(rows)
                async with asyncio.timeout(spec.timeout_ms / 1000.0):
                    outputs = await fallback.batcher.submit(checked, checked.count)
            except (RequestError, Overloaded, TimeoutError, Exception) as exc:
                log.warning("fallback %s failed too: %s", fallback.model.label, exc)
            else:
                self.metrics.fallbacks.labels(spec.name, "model").inc()
                r = fallback.resolved
                return Answer(outputs, spec.name, "fallback", r.name, r.version, True, reason)
        if spec.has_default_answer:
            self.metrics.fallbacks.labels(spec.name, "default").inc()
            return Answer(
                [spec.default_answer] * rows.count, spec.name, "default", None, None, True, reason
            )
        retry = spec.breaker.open_seconds if reason.startswith("circuit open") else None
        raise PredictError(status, reason, retry_after=retry)

    async def _join_features(
        self, spec: DeploymentSpec, rows: Rows
    ) -> tuple[Rows, dict[str, list[Any]]]:
        if rows.columns is None:
            raise RequestError("a deployment with features takes named fields", "inputs")
        client = self._feature_client()
        columns = rows.columns
        try:
            joined = await asyncio.to_thread(client.get, columns, list(spec.features))
        except RequestError:
            raise
        except (NotFoundError, ValueError) as exc:
            raise RequestError(f"online features: {exc}", "features") from None
        features = {k: v for k, v in joined.items() if k not in columns}
        return Rows(rows.count, columns={**columns, **features}), features

    def _feature_client(self) -> Any:
        if self._features is None:
            from forgeml.features.lookup import default_client

            self._features = default_client()
        return self._features

    async def _shadow(
        self,
        live: LiveDeployment,
        rows: Rows,
        champion: Answer | None,
        request_id: str,
        features: dict[str, list[Any]] | None,
    ) -> None:
        handle = live.handles["challenger"]
        spec = live.spec
        started = time.perf_counter()
        live.inflight += 1
        try:
            checked = handle.model.inputs.check(rows)
            async with asyncio.timeout(spec.timeout_ms / 1000.0):
                outputs = await handle.batcher.submit(checked, checked.count)
        except Exception as exc:
            self.metrics.shadow.labels(spec.name, "failed").inc()
            log.debug("shadow %s failed: %s", handle.model.label, exc)
            return
        finally:
            live.inflight -= 1
        same = champion is not None and champion.outputs == outputs
        self.metrics.shadow.labels(spec.name, "same" if same else "different").inc()
        if self.prediction_log is not None and spec.log_predictions:
            resolved = handle.resolved
            self.prediction_log.append(
                LoggedRequest(
                    request_id, time.time(), spec.name, "challenger", resolved.name,
                    resolved.version, rows, features, outputs,
                    (time.perf_counter() - started) * 1000.0, False, True, 200,
                )
            )  # fmt: skip

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- bookkeeping ----------------------------------------------------------------
    def _account(
        self,
        live: LiveDeployment,
        handle: ModelHandle,
        arm: str,
        answer: Answer | None,
        rows: Rows,
        status: int,
        elapsed: float,
        request_id: str,
        features: dict[str, list[Any]] | None,
    ) -> None:
        name = live.spec.name
        used = answer.arm if answer is not None else arm
        if answer is not None and answer.model is not None:
            version = f"{answer.model}/{answer.version}"
        elif answer is not None:
            version = "default"
        else:
            version = handle.model.label
        metrics = self.metrics
        metrics.requests.labels(name, used, version, str(status)).inc()
        metrics.latency.labels(name, used, version).observe(elapsed)
        if answer is not None:
            metrics.rows.labels(name, used, version).inc(rows.count)
        if self.prediction_log is not None and live.spec.log_predictions:
            self.prediction_log.append(
                LoggedRequest(
                    request_id,
                    time.time(),
                    name,
                    arm,
                    answer.model if answer is not None else handle.resolved.name,
                    answer.version if answer is not None else handle.resolved.version,
                    rows,
                    features,
                    answer.outputs if answer is not None else None,
                    elapsed * 1000.0,
                    answer.fallback if answer is not None else False,
                    False,
                    status,
                )
            )

    def _batch_done(self, label: str, rows: int) -> None:
        self.metrics.batch_rows.labels(label).observe(rows)

    def _breaker_changed(self, deployment: str, role: str, old: str, new: str, why: str) -> None:
        self.metrics.breaker_state.labels(deployment, role).set(STATE_VALUES[new])
        self.metrics.breaker_changes.labels(deployment, role, new).inc()
        self._event(deployment, "breaker", {"arm": role, "from": old, "to": new, "reason": why})

    @staticmethod
    def _event(deployment: str, kind: str, detail: dict[str, Any]) -> None:
        events_log.info(
            orjson.dumps(
                {"at": time.time(), "deployment": deployment, "event": kind, **detail}
            ).decode()
        )

    def record_outcome(self, name: str, arm: str | None, key: str | None, value: float) -> str:
        """Count an observed outcome (a click, a sale, an error) for an A/B arm."""
        live = self.get(name)
        if arm is None:
            if key is None:
                raise RequestError('an outcome needs "arm" or "key"', "arm")
            arm = live.route(key) if live.spec.policy == "ab" else "champion"
        if arm not in ("champion", "challenger"):
            raise RequestError(f'"arm" must be champion or challenger, got {arm!r}', "arm")
        self.metrics.outcomes.labels(name, arm).inc()
        self.metrics.outcome_sum.labels(name, arm).inc(value)
        self.metrics.outcome_squares.labels(name, arm).inc(value * value)
        return arm

    def describe(self) -> list[dict[str, Any]]:
        return [live.describe() for live in self.deployments.values()]


def _settle_heap() -> None:
    """Move everything loaded so far out of the garbage collector's sight.

    Modules, models and caches make up a heap of millions of objects that live as long
    as the process; without this, every full collection walks them all again, and each
    walk is a pause of tenths of a second in the middle of answering requests.
    """
    gc.collect()
    gc.freeze()


def _same(live: LiveDeployment, resolved: dict[str, ResolvedModel]) -> bool:
    current = {role: h.resolved for role, h in live.handles.items()}
    return current == resolved
