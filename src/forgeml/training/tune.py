"""Hyperparameter search on Optuna: ``fm.tune(objective, space, n_trials=...)``.

    def objective(params, trial):
        model = LogisticRegression(C=params["C"]).fit(X_train, y_train)
        return model.score(X_valid, y_valid), model

    result = fm.tune(objective, {"C": Float(1e-3, 1e2, log=True)}, n_trials=20,
                     parallel=4, register="churn", example=X_valid[:5])

The study is a run and every trial a child run of it, with its params, its score and
the history of the values it reported, so a search is browsed like any other work.
Trials are sampled in the calling process (one sampler sees every result) and run
there, in local worker processes, or as Ray tasks when ``FORGEML_EXECUTOR`` is Ray.
The Optuna study lives in a journal file under the forgeml home that every worker
process can open, so the pruner compares a trial with its siblings wherever they run.

Models cross process boundaries by content: a worker stores its trial's model in the
artifact store and sends back the small record, and only the best one is registered.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
import pickle
import re
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from forgeml.errors import ForgeMLError, InvalidArgumentError
from forgeml.training.search_space import check_space, describe, distributions

if TYPE_CHECKING:
    import pandas as pd

    from forgeml.tracking.active_run import ActiveRun

COMPLETE, PRUNED, FAILED = "complete", "pruned", "failed"
_PRUNERS = ("median", "hyperband", "successive_halving")


class TrialPruned(Exception):
    """Raised by :meth:`Trial.report` when the pruner stops a trial; let it propagate.

    It is not an error: the trial is recorded as pruned and the study goes on.
    """


class Trial:
    """What the objective gets besides its params: a way to report progress and be pruned."""

    def __init__(
        self, number: int, params: dict[str, Any], run: ActiveRun, trial: Any, metric: str
    ):
        self.number = number
        self.params = params
        self._run = run
        self._trial = trial
        self._metric = metric

    @property
    def run_id(self) -> str:
        """The id of this trial's run, to log more to it or link artifacts to it."""
        return self._run.id

    def report(self, value: float, step: int) -> None:
        """Record an intermediate value (e.g. the score after ``step`` epochs).

        The value goes into the trial run's history of the study's metric and to the
        pruner; when the pruner judges the trial hopeless, :class:`TrialPruned` is raised
        so the objective stops spending time on it.
        """
        number = float(value)
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise InvalidArgumentError(f"step must be a whole number >= 0, got {step!r}")
        self._run.log_metric(self._metric, number, step)
        if not math.isfinite(number):
            return  # Optuna refuses NaN/inf intermediate values; the history keeps it
        self._trial.report(number, step)
        if self._trial.should_prune():
            raise TrialPruned(f"trial {self.number} pruned at step {step} (value {number:.6g})")


@dataclass(frozen=True)
class TuneResult:
    """The outcome of a study; ``trials`` has one row per trial in the order they started."""

    best_params: dict[str, Any]
    best_value: float
    best_trial: int
    best_run_id: str
    parent_run_id: str
    model_version: Any  # the registered ModelVersion, or None without register=
    n_complete: int
    n_pruned: int
    n_failed: int
    trials: pd.DataFrame = field(repr=False)


# -- what crosses to a worker and back --------------------------------------------------


@dataclass(frozen=True)
class _Spec:
    """Everything one trial needs, wherever it runs: small, and picklable without the user's
    module (the objective travels as bytes and is unpickled after sys.path is set)."""

    objective: bytes
    number: int
    trial_id: int
    params: dict[str, Any]
    study: str
    storage_path: str
    pruner: bytes
    metric: str
    register: bool
    parent_id: str
    parent_name: str
    experiment: str
    env: dict[str, str]
    cwd: str
    python_path: list[str]


@dataclass(frozen=True)
class _Outcome:
    number: int
    state: str
    value: float | None
    run_id: str | None
    seconds: float
    error: str | None = None
    model: dict[str, Any] | None = None


# -- the public verb --------------------------------------------------------------------


