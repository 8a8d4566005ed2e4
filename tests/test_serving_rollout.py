"""Progressive rollouts against a real server under load: promote, automatic rollback, manual."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

import forgeml as fm
from forgeml.errors import ConflictError, InvalidArgumentError
from forgeml.serving.prediction_log import PredictionLog
from forgeml.serving.rollout_evidence import ArmEvidence, summarize
from forgeml.serving.server import ModelServer
from forgeml_cli import cli, cli_json
from serving_support import record, register_versions, running

PREDICT = "/v1/deployments/clf/predict"
# A generous latency slack: on a busy 2-core machine a healthy arm's p99 jitters by tens
# of milliseconds; the latency gate has a test of its own with a clearly slower model.
FAST = fm.serving.RolloutPlan(
    steps=(10, 50, 100),
    step_seconds=0.6,
    min_requests=8,
    poll_seconds=0.15,
    max_step_seconds=8,
    latency_slack_ms=100,
)


def _deploy(**options: Any) -> None:
    register_versions(count=2)
    fm.serving.deploy("clf", "models:/clf@champion", default_answer=-1, **options)


def _sabotage_challenger(server: ModelServer, *, sleep: float = 0.0, error: bool = True) -> None:
    """Once the challenger is loaded, make its model fail (or crawl) from then on."""
    live = server.deployments.get("clf")
    handle = live.handles.get("challenger") if live is not None else None
    if handle is None or getattr(handle.batcher.call, "sabotaged", False):
        return
    real = handle.batcher.call

    def broken(payloads: Sequence[Any]) -> Sequence[Any]:
        if sleep:
            time.sleep(sleep)
        if error:
            raise RuntimeError("challenger exploded")
        return real(payloads)

    broken.sabotaged = True  # type: ignore[attr-defined]
    handle.batcher.call = broken


def _under_load(
    run: Callable[[], Any], on_tick: Callable[[ModelServer], None] | None = None
) -> tuple[Any, Counter[Any]]:
    """Run the blocking ``run`` in a thread while 6 clients keep the server busy."""

    async def main() -> tuple[Any, Counter[Any]]:
        seen: Counter[Any] = Counter()
        log = PredictionLog(flush_seconds=0.1)
        async with running(stored=True, refresh_seconds=0.1, prediction_log=log) as (
            client,
            server,
        ):
            done = asyncio.Event()

            async def client_loop() -> None:
                while not done.is_set():
                    if on_tick is not None:
                        on_tick(server)
                    reply = await client.post(PREDICT, json={"inputs": record()})
                    seen[reply.status_code] += 1
                    if reply.status_code == 200:
                        body = reply.json()
                        seen[(body["arm"], body["version"])] += 1
                    await asyncio.sleep(0.005)

            clients = [asyncio.create_task(client_loop()) for _ in range(6)]
            try:
                result = await asyncio.to_thread(run)
            finally:
                done.set()
                await asyncio.gather(*clients)
        return result, seen

    return asyncio.run(main())


def test_a_healthy_challenger_is_promoted_step_by_step_and_the_alias_moves(home: Path) -> None:
    _deploy()
    result, seen = _under_load(lambda: fm.serving.rollout("clf", "models:/clf/2", FAST))
    assert result.state == "promoted", (result.reason, result.steps)
    assert [s["weight"] for s in result.steps] == [10, 50, 100]
    assert all(s["passed"] and s["challenger"]["requests"] >= 8 for s in result.steps)
    assert seen[200] == sum(v for k, v in seen.items() if isinstance(k, int)), seen
    assert seen[("challenger", 2)] > 0 and seen[("champion", 1)] > 0
    # promoted by moving the alias the deployment follows; the deployment is single again
    assert fm.get_model_version("models:/clf@champion").version == 2
    spec = fm.serving.get_deployment("clf").spec
    assert spec["model"] == "models:/clf@champion" and spec["policy"] == "single"
    status = fm.serving.rollout_status("clf")
    assert status is not None and status["state"] == "promoted" and len(status["steps"]) == 3
    weights = [e["spec"]["weight"] for e in fm.serving.history("clf") if e.get("change") == "saved"]
    assert weights[1:4] == [10.0, 50.0, 100.0]


def test_a_failing_challenger_is_rolled_back_at_the_first_step_with_its_evidence(
    home: Path,
) -> None:
    _deploy(timeout_ms=500.0)
    before = fm.serving.get_deployment("clf").spec
    result, seen = _under_load(
        lambda: fm.serving.rollout("clf", "models:/clf/2", FAST), _sabotage_challenger
    )
    assert result.state == "rolled_back"
    assert "challenger error rate" in result.reason
    step = result.steps[-1]
    assert step["weight"] == 10 and not step["passed"]
    assert step["challenger"]["errors"] >= 1 and step["champion"]["errors"] == 0
    assert fm.serving.get_deployment("clf").spec == before  # exactly as it was
    assert fm.get_model_version("models:/clf@champion").version == 1
    assert seen[("default", None)] >= 1  # the failing arm's requests got the default answer
    phases = [e["phase"] for e in fm.serving.history("clf") if e.get("change") == "rollout"]
    assert phases == ["started", "step", "rolled_back"]


def test_a_slow_challenger_is_rolled_back_on_latency(home: Path) -> None:
    _deploy()

    def slow(server: ModelServer) -> None:
        _sabotage_challenger(server, sleep=0.3, error=False)

    plan = fm.serving.RolloutPlan(
        steps=(25, 100), step_seconds=0.8, min_requests=4, poll_seconds=0.15,
        max_step_seconds=8, latency_slack_ms=50,
    )  # fmt: skip
    result, _ = _under_load(lambda: fm.serving.rollout("clf", "models:/clf/2", plan), slow)
    assert result.state == "rolled_back"
    assert "p99" in result.reason and "above the allowed" in result.reason
    step = result.steps[-1]
    assert step["challenger"]["p99_ms"] > 300 > step["champion"]["p99_ms"]


def test_without_traffic_a_step_cannot_pass(home: Path) -> None:
    _deploy()
    plan = fm.serving.RolloutPlan(
        steps=(50, 100), step_seconds=0.2, min_requests=5, poll_seconds=0.1, max_step_seconds=0.5
    )
    result = fm.serving.rollout("clf", "models:/clf/2", plan)
    assert result.state == "rolled_back"
    assert result.reason.startswith("only 0 challenger requests")
    assert fm.serving.get_deployment("clf").spec["policy"] == "single"


def test_a_manual_rollback_stops_a_running_rollout(home: Path) -> None:
    _deploy()
    plan = fm.serving.RolloutPlan(
        steps=(20, 100), step_seconds=30, min_requests=1, poll_seconds=0.1, max_step_seconds=60
    )

    def rollout_then_rollback() -> Any:
        async def both() -> Any:
            task = asyncio.create_task(
                asyncio.to_thread(fm.serving.rollout, "clf", "models:/clf/2", plan)
            )
            while fm.serving.get_deployment("clf").spec["policy"] != "canary":
                await asyncio.sleep(0.05)
            status = fm.serving.rollout_status("clf")
            assert status is not None and status["state"] == "running"
            with pytest.raises(ConflictError, match="rollout in progress"):
                fm.serving.rollout("clf", "models:/clf/2", plan)
            fm.serving.rollback("clf", reason="pager went off")
            return await task

        return asyncio.run(both())

    result = rollout_then_rollback()
    assert result.state == "aborted" and "changed by someone else" in result.reason
    spec = fm.serving.get_deployment("clf").spec
    assert spec["policy"] == "single" and spec.get("challenger") is None
    status = fm.serving.rollout_status("clf")
    assert status is not None and status["state"] == "rolled_back"
    assert status["reason"] == "pager went off"


def test_bad_plans_and_targets_are_refused_naming_the_problem(home: Path) -> None:
    _deploy()
    with pytest.raises(InvalidArgumentError, match="last rollout step must be 100"):
        fm.serving.RolloutPlan(steps=(5, 50))
    with pytest.raises(InvalidArgumentError, match="must rise"):
        fm.serving.RolloutPlan(steps=(50, 25, 100))
    with pytest.raises(InvalidArgumentError, match="rollout target models:/clf/9"):
        fm.serving.rollout("clf", "models:/clf/9", FAST)
    with pytest.raises(InvalidArgumentError, match="already serves"):
        fm.serving.rollout("clf", "models:/clf@champion", FAST)
    fm.serving.update("clf", log_predictions=False)
    with pytest.raises(InvalidArgumentError, match="prediction log"):
        fm.serving.rollout("clf", "models:/clf/2", FAST)
    with pytest.raises(InvalidArgumentError, match="no rollout in progress"):
        fm.serving.rollback("clf")


def test_evidence_counts_requests_once_and_fallbacks_as_failures() -> None:
    import pyarrow as pa

    from forgeml.serving.prediction_log import log_schema

    rows = [
        # request, row, arm, latency, fallback, shadow, status
        ("a", 0, "champion", 2.0, False, False, 200),
        ("a", 1, "champion", 2.0, False, False, 200),  # a second row of the same request
        ("b", 0, "challenger", 4.0, False, False, 200),
        ("c", 0, "challenger", 9.0, True, False, 200),  # a fallback covered for it
        ("d", 0, "challenger", 1.0, False, False, 503),
        ("a", 0, "challenger", 3.0, False, True, 200),  # a shadow copy: nobody's answer
    ]
    columns = {name: [] for name in log_schema().names}  # type: dict[str, list[Any]]
    for request, row, arm, latency, fallback, shadow, status in rows:
        values = {
            "request_id": request, "row": row, "at": 0.0, "deployment": "d", "arm": arm,
            "model": "m", "version": 1, "inputs": "{}", "features": None, "output": "0",
            "latency_ms": latency, "fallback": fallback, "shadow": shadow, "status": status,
        }  # fmt: skip
        for name, value in values.items():
            columns[name].append(value)
    arms = summarize(pa.table(columns, schema=log_schema()))
    assert arms["champion"] == ArmEvidence(1, 0, 2.0, 2.0)
    challenger = arms["challenger"]
    assert (challenger.requests, challenger.errors) == (3, 2)
    assert challenger.error_rate == pytest.approx(2 / 3)


def test_cli_status_rollout_and_rollback(home: Path) -> None:
    _deploy()
    failed = cli(
        "deployments", "rollout", "clf", "--to", "models:/clf/2", "--steps", "100",
        "--step-seconds", "0.1", "--min-requests", "3", "--max-step-seconds", "0.3",
        "--poll-seconds", "0.1", check=False,
    )  # fmt: skip
    assert failed.returncode == 1, failed.stderr
    assert "rolled_back" in failed.stdout and "only 0 challenger requests" in failed.stdout
    status = cli_json("deployments", "status", "clf")
    assert status["rollout"]["state"] == "rolled_back" and status["spec"]["policy"] == "single"
    assert "rolled_back" in cli("deployments", "status", "clf").stdout
    cli("deployments", "set", "clf", "--policy", "canary", "--challenger", "models:/clf/2",
        "--weight", "20")  # fmt: skip
    out = cli("deployments", "rollback", "clf", "--reason", "not today").stdout
    assert "back to models:/clf@champion" in out
    assert fm.serving.get_deployment("clf").spec["policy"] == "single"
    bad = cli(
        "deployments", "rollout", "clf", "--to", "models:/clf/2", "--steps", "a,b", check=False
    )
    assert bad.returncode != 0 and "--steps" in bad.stderr
