"""Progressive rollouts: a challenger takes 5%, 25%, 50%, then all of a deployment's traffic.

Each step holds until the challenger has answered enough requests and the step's time
has passed, then compares the challenger's live error rate and latency with the
champion's over that step (from the prediction log, so across every server). A
breach rolls the deployment back to exactly the spec it had before the rollout; the
last step passed promotes the challenger (moving the champion's alias when the
deployment follows one). Every step is an event in the deployment's history with the
evidence it was judged on, so "why did this roll back?" has an answer afterwards.

The controller changes the deployment by compare-and-set: if anybody else changes it
meanwhile (``forgeml deployments rollback``, a new ``set``), the rollout stops and
leaves their change alone.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from forgeml import backend, config
from forgeml.errors import ConflictError, ForgeMLError, InvalidArgumentError
from forgeml.serving.rollout_evidence import ArmEvidence, gather
from forgeml.serving.spec import DeploymentSpec

RUNNING, PROMOTED, ROLLED_BACK, ABORTED = "running", "promoted", "rolled_back", "aborted"
_DONE = (PROMOTED, ROLLED_BACK, ABORTED)


@dataclass(frozen=True)
class RolloutPlan:
    """The steps of a rollout and the gates each must pass.

    A step passes when, over its window, the challenger's error rate is at most the
    champion's plus ``max_error_rate_increase`` and its p99 latency at most the
    champion's times ``max_latency_ratio`` plus ``latency_slack_ms`` (the slack keeps a
    1 ms model from failing on 0.4 ms of noise). A step fails early as soon as the
    challenger's errors alone make passing impossible; a step that sees fewer than
    ``min_requests`` challenger requests within ``max_step_seconds`` fails too: no
    evidence is not good evidence.
    """

    steps: tuple[float, ...] = (5.0, 25.0, 50.0, 100.0)
    step_seconds: float = 60.0
    min_requests: int = 50
    max_error_rate_increase: float = 0.01
    max_latency_ratio: float = 1.5
    latency_slack_ms: float = 5.0
    max_step_seconds: float | None = None
    poll_seconds: float = 1.0

    def __post_init__(self) -> None:
        if not self.steps:
            raise InvalidArgumentError("a rollout needs at least one step")
        previous = 0.0
        for weight in self.steps:
            if isinstance(weight, bool) or not isinstance(weight, int | float):
                raise InvalidArgumentError(f"rollout steps are percentages, got {weight!r}")
            if not previous < weight <= 100:
                raise InvalidArgumentError(
                    f"rollout steps must rise within (0, 100], got {list(self.steps)}"
                )
            previous = float(weight)
        if self.steps[-1] != 100:
            raise InvalidArgumentError(
                f"the last rollout step must be 100 (all traffic), got {self.steps[-1]:g}"
            )
        for name in ("step_seconds", "max_latency_ratio", "poll_seconds"):
            if getattr(self, name) <= 0:
                raise InvalidArgumentError(f"{name} must be positive, got {getattr(self, name)}")
        if self.min_requests < 1:
            raise InvalidArgumentError(f"min_requests must be at least 1, got {self.min_requests}")
        if not 0 <= self.max_error_rate_increase <= 1:
            raise InvalidArgumentError(
                f"max_error_rate_increase is a fraction in [0, 1], got "
                f"{self.max_error_rate_increase}"
            )
        if self.latency_slack_ms < 0:
            raise InvalidArgumentError("latency_slack_ms must be >= 0")

    @property
    def step_deadline(self) -> float:
        return self.max_step_seconds or max(10 * self.step_seconds, self.step_seconds + 60)


@dataclass(frozen=True)
class Verdict:
    """How one step was judged, with the figures it was judged on."""

    passed: bool
    reason: str
    challenger: ArmEvidence
    champion: ArmEvidence

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "reason": self.reason,
            "challenger": self.challenger.to_dict(),
            "champion": self.champion.to_dict(),
        }


@dataclass
class RolloutResult:
    deployment: str
    rollout: str
    target: str
    state: str
    reason: str
    steps: list[dict[str, Any]] = field(default_factory=list)


Progress = Callable[[str, dict[str, Any]], None]


def judge(plan: RolloutPlan, challenger: ArmEvidence, champion: ArmEvidence) -> Verdict:
    """Compare the arms; ``champion`` is the baseline (this step's, or the last one seen)."""
    allowed = champion.error_rate + plan.max_error_rate_increase
    if challenger.error_rate > allowed:
        return Verdict(
            False,
            f"challenger error rate {challenger.error_rate:.2%} "
            f"({challenger.errors}/{challenger.requests}) is above the allowed {allowed:.2%} "
            f"(champion {champion.error_rate:.2%} + {plan.max_error_rate_increase:.2%})",
            challenger,
            champion,
        )
    if challenger.p99_ms is not None and champion.p99_ms is not None:
        bound = champion.p99_ms * plan.max_latency_ratio + plan.latency_slack_ms
        if challenger.p99_ms > bound:
            return Verdict(
                False,
                f"challenger p99 {challenger.p99_ms:.1f} ms is above the allowed "
                f"{bound:.1f} ms (champion {champion.p99_ms:.1f} ms x "
                f"{plan.max_latency_ratio:g} + {plan.latency_slack_ms:g} ms)",
                challenger,
                champion,
            )
    return Verdict(
        True,
        f"challenger {challenger.describe()}; champion {champion.describe()}",
        challenger,
        champion,
    )


def rollout(
    name: str,
    to: str,
    plan: RolloutPlan | None = None,
    *,
    reason: str | None = None,
    force: bool = False,
    on_progress: Progress | None = None,
) -> RolloutResult:
    """Move deployment ``name`` to model ``to`` step by step; roll back on a breach.

    Blocks until the rollout ends. Returns how it ended (``promoted``, ``rolled_back``
    or ``aborted`` when someone else changed the deployment meanwhile).
    """
    from forgeml.registry.api import get_model_version
    from forgeml.serving.deployments_api import get_deployment

    plan = plan or RolloutPlan()
    try:
        get_model_version(to)
    except ForgeMLError as exc:
        raise InvalidArgumentError(f"rollout target {to}: {exc}") from None
    record = get_deployment(name)
    spec = DeploymentSpec.from_dict(record.spec, f"deployment {name!r}")
    if not spec.log_predictions:
        raise InvalidArgumentError(
            f"deployment {name!r} does not log predictions; a rollout judges the challenger "
            "by the prediction log (set log_predictions: true)"
        )
    if to == spec.model:
        raise InvalidArgumentError(f"deployment {name!r} already serves {to}")
    last = rollout_status(name)
    if last is not None and last["state"] == RUNNING and not force:
        raise ConflictError(
            f"deployment {name!r} has a rollout in progress (to {last['to']}, started by "
            f"{last['by']}); wait for it, run `forgeml deployments rollback {name}`, or "
            "start with --force"
        )
    previous = record.spec
    if last is not None and last["state"] == RUNNING and last.get("previous"):
        previous = last["previous"]  # the stopped rollout's own starting point, not its canary
    controller = _Controller(name, to, plan, previous, record.revision, on_progress)
    controller.record(
        "started", to=to, champion=spec.model, plan=asdict(plan), previous=previous,
        reason=reason,
    )  # fmt: skip
    return controller.run()


def rollback(name: str, reason: str | None = None) -> dict[str, Any]:
    """Put deployment ``name`` back as it was before its last rollout (or single, if none).

    A controller still running notices the change and stops.
    """
    from forgeml.serving.deployments_api import get_deployment, save

    record = get_deployment(name)
    last = rollout_status(name)
    if last is not None and last.get("previous") and last["state"] == RUNNING:
        previous = DeploymentSpec.from_dict(last["previous"], f"deployment {name!r}")
    else:
        current = DeploymentSpec.from_dict(record.spec, f"deployment {name!r}")
        if current.policy == "single":
            raise InvalidArgumentError(
                f"deployment {name!r} has no rollout in progress and no challenger to take "
                "traffic away from"
            )
        previous = current.with_changes(policy="single", challenger=None, weight=0.0)
    saved = save(previous, reason=reason or "rollback", expected_revision=record.revision)
    if last is not None and last["state"] == RUNNING:
        _add_event(
            name,
            {"phase": ROLLED_BACK, "rollout": last["rollout"], "reason": reason or "manual"},
        )
    return {"deployment": name, "revision": saved.revision, "spec": saved.spec}


def rollout_status(name: str) -> dict[str, Any] | None:
    """The last rollout of ``name``: its state, target, plan and every step's evidence."""
    from forgeml.serving.deployments_api import history

    entries = [e for e in history(name) if e.get("change") == "rollout"]
    if not entries:
        return None
    rollout_id = entries[-1]["rollout"]
    mine = [e for e in entries if e["rollout"] == rollout_id]
    started = next((e for e in mine if e["phase"] == "started"), mine[0])
    # The first ending counts: a manual rollback ends it, the controller's "aborted" follows.
    ended = next((e for e in mine if e["phase"] in _DONE), None)
    steps = [e for e in mine if e["phase"] == "step"]
    return {
        "deployment": name,
        "rollout": rollout_id,
        "state": ended["phase"] if ended is not None else RUNNING,
        "to": started.get("to"),
        "champion": started.get("champion"),
        "by": started["by"],
        "started_at": started["at"],
        "updated_at": mine[-1]["at"],
        "weight": steps[-1]["weight"] if steps else 0,
        "plan": started.get("plan"),
        "previous": started.get("previous"),
        "steps": steps,
        "reason": ended.get("reason") if ended is not None else None,
    }


class _Controller:
    def __init__(
        self,
        name: str,
        to: str,
        plan: RolloutPlan,
        previous: dict[str, Any],
        revision: int,
        on_progress: Progress | None,
    ) -> None:
        self.name = name
        self.to = to
        self.plan = plan
        self.previous = previous
        self.revision = revision
        self.on_progress = on_progress
        self.rollout = uuid.uuid4().hex[:10]
        self.steps: list[dict[str, Any]] = []
        # The champion's figures from the last window that had enough of its traffic:
        # at 100% it has none, and the challenger is held to what it last did.
        self.baseline = ArmEvidence()

    def run(self) -> RolloutResult:
        try:
            for weight in self.plan.steps:
                self._set(policy="canary", challenger=self.to, weight=float(weight))
                self._progress("weight", {"weight": weight})
                verdict = self._watch(weight)
                step = {"weight": weight, **verdict.to_dict()}
                self.steps.append(step)
                self.record("step", **step)
                if not verdict.passed:
                    self._restore(f"rollback: {verdict.reason}")
                    return self._end(ROLLED_BACK, verdict.reason)
            self._promote()
            return self._end(PROMOTED, f"{self.to} passed every step")
        except _ChangedElsewhere as exc:
            return self._end(ABORTED, str(exc))
        except BaseException as exc:  # Ctrl-C or a crash: never leave a half rollout
            self._restore(f"rollback: the rollout stopped ({type(exc).__name__})", quiet=True)
            self._end(ROLLED_BACK, f"the rollout stopped: {type(exc).__name__}: {exc}")
            raise

    def _watch(self, weight: float) -> Verdict:
        plan = self.plan
        started = time.monotonic()
        since = time.time()
        while True:
            time.sleep(plan.poll_seconds)
            self._check_unchanged()
            elapsed = time.monotonic() - started
            arms = gather(self.name, since)
            challenger, champion = arms["challenger"], arms["champion"]
            if champion.requests >= plan.min_requests:
                self.baseline = champion
            self._progress(
                "evidence",
                {"weight": weight, "elapsed": elapsed, **{k: v.to_dict() for k, v in arms.items()}},
            )
            baseline = self.baseline
            # Early failure: errors already seen make the step fail whatever follows.
            floor = max(challenger.requests, plan.min_requests)
            if challenger.errors / floor > baseline.error_rate + plan.max_error_rate_increase:
                return judge(plan, challenger, baseline)
            if challenger.requests >= plan.min_requests and elapsed >= plan.step_seconds:
                return judge(plan, challenger, baseline)
            if elapsed >= plan.step_deadline:
                return Verdict(
                    False,
                    f"only {challenger.requests} challenger requests in {elapsed:.0f} s at "
                    f"{weight:g}% ({plan.min_requests} needed to judge)",
                    challenger,
                    baseline,
                )

    def _promote(self) -> None:
        from forgeml.registry.api import get_model_version, set_alias
        from forgeml.registry.uri import parse_model_uri

        champion = DeploymentSpec.from_dict(self.previous, "previous spec")
        ref, target = parse_model_uri(champion.model), get_model_version(self.to)
        if ref.alias is not None and ref.name == target.model:
            # The deployment follows an alias: move it, so everything else following it
            # (batch jobs, other deployments) gets the promoted version too.
            set_alias(
                ref.name, ref.alias, target.version,
                reason=f"rollout {self.rollout} of deployment {self.name}",
            )  # fmt: skip
            self._set_spec(champion, "promoted: alias moved")
        else:
            promoted = champion.with_changes(model=self.to)
            if promoted.policy != "single" and promoted.challenger == self.to:
                promoted = promoted.with_changes(policy="single", challenger=None, weight=0.0)
            self._set_spec(promoted, "promoted")

    def _set(self, **changes: Any) -> None:
        base = DeploymentSpec.from_dict(self.previous, "previous spec")
        spec = base.with_changes(**changes)
        self._set_spec(spec, f"rollout {self.rollout}: {changes.get('weight', 0):g}%")

    def _set_spec(self, spec: DeploymentSpec, reason: str) -> None:
        from forgeml.serving.deployments_api import save

        self._check_unchanged()
        try:
            saved = save(spec, reason=reason, expected_revision=self.revision)
        except ConflictError as exc:
            raise _ChangedElsewhere(str(exc)) from None
        self.revision = saved.revision

    def _restore(self, reason: str, quiet: bool = False) -> None:
        try:
            self._set_spec(DeploymentSpec.from_dict(self.previous, "previous spec"), reason)
        except _ChangedElsewhere:
            if not quiet:
                raise

    def _check_unchanged(self) -> None:
        revision = backend.deployments().revisions().get(self.name)
        if revision != self.revision:
            raise _ChangedElsewhere(
                f"deployment {self.name!r} was changed by someone else (revision "
                f"{revision}, the rollout wrote {self.revision}); the rollout stops and "
                "leaves that change in place"
            )

    def record(self, phase: str, **detail: Any) -> None:
        _add_event(self.name, {"phase": phase, "rollout": self.rollout, **detail})

    def _end(self, state: str, reason: str) -> RolloutResult:
        self.record(state, reason=reason)
        self._progress(state, {"reason": reason})
        return RolloutResult(self.name, self.rollout, self.to, state, reason, self.steps)

    def _progress(self, kind: str, detail: dict[str, Any]) -> None:
        if self.on_progress is not None:
            self.on_progress(kind, detail)


class _ChangedElsewhere(Exception):
    pass


def _add_event(name: str, payload: dict[str, Any]) -> None:
    backend.events().add(
        "deployment", name, {"change": "rollout", **payload}, config.settings().user
    )