def tune(
    objective: Callable[..., Any],
    space: Mapping[str, Any],
    *,
    n_trials: int,
    parallel: int = 1,
    direction: str = "maximize",
    metric: str = "score",
    pruner: str | Any | None = "median",
    seed: int | None = None,
    timeout: float | None = None,
    experiment: str | None = None,
    name: str | None = None,
    register: str | None = None,
    example: Any = None,
    progress: bool | None = None,
) -> TuneResult:
    """Search ``space`` for the params that make ``objective(params, trial)`` best.

    The objective returns the score, or ``(score, model)``; with ``register=NAME`` it
    must return the model too, and the best trial's model becomes the next version of
    ``NAME`` (with ``example`` for its signature). ``pruner`` is ``"median"``,
    ``"hyperband"``, ``"successive_halving"``, an Optuna pruner, or None. ``parallel``
    trials run at once: in local processes, or as Ray tasks under a Ray executor; then
    the objective must be a module-level function that worker processes can import.
    ``timeout`` (seconds) stops starting new trials; running ones finish. A failing trial
    is recorded with its error and the study goes on; only if every trial fails does
    ``tune`` raise.
    """
    _check_arguments(objective, n_trials, parallel, direction, metric, seed, timeout, register)
    optuna = _import_optuna()
    space = check_space(space)
    search = distributions(space)
    pruner_object = _make_pruner(optuna, pruner)
    from forgeml import config

    settings = config.settings()
    mode = "inline"
    if parallel > 1:
        mode = "ray" if settings.executor.startswith("ray") else "processes"
    objective_bytes = _serialize_objective(objective, mode)
    study_name = name or str(getattr(objective, "__name__", "tune"))
    show = sys.stderr.isatty() if progress is None else progress

    with _parent_run(experiment, study_name) as parent:
        from forgeml.pipelines.worker import settings_env

        # The key names a file: the study's name, made safe, and a suffix of its own.
        key = f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', study_name)[:80]}-{uuid.uuid4().hex[:8]}"
        storage_path = settings.home / "tune" / f"{key}.log"
        storage_path.parent.mkdir(parents=True, exist_ok=True)
        parent.log_params(
            {
                **{f"space.{k}": describe(v) for k, v in space.items()},
                "tune.n_trials": n_trials,
                "tune.parallel": parallel,
                "tune.direction": direction,
                "tune.metric": metric,
                "tune.pruner": _pruner_label(pruner),
                "tune.seed": seed,
                "tune.sampler": "tpe",
                "tune.executor": mode if mode != "ray" else settings.executor,
            }
        )
        parent.set_tags({"tune.study": key, "tune.storage": str(storage_path)})
        # Trials in other processes insert child runs: the parent's row must exist first
        # (the tracking writer buffers it otherwise).
        from forgeml.tracking.fluent import flush

        flush()
        storage = _storage(str(storage_path))
        with _quiet_optuna():
            study = optuna.create_study(
                storage=storage,
                sampler=optuna.samplers.TPESampler(seed=seed, constant_liar=parallel > 1),
                pruner=pruner_object,
                study_name=key,
                direction=direction,
            )
        template = _Spec(
            objective=objective_bytes,
            number=-1,
            trial_id=-1,
            params={},
            study=key,
            storage_path=str(storage_path),
            pruner=pickle.dumps(pruner_object),
            metric=metric,
            register=register is not None,
            parent_id=parent.id,
            parent_name=parent.name,
            experiment=parent.experiment,
            env=settings_env(),
            cwd=os.getcwd(),
            python_path=list(sys.path),
        )
        parallel = min(parallel, n_trials)  # no idle workers to start
        runner = _make_runner(mode, parallel, objective, parent)
        bar = _Bar(n_trials, direction) if show else None
        try:
            outcomes, params_of = _drive(
                study, runner, template, search, space, n_trials, parallel, timeout, bar
            )
        finally:
            runner.close()
            if bar is not None:
                bar.close()
        return _finish(parent, outcomes, params_of, direction, register, example)


# -- driving the study ------------------------------------------------------------------


