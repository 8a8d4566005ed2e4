"""fm.tune: Optuna searches recorded as nested runs, pruned, in parallel, best model registered."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import forgeml as fm
import tune_objectives as objectives
from forgeml import backend
from forgeml.errors import ForgeMLError, InvalidArgumentError
from forgeml.pipelines import values
from forgeml.store.records import Run, RunStatus
from forgeml.training.search_space import Choice, Float, Int
from forgeml.training.tune import TuneResult, tune

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SPACE = {"C": Float(1e-4, 10.0, log=True), "max_iter": 300}


def children(result: TuneResult) -> list[Run]:
    return list(fm.search_runs(f"parent_id = '{result.parent_run_id}'", max_results=1000))


def check_nested(result: TuneResult, n_trials: int) -> dict[int, Run]:
    """Every trial is a child run with its params, metric and tags; returns them by number."""
    runs = {int(run.tags["tune.trial"]): run for run in children(result)}
    assert sorted(runs) == list(range(n_trials))
    frame = result.trials.set_index("number")
    for number, run in runs.items():
        assert run.name == f"trial-{number}"
        assert run.tags["tune.state"] == frame.loc[number, "state"]
        assert run.id == frame.loc[number, "run_id"]
        if run.tags["tune.state"] == "complete":
            assert run.status == RunStatus.FINISHED
            assert run.metrics["score"] == pytest.approx(frame.loc[number, "value"])
    return runs


def test_search_finds_the_best_and_registers_its_model(home: Path) -> None:
    X_valid = objectives.cancer()[1]
    result = tune(
        objectives.logistic,
        SPACE,
        n_trials=8,
        seed=1,
        experiment="cancer",
        name="lr-search",
        register="cancer-lr",
        example=X_valid[:5],
        progress=False,
    )
    assert (result.n_complete, result.n_pruned, result.n_failed) == (8, 0, 0)
    frame = result.trials
    assert list(frame.columns) == [
        "number",
        "state",
        "value",
        "params.C",
        "params.max_iter",
        "run_id",
        "seconds",
    ]
    assert result.best_value == frame["value"].max() > 0.9
    assert result.best_trial == int(frame.loc[frame["value"].idxmax(), "number"])
    assert result.best_params == {"max_iter": 300, "C": frame.loc[result.best_trial, "params.C"]}
    assert frame["params.C"].nunique() == 8  # sampled, not repeated

    parent = fm.get_run(result.parent_run_id)
    assert (parent.experiment, parent.name, parent.status) == (
        "cancer",
        "lr-search",
        RunStatus.FINISHED,
    )
    assert parent.params["space.C"] == "Float(0.0001, 10.0, log)"
    assert parent.params["space.max_iter"] == "300"
    assert parent.params["tune.n_trials"] == "8"
    assert parent.metrics["best_value"] == result.best_value
    assert parent.metrics["best_trial"] == result.best_trial
    assert parent.metrics["n_complete"] == 8
    assert parent.tags["tune.best_run_id"] == result.best_run_id

    runs = check_nested(result, 8)
    best = runs[result.best_trial]
    assert best.id == result.best_run_id
    assert float(best.params["C"]) == result.best_params["C"]
    assert best.params["max_iter"] == "300"

    version = result.model_version
    assert version is not None and (version.model, version.version) == ("cancer-lr", 1)
    assert version.run_id == result.best_run_id
    loaded = fm.load_model("models:/cancer-lr/1")
    trial_model = values.load({"kind": "object", "digest": best.tags["tune.model_digest"]})
    np.testing.assert_array_equal(loaded.predict(X_valid), trial_model.predict(X_valid))
    assert loaded.score(X_valid, objectives.cancer()[3]) == result.best_value
    # every trial stored its model, only the best one is registered
    assert all("tune.model_digest" in run.tags for run in runs.values())
    (model,) = fm.list_models()
    assert (model.name, model.latest_version) == ("cancer-lr", 1)


def test_median_pruner_stops_hopeless_trials(home: Path) -> None:
    result = tune(
        objectives.learning_curve,
        {"quality": Float(0.0, 1.0)},
        n_trials=12,
        seed=3,
        name="curves",
        progress=False,
    )
    assert result.n_pruned >= 1
    assert result.n_complete + result.n_pruned == 12 and result.n_failed == 0
    runs = check_nested(result, 12)
    for run in runs.values():
        history = fm.get_metric_history(run.id, "score")
        if run.tags["tune.state"] == "pruned":
            assert run.status == RunStatus.FINISHED  # pruned is not a failure
            assert len(history) < 10  # stopped early
            assert "score" in run.metrics
        else:
            assert len(history) == 11  # ten reports, then the final score
    pruned = result.trials[result.trials["state"] == "pruned"]
    complete = result.trials[result.trials["state"] == "complete"]
    assert pruned["params.quality"].max() < complete["value"].max()
    assert fm.get_run(result.parent_run_id).metrics["n_pruned"] == result.n_pruned


def test_a_failing_trial_is_recorded_and_the_study_goes_on(home: Path) -> None:
    result = tune(
        objectives.flaky, {"x": Int(0, 100)}, n_trials=4, pruner=None, seed=0, progress=False
    )
    assert (result.n_complete, result.n_failed) == (3, 1)
    assert result.best_trial != 1
    failed = check_nested(result, 4)[1]
    assert failed.status == RunStatus.FAILED
    assert failed.tags["tune.state"] == "failed"
    assert "the data went missing" in (failed.error or "")
    assert fm.get_run(result.parent_run_id).metrics["n_failed"] == 1


def test_a_study_where_every_trial_fails_raises(home: Path) -> None:
    with pytest.raises(
        ForgeMLError, match=r"no trial of the study completed .* ValueError: no good \(run \w{8}"
    ):
        tune(objectives.always_fails, {"x": Int(0, 3)}, n_trials=2, progress=False)
    (parent,) = fm.search_runs("parent_id IS NULL")
    assert parent.status == RunStatus.FAILED


def test_register_needs_a_model_from_the_objective(home: Path) -> None:
    with pytest.raises(ForgeMLError, match="no trial"):
        tune(objectives.no_model, {"x": Float(0, 1)}, n_trials=1, register="m", progress=False)
    (run,) = fm.search_runs("parent_id IS NOT NULL")
    assert "must return (score, model)" in (run.error or "")


def test_timeout_stops_starting_trials(home: Path) -> None:
    result = tune(objectives.slow, {"x": Float(0, 1)}, n_trials=100, timeout=0.5, progress=False)
    assert 1 <= result.n_complete < 100
    assert len(children(result)) == result.n_complete


def test_uses_the_active_run_as_the_study_run(home: Path) -> None:
    with fm.start_run("outer", "study") as outer:
        result = tune(
            objectives.no_model,
            {"x": Choice([1, 2, 3])},
            n_trials=3,
            direction="minimize",
            progress=False,
        )
        assert fm.active_run() is outer
    assert result.parent_run_id == outer.id
    assert result.best_value == result.trials["value"].min()
    assert result.best_params == {"x": int(result.best_value)}
    assert {run.experiment for run in children(result)} == {"outer"}


def test_parallel_trials_in_local_processes(home: Path) -> None:
    result = tune(
        objectives.logistic,
        SPACE,
        n_trials=4,
        parallel=2,
        seed=0,
        name="par",
        register="par-lr",
        progress=False,
    )
    assert (result.n_complete, result.n_failed) == (4, 0), result.trials
    runs = check_nested(result, 4)
    assert all(run.host for run in runs.values())
    assert fm.get_run(result.parent_run_id).params["tune.executor"] == "processes"
    assert result.model_version is not None
    assert result.model_version.run_id == result.best_run_id


def test_progress_shows_trials_and_the_best_value(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = tune(objectives.no_model, {"x": Choice([2, 3])}, n_trials=3, progress=True)
    err = capsys.readouterr().err
    assert f"trial 3/3, best {result.best_value:g}" in err


def test_parallel_needs_an_importable_objective(home: Path) -> None:
    def local(params: dict[str, float], trial: object) -> float:
        return params["x"]

    with pytest.raises(InvalidArgumentError, match="define it at the top level of a module"):
        tune(local, {"x": Float(0, 1)}, n_trials=2, parallel=2, progress=False)
    # in one process it is fine
    assert tune(local, {"x": Float(0, 1)}, n_trials=2, progress=False).n_complete == 2


# -- Ray -------------------------------------------------------------------------------


def test_parallel_trials_as_ray_tasks(
    home: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    request.getfixturevalue("ray_runtime")
    monkeypatch.setenv("FORGEML_EXECUTOR", "ray")
    backend.reset()
    import optuna

    result = tune(
        objectives.odd_trials_are_bad,
        {"scale": 1.0, "unused": Int(0, 9)},
        n_trials=8,
        parallel=2,
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2),
        seed=0,
        name="on-ray",
        progress=False,
    )
    assert (result.n_complete + result.n_pruned, result.n_failed) == (8, 0), result.trials
    runs = check_nested(result, 8)
    assert fm.get_run(result.parent_run_id).params["tune.executor"] == "ray"
    # the pruner in each Ray worker saw the trials other workers reported to the journal
    assert result.n_pruned >= 1
    assert all(n % 2 == 1 for n, run in runs.items() if run.tags["tune.state"] == "pruned")
    assert result.best_trial % 2 == 0
    assert all("ray" in (run.command or "") for run in runs.values())  # run in Ray workers


# -- arguments ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Float(1.0, 0.5), r"'low' parameter of Float \(1.0\) must not be greater"),
        (lambda: Float(0.0, 1.0, log=True), "'low' parameter of Float must be greater than 0"),
        (lambda: Float("a", 1.0), "'low' parameter of Float must be a finite number"),
        (lambda: Int(0, 10, step=0), "'step' parameter of Int must be at least 1"),
        (lambda: Int(0.5, 10), "'low' parameter of Int must be a whole number"),
        (lambda: Choice([]), "'options' parameter of Choice must not be empty"),
        (lambda: Choice("abc"), "must be a list or tuple"),
        (lambda: Choice([1, object()]), "holds a object"),
        (lambda: Choice([1, 1]), "repeats a value"),
    ],
)
def test_bad_dimensions_name_the_argument(build: object, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        build()  # type: ignore[operator]


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"C": [0.1, 1.0]}, "search space entry 'C': list"),
        ({"C": Float(0, 1), "model": object()}, "search space entry 'model': object"),
        ({"alpha": float("nan")}, "search space entry 'alpha': constant nan is not finite"),
        ({}, "space must be a non-empty dict"),
    ],
)
def test_bad_space_entries_name_the_parameter(home: Path, space: dict, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        tune(objectives.no_model, space, n_trials=1, progress=False)
    assert list(fm.search_runs("")) == []  # refused before any run was opened


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n_trials": 0}, "n_trials must be a whole number >= 1"),
        ({"n_trials": 2, "parallel": 0}, "parallel must be"),
        ({"n_trials": 2, "direction": "up"}, "direction must be 'maximize' or 'minimize'"),
        ({"n_trials": 2, "pruner": "bogus"}, "pruner must be one of 'median'"),
        ({"n_trials": 2, "timeout": -1}, "timeout must be"),
    ],
)
def test_bad_arguments(home: Path, options: dict, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        tune(objectives.no_model, {"x": Float(0, 1)}, progress=False, **options)


def test_a_missing_optuna_says_how_to_install_it(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(ForgeMLError, match=r"pip install 'forgeml\[tune\]'"):
        tune(objectives.no_model, {"x": Float(0, 1)}, n_trials=1, progress=False)


def test_importing_tune_loads_no_heavy_library() -> None:
    code = (
        "import sys, forgeml.training.tune, forgeml.training.search_space\n"
        "heavy = {'optuna', 'ray', 'sklearn', 'pandas'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