def _drive(
    study: Any,
    runner: _Runner,
    template: _Spec,
    search: dict[str, Any],
    space: dict[str, Any],
    n_trials: int,
    parallel: int,
    timeout: float | None,
    bar: _Bar | None,
) -> tuple[list[_Outcome], dict[int, dict[str, Any]]]:
    """Ask, run, tell: at most ``parallel`` trials in flight, sampled as slots free up."""
    from dataclasses import replace

    from optuna.trial import TrialState

    deadline = time.monotonic() + timeout if timeout is not None else None
    outcomes: list[_Outcome] = []
    params_of: dict[int, dict[str, Any]] = {}
    asked = 0
    in_flight = 0
    with _quiet_optuna():
        while True:
            while (
                asked < n_trials
                and in_flight < parallel
                and (deadline is None or time.monotonic() < deadline)
            ):
                trial = study.ask(search)
                sampled = trial.params
                params = {k: sampled.get(k, v) for k, v in space.items()}
                params_of[trial.number] = params
                # Optuna keeps a trial's storage id private; workers need it to join the trial.
                trial_id = trial._trial_id
                spec = replace(template, number=trial.number, trial_id=trial_id, params=params)
                runner.submit(spec, trial)
                asked += 1
                in_flight += 1
            if in_flight == 0:
                break
            for outcome in runner.wait():
                in_flight -= 1
                if outcome.state == COMPLETE:
                    study.tell(outcome.number, outcome.value)
                elif outcome.state == PRUNED:
                    study.tell(outcome.number, state=TrialState.PRUNED)
                else:
                    study.tell(outcome.number, state=TrialState.FAIL)
                outcomes.append(outcome)
                if bar is not None:
                    bar.advance(outcome)
    outcomes.sort(key=lambda o: o.number)
    return outcomes, params_of


def _finish(
    parent: ActiveRun,
    outcomes: list[_Outcome],
    params_of: dict[int, dict[str, Any]],
    direction: str,
    register: str | None,
    example: Any,
) -> TuneResult:
    import pandas as pd

    complete = [o for o in outcomes if o.state == COMPLETE]
    counts = {s: sum(o.state == s for o in outcomes) for s in (COMPLETE, PRUNED, FAILED)}
    parent.log_metrics(
        {"n_complete": counts[COMPLETE], "n_pruned": counts[PRUNED], "n_failed": counts[FAILED]}
    )
    rows = []
    for o in outcomes:
        row: dict[str, Any] = {"number": o.number, "state": o.state, "value": o.value}
        row.update({f"params.{k}": v for k, v in params_of.get(o.number, {}).items()})
        row.update({"run_id": o.run_id, "seconds": o.seconds})
        rows.append(row)
    frame = pd.DataFrame.from_records(rows)
    if not complete:
        failed = [(o, o.error) for o in outcomes if o.error]
        detail = ""
        if failed:
            first, error = failed[0]
            detail = f"; trial {first.number} failed with {error.splitlines()[0]}"
            if first.run_id:
                detail += f" (run {first.run_id[:8]} has the traceback)"
            else:
                detail += f":\n{error}"
        raise ForgeMLError(
            f"no trial of the study completed ({counts[PRUNED]} pruned, {counts[FAILED]} "
            f"failed){detail}"
        )
    pick = max if direction == "maximize" else min
    best = pick(complete, key=lambda o: o.value if o.value is not None else math.nan)
    assert best.value is not None and best.run_id is not None
    parent.log_metrics({"best_value": best.value, "best_trial": best.number})
    parent.set_tags({"tune.best_run_id": best.run_id})
    version = None
    if register is not None:
        from forgeml.pipelines import values
        from forgeml.registry.api import log_model

        if best.model is None:  # pragma: no cover - a complete trial always stored one
            raise ForgeMLError(f"trial {best.number} completed without a stored model")
        model = values.load(best.model)
        version = log_model(model, register, run_id=best.run_id, example=example)
        parent.set_tags({"tune.model": f"{register}/{version.version}"})
    return TuneResult(
        best_params=dict(params_of[best.number]),
        best_value=best.value,
        best_trial=best.number,
        best_run_id=best.run_id,
        parent_run_id=parent.id,
        model_version=version,
        n_complete=counts[COMPLETE],
        n_pruned=counts[PRUNED],
        n_failed=counts[FAILED],
        trials=frame,
    )


# -- one trial, in whatever process runs it ---------------------------------------------


def _run_trial(
    objective: Callable[..., Any], spec: _Spec, trial: Any, parent: ActiveRun
) -> _Outcome:
    """Run the objective in a child run of ``parent``; never raises for the objective's sake."""
    from forgeml.pipelines import values
    from forgeml.store.records import RunStatus
    from forgeml.tracking.fluent import start_run

    started = time.monotonic()
    state, value, error, model = FAILED, None, None, None
    tags = {"tune.study": spec.study, "tune.trial": spec.number}
    with start_run(spec.experiment, f"trial-{spec.number}", tags=tags, parent=parent) as run:
        run.log_params(spec.params)
        try:
            handle = Trial(spec.number, dict(spec.params), run, trial, spec.metric)
            result = objective(dict(spec.params), handle)
            value, produced = _split_result(result, spec.register)
            if spec.register:
                model = values.store(produced)
                run.set_tags({"tune.model_digest": model["digest"]})
            run.log_metric(spec.metric, value)
            state = COMPLETE
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            if _is_pruned(exc):
                state = PRUNED
            else:
                error = _error_text(exc)
        run.set_tags({"tune.state": state})
        if error is not None:
            run.end(RunStatus.FAILED, error)
    return _Outcome(spec.number, state, value, run.id, time.monotonic() - started, error, model)


def _split_result(result: Any, register: bool) -> tuple[float, Any]:
    model = None
    if isinstance(result, tuple):
        if len(result) != 2:
            raise InvalidArgumentError(
                f"the objective returned a tuple of {len(result)} values; "
                "return the score, or (score, model)"
            )
        result, model = result
    try:
        value = float(result)
    except (TypeError, ValueError):
        raise InvalidArgumentError(
            f"the objective returned {type(result).__name__} {result!r:.60}; "
            "return the score as a number, or (score, model)"
        ) from None
    if not math.isfinite(value):
        raise InvalidArgumentError(f"the objective returned a score of {value}")
    if register and model is None:
        raise InvalidArgumentError(
            "register= needs a model: the objective must return (score, model)"
        )
    return value, model


def _is_pruned(exc: BaseException) -> bool:
    if isinstance(exc, TrialPruned):
        return True
    import optuna

    return isinstance(exc, optuna.TrialPruned)


def _error_text(exc: BaseException) -> str:
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return f"{type(exc).__name__}: {exc}\n\n{''.join(lines[-12:])}".strip()


def _worker_trial(spec: _Spec) -> _Outcome:
    """The entry point in a worker process (local or Ray): join the study, run one trial."""
    started = time.monotonic()
    try:
        _settle(spec)
        import optuna

        from forgeml.tracking.active_run import ActiveRun
        from forgeml.tracking.fluent import session

        storage = _storage(spec.storage_path)
        study = optuna.load_study(
            study_name=spec.study,
            storage=storage,
            sampler=optuna.samplers.RandomSampler(),  # params were sampled by the driver
            pruner=pickle.loads(spec.pruner),
        )
        trial = optuna.trial.Trial(study, spec.trial_id)
        objective = pickle.loads(spec.objective)  # after _settle: its module can import
        # A handle on the study's run, which lives in the driver: only its id and
        # experiment are used, to make this trial's run its child.
        parent = ActiveRun(session(), spec.parent_id, spec.experiment, spec.parent_name, None)
        return _run_trial(objective, spec, trial, parent)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        seconds = time.monotonic() - started
        return _Outcome(spec.number, FAILED, None, None, seconds, _error_text(exc))


def _settle(spec: _Spec) -> None:
    """Take the driver's settings, working directory and import path in a worker process."""
    from forgeml.pipelines.worker import settle

    settle(spec.env, spec.cwd, spec.python_path)


# -- where trials run -------------------------------------------------------------------


class _Runner:
    def submit(self, spec: _Spec, trial: Any) -> None:
        raise NotImplementedError

    def wait(self) -> list[_Outcome]:
        """Block until at least one trial is done; return every finished one."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class _Inline(_Runner):
    """parallel=1: the trial runs here, as a child of the study's run, with no pickling."""

    def __init__(self, objective: Callable[..., Any], parent: ActiveRun) -> None:
        self.objective = objective
        self.parent = parent
        self.done: list[_Outcome] = []

    def submit(self, spec: _Spec, trial: Any) -> None:
        started = time.monotonic()
        try:
            self.done.append(_run_trial(self.objective, spec, trial, self.parent))
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # tracking itself failed: the trial failed
            seconds = time.monotonic() - started
            self.done.append(_Outcome(spec.number, FAILED, None, None, seconds, _error_text(exc)))

    def wait(self) -> list[_Outcome]:
        done, self.done = self.done, []
        return done


class _Processes(_Runner):
    """Local worker processes, started fresh (spawn): no inherited threads or connections."""

    def __init__(self, parallel: int) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.pool = ProcessPoolExecutor(parallel, mp_context=multiprocessing.get_context("spawn"))
        self.pending: dict[Any, _Spec] = {}

    def submit(self, spec: _Spec, trial: Any) -> None:
        self.pending[self.pool.submit(_worker_trial, spec)] = spec

    def wait(self) -> list[_Outcome]:
        from concurrent.futures import FIRST_COMPLETED, wait as wait_futures

        ready, _ = wait_futures(list(self.pending), return_when=FIRST_COMPLETED)
        outcomes = []
        for future in ready:
            spec = self.pending.pop(future)
            try:
                outcomes.append(future.result())
            except Exception as exc:  # the worker process died
                outcomes.append(
                    _Outcome(spec.number, FAILED, None, None, 0.0, f"worker process lost: {exc}")
                )
        return outcomes

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class _Ray(_Runner):
    """Ray tasks of one CPU each, on the runtime the Ray executor would use."""

    def __init__(self, address: str) -> None:
        from forgeml.pipelines.ray_executor import connect_ray

        ray = connect_ray(address, "parallel trials with FORGEML_EXECUTOR=ray")
        self.ray = ray
        self.remote = ray.remote(_worker_trial).options(num_cpus=1, max_retries=0)
        self.pending: dict[Any, _Spec] = {}

    def submit(self, spec: _Spec, trial: Any) -> None:
        self.pending[self.remote.remote(spec)] = spec

    def wait(self) -> list[_Outcome]:
        ready, _ = self.ray.wait(list(self.pending), num_returns=1)
        more, _ = self.ray.wait(list(self.pending), num_returns=len(self.pending), timeout=0)
        outcomes = []
        for ref in {*ready, *more}:
            spec = self.pending.pop(ref)
            try:
                outcomes.append(self.ray.get(ref))
            except Exception as exc:  # the worker died, or Ray could not run the task
                outcomes.append(
                    _Outcome(spec.number, FAILED, None, None, 0.0, f"Ray could not run it: {exc}")
                )
        return outcomes

    def close(self) -> None:
        for ref in self.pending:
            self.ray.cancel(ref, force=True)
        self.pending.clear()


def _make_runner(
    mode: str, parallel: int, objective: Callable[..., Any], parent: ActiveRun
) -> _Runner:
    if mode == "inline":
        return _Inline(objective, parent)
    if mode == "processes":
        return _Processes(parallel)  # never more than n_trials: see tune()
    from forgeml import config

    return _Ray(config.settings().executor)


# -- helpers ----------------------------------------------------------------------------


def _import_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise ForgeMLError(
            "fm.tune needs Optuna, which is not installed: pip install 'forgeml[tune]'"
        ) from None
    return optuna


def _storage(path: str) -> Any:
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    return JournalStorage(JournalFileBackend(path))


def _check_arguments(
    objective: Any,
    n_trials: Any,
    parallel: Any,
    direction: Any,
    metric: Any,
    seed: Any,
    timeout: Any,
    register: Any,
) -> None:
    if not callable(objective):
        raise InvalidArgumentError(f"objective must be a function, got {objective!r:.60}")
    for label, value in (("n_trials", n_trials), ("parallel", parallel)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidArgumentError(f"{label} must be a whole number >= 1, got {value!r}")
    if direction not in ("maximize", "minimize"):
        raise InvalidArgumentError(f"direction must be 'maximize' or 'minimize', got {direction!r}")
    if not isinstance(metric, str) or not metric.strip():
        raise InvalidArgumentError(f"metric must be a non-empty string, got {metric!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise InvalidArgumentError(f"seed must be a whole number or None, got {seed!r}")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0
    ):
        raise InvalidArgumentError(f"timeout must be a number of seconds > 0, got {timeout!r}")
    if register is not None and (not isinstance(register, str) or not register.strip()):
        raise InvalidArgumentError(f"register must be a model name, got {register!r}")


def _make_pruner(optuna: Any, pruner: Any) -> Any:
    if pruner is None:
        return optuna.pruners.NopPruner()
    if pruner == "median":
        return optuna.pruners.MedianPruner()
    if pruner == "hyperband":
        return optuna.pruners.HyperbandPruner()
    if pruner == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    if isinstance(pruner, optuna.pruners.BasePruner):
        return pruner
    raise InvalidArgumentError(
        f"pruner must be one of {', '.join(map(repr, _PRUNERS))}, an Optuna pruner or None, "
        f"got {pruner!r}"
    )


def _pruner_label(pruner: Any) -> str:
    if pruner is None or isinstance(pruner, str):
        return str(pruner)
    return type(pruner).__name__


def _serialize_objective(objective: Callable[..., Any], mode: str) -> bytes:
    """The objective as bytes for the workers; refused early if they could not import it."""
    if mode == "inline":
        return b""  # called in this process, never pickled
    if not _importable(objective):
        raise InvalidArgumentError(
            f"parallel trials run in other processes, which import the objective by name, "
            f"but {getattr(objective, '__qualname__', objective)!r} cannot be imported from "
            f"{getattr(objective, '__module__', '?')!r}: define it at the top level of a "
            "module (not inside a function, not a lambda), or use parallel=1"
        )
    if mode == "ray":
        import ray

        ray_module: Any = ray
        return bytes(ray_module.cloudpickle.dumps(objective))
    return pickle.dumps(objective)


def _importable(objective: Any) -> bool:
    module_name = getattr(objective, "__module__", None)
    qualname = getattr(objective, "__qualname__", None)
    if not module_name or not qualname or "<" in qualname:
        return False
    if module_name == "__main__":
        return bool(getattr(sys.modules.get("__main__"), "__file__", None))
    try:
        found: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError):
        return False
    return found is objective


@contextlib.contextmanager
def _parent_run(experiment: str | None, name: str) -> Iterator[ActiveRun]:
    """The active run when there is one (it stays open), else a new run for the study."""
    from forgeml.tracking.fluent import active_run, start_run

    current = active_run()
    if current is not None:
        yield current
        return
    with start_run(experiment, name, parent=None) as run:
        yield run


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna logs a line per trial; the runs and the progress bar already say it."""
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)


class _Bar:
    """``trial i/N, best <value>`` on stderr while the study runs."""

    def __init__(self, total: int, direction: str) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.total = total
        self.done = 0
        self.best: float | None = None
        self.better = max if direction == "maximize" else min
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
        )
        self.task = self.progress.add_task(self._text(), total=total)
        self.progress.start()

    def _text(self) -> str:
        best = "-" if self.best is None else f"{self.best:.6g}"
        return f"trial {self.done}/{self.total}, best {best}"

    def advance(self, outcome: _Outcome) -> None:
        self.done += 1
        if outcome.state == COMPLETE and outcome.value is not None:
            self.best = (
                outcome.value if self.best is None else self.better(self.best, outcome.value)
            )
        self.progress.update(self.task, completed=self.done, description=self._text())

    def close(self) -> None:
        self.progress.stop()
