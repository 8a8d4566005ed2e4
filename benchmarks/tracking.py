"""Tracking benchmark: forgeml and MLflow side by side, same workloads, same machine.

    .venv/bin/python benchmarks/tracking.py            # the full benchmark (a few minutes)
    .venv/bin/python benchmarks/tracking.py --quick    # a smoke test; writes no results

The full run creates ``benchmarks/.venv-mlflow`` (MLflow and scikit-learn in their own
virtualenv) if it is missing, then runs every workload once per tool, each in a fresh
subprocess against a fresh SQLite store in a temporary directory, so neither tool pays
for the other's imports or state. The combined figures are printed and written to
``benchmarks/results/tracking.json`` and ``benchmarks/results/tracking.md``.

The same file is the worker: ``--tool forgeml|mlflow --workload NAME --json`` runs one
workload in the current interpreter and prints its figures as JSON. This module imports
only the standard library at the top, because the worker also runs under MLflow's
virtualenv, where forgeml is not installed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "benchmarks"
RESULTS_DIR = BENCH_DIR / "results"
MLFLOW_VENV = BENCH_DIR / ".venv-mlflow"
FORGEML_VENV = ROOT / ".venv"
TOOLS = ("forgeml", "mlflow")
WORKLOADS = ("runs", "log_metric", "log_batch", "history", "search", "model")
SEARCH_FILTER = "metrics.auc > 0.9 and params.model = 'gbm'"
MODEL_NAME = "bench-gbm"
WORKER_TIMEOUT_S = 420

# MLflow 3 reports usage over the network by default, and GitPython warns on import
# where no git executable is found; neither is part of what is measured.
MLFLOW_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "GIT_PYTHON_REFRESH": "quiet",
}


@dataclass(frozen=True)
class Sizes:
    """How much work each workload does for one tool.

    MLflow writes every call in its own SQLite transaction, so its counts are smaller:
    large enough for a stable rate, small enough to keep the whole benchmark bounded.
    """

    runs: int
    per_call: int
    batch_keys: int
    batch_steps: int
    history_steps: int
    search_runs: int
    search_api_runs: int
    search_queries: int
    model_reps: int


SIZES: dict[str, Sizes] = {
    "forgeml": Sizes(
        runs=1_000,
        per_call=100_000,
        batch_keys=100,
        batch_steps=1_000,
        history_steps=10_000,
        search_runs=10_000,
        search_api_runs=10_000,
        search_queries=50,
        model_reps=5,
    ),
    "mlflow": Sizes(
        runs=200,
        per_call=500,
        batch_keys=100,
        batch_steps=500,
        history_steps=10_000,
        search_runs=10_000,
        search_api_runs=1_000,
        search_queries=50,
        model_reps=5,
    ),
}

QUICK_SIZES: dict[str, Sizes] = {
    "forgeml": Sizes(50, 2_000, 10, 50, 1_000, 500, 500, 5, 1),
    "mlflow": Sizes(20, 50, 10, 50, 1_000, 500, 100, 5, 1),
}

MLFLOW_BATCH_LIMIT = 1_000  # MLflow's SQLAlchemy store takes at most 1,000 metrics per log_batch


# ---------------------------------------------------------------------------------------
# Small shared helpers (run in both interpreters).


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile: always an observed value, so p95 is a real query's time."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class SearchRow:
    """One run of the search data set; both tools store exactly the same rows."""

    model: str
    max_depth: int
    learning_rate: float
    auc: float
    loss: float


def search_dataset(count: int) -> list[SearchRow]:
    """Seeded rows, so both tools must return the same 100 runs for the same query."""
    rng = random.Random(20_240_601)
    return [
        SearchRow(
            model=rng.choice(("gbm", "lr")),
            max_depth=rng.randint(2, 10),
            learning_rate=round(rng.uniform(0.01, 0.3), 4),
            auc=rng.uniform(0.5, 1.0),
            loss=rng.uniform(0.05, 0.7),
        )
        for _ in range(count)
    ]


def run_params() -> dict[str, Any]:
    """The 10 params of the run-creation workload (same for both tools)."""
    return {f"param_{i}": i * 3 for i in range(10)}


def run_metrics() -> dict[str, float]:
    """The 20 metrics of the run-creation workload (same for both tools)."""
    return {f"metric_{i}": i / 20 for i in range(20)}


def count_rows(db_path: Path, table: str) -> int:
    """Rows in one table, read with plain sqlite3 to check what a tool really wrote."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def check(condition: bool, message: str) -> None:
    """Fail the workload loudly: a figure for data that did not land is worthless."""
    if not condition:
        raise RuntimeError(f"verification failed: {message}")


def auc_summary(aucs: list[float]) -> list[float]:
    """Rounded so the two tools' results compare equal despite float round-trips."""
    return [round(a, 9) for a in aucs]


# ---------------------------------------------------------------------------------------
# forgeml workloads (run under .venv/bin/python, settings from FORGEML_* variables).


def fm_runs(sizes: Sizes, workdir: Path) -> dict[str, Any]:
    """Runs created per second, each with 10 params and 20 metrics, started and ended."""
    import forgeml as fm

    params, metrics = run_params(), run_metrics()
    with fm.start_run(experiment="bench-runs", name="warm-up"):
        fm.log_params(params)
        fm.log_metrics(metrics)
    start = time.perf_counter()
    for i in range(sizes.runs):
        with fm.start_run(experiment="bench-runs", name=f"run-{i}"):
            fm.log_params(params)
            fm.log_metrics(metrics)
    fm.flush()
    seconds = time.perf_counter() - start
    db = workdir / "forgeml.db"
    check(count_rows(db, "runs") == sizes.runs + 1, "forgeml run count")
    check(count_rows(db, "params") == 10 * (sizes.runs + 1), "forgeml param count")
    check(count_rows(db, "metrics") == 20 * (sizes.runs + 1), "forgeml metric count")
    return {"runs": sizes.runs, "seconds": seconds, "runs_per_s": sizes.runs / seconds}


def fm_log_metric(sizes: Sizes, workdir: Path) -> dict[str, Any]:
    """Per-call ``log_metric`` in a loop, timed until the run has ended (data written)."""
    import forgeml as fm

    n = sizes.per_call
    with fm.start_run(experiment="bench-metrics", name="per-call") as run:
        start = time.perf_counter()
        for step in range(n):
            fm.log_metric("loss", 1.0 / (step + 1), step=step)
    seconds = time.perf_counter() - start
    history = fm.get_metric_history(run.id, "loss")
    check(len(history) == n, f"forgeml per-call history has {len(history)} of {n} points")
    check(history[-1].value == 1.0 / n, "forgeml per-call last value")
    return {"points": n, "seconds": seconds, "points_per_s": n / seconds}


def fm_log_batch(sizes: Sizes, workdir: Path) -> dict[str, Any]:
    """Batch API: ``log_metrics`` with a dict of many keys per step, until the run ends."""
    import forgeml as fm

    keys = [f"m{k}" for k in range(sizes.batch_keys)]
    batches = [
        {key: step + k / 1000 for k, key in enumerate(keys)} for step in range(sizes.batch_steps)
    ]
    total = sizes.batch_keys * sizes.batch_steps
    with fm.start_run(experiment="bench-metrics", name="batch") as run:
        start = time.perf_counter()
        for step, values in enumerate(batches):
            fm.log_metrics(values, step=step)
    seconds = time.perf_counter() - start
    landed = sum(len(fm.get_metric_history(run.id, key)) for key in keys)
    check(landed == total, f"forgeml batch wrote {landed} of {total} points")
    return {
        "points": total,
        "points_per_call": sizes.batch_keys,
        "seconds": seconds,
        "points_per_s": total / seconds,
    }


def fm_history(sizes: Sizes, workdir: Path) -> dict[str, Any]:
    """A long metric history: write it through the batch API, then time reading it back."""
    import forgeml as fm

    n = sizes.history_steps
    values = [math.sin(step / 100) for step in range(n)]
    with fm.start_run(experiment="bench-history", name="history") as run:
        start = time.perf_counter()
        for step, value in enumerate(values):
            fm.log_metrics({"loss": value}, step=step)
    write_s = time.perf_counter() - start
    reads = []
    for _ in range(5):
        start = time.perf_counter()
        history = fm.get_metric_history(run.id, "loss")
        reads.append(time.perf_counter() - start)
        check(len(history) == n, f"forgeml history read {len(history)} of {n} points")
    check([p.value for p in history] == values, "forgeml history values")
    return {"points": n, "write_s": write_s, "read_s": statistics.median(reads), "reads_s": reads}


def fm_search(sizes: Sizes, workdir: Path) -> dict[str, Any]:
    """search_runs with a metric filter and ordering over ``search_runs`` runs."""
    import forgeml as fm

    rows = search_dataset(sizes.search_runs)
    start = time.perf_counter()
    for row in rows:
        with fm.start_run(experiment="bench-search"):
            fm.log_params(
                {"model": row.model, "max_depth": row.max_depth, "learning_rate": row.learning_rate}
            )
            fm.log_metrics({"auc": row.auc, "loss": row.loss})
    fm.flush()
    populate_s = time.perf_counter() - start
    check(count_rows(workdir / "forgeml.db", "runs") == len(rows), "forgeml search run count")

    def query() -> list[Any]:
        return fm.search_runs(
            SEARCH_FILTER,
            experiment="bench-search",
            order_by=["metrics.auc desc"],
            max_results=100,
        )

    timings, found = time_queries(query, sizes.search_queries)
    aucs = [run.metrics["auc"] for run in found]
    check(all(run.params["model"] == "gbm" for run in found), "forgeml search params")
    return search_result(
        rows, populate_s, "public API (start_run/log_params/log_metrics)", timings, aucs
    )


def fm_model(sizes: Sizes, workdir: Path) -> dict[str, Any]:
    """Register a GradientBoostingClassifier version + alias, then load it by alias."""
    import numpy as np

    import forgeml as fm

    data, _target, models = train_models(sizes.model_reps)
    log_s, load_s = [], []
    for i, model in enumerate(models):
        with fm.start_run(experiment="bench-model", name=f"model-{i}"):
            start = time.perf_counter()
            version = fm.log_model(model, name=MODEL_NAME, example=data[:5])
            fm.set_alias(MODEL_NAME, "champion", version.version)
            log_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        loaded = fm.load_model(f"models:/{MODEL_NAME}@champion")
        load_s.append(time.perf_counter() - start)
        check(np.array_equal(loaded.predict(data), model.predict(data)), "forgeml model load")
    return model_result(log_s, load_s)


# ---------------------------------------------------------------------------------------
# MLflow workloads (run under benchmarks/.venv-mlflow/bin/python).


def ml_setup(workdir: Path, experiment: str) -> str:
    """Point MLflow at a fresh SQLite store and a local artifact directory."""
    import mlflow

    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    experiment_id = mlflow.create_experiment(
        experiment, artifact_location=(workdir / "artifacts").as_uri()
    )
    mlflow.set_experiment(experiment_id=experiment_id)
    return str(experiment_id)


def ml_runs(sizes: Sizes, workdir: Path) -> dict[str, Any]:
    """Runs created per second through the fluent API: start, params, metrics, end."""
    import mlflow

    ml_setup(workdir, "bench-runs")
    params, metrics = run_params(), run_metrics()

    def one_run(name: str) -> None:
        mlflow.start_run(run_name=name)
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        mlflow.end_run()

    one_run("warm-up")
    start = time.perf_counter()
    for i in range(sizes.runs):
        one_run(f"run-{i}")
    seconds = time.perf_counter() - start
    db = workdir / "mlflow.db"
    check(count_rows(db, "runs") == sizes.runs + 1, "mlflow run count")
    check(count_rows(db, "params") == 10 * (sizes.runs + 1), "mlflow param count")
    check(count_rows(db, "metrics") == 20 * (sizes.runs + 1), "mlflow metric count")
    return {"runs": sizes.runs, "seconds": seconds, "runs_per_s": sizes.runs / seconds}


def ml_log_metric(sizes: Sizes, workdir: Path) -> dict[str, Any]:
    """Per-call ``mlflow.log_metric`` in a loop, timed until ``end_run`` returns."""
    import mlflow
    from mlflow import MlflowClient

    ml_setup(workdir, "bench-metrics")
    n = sizes.per_call
    run = mlflow.start_run(run_name="per-call")
    start = time.perf_counter()
    for step in range(n):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    mlflow.end_run()
    seconds = time.perf_counter() - start
    history = MlflowClient().get_metric_history(run.info.run_id, "loss")
    check(len(history) == n, f"mlflow per-call history has {len(history)} of {n} points")
    return {"points": n, "seconds": seconds, "points_per_s": n / seconds}


def ml_metric_chunks(
    keys: list[str], steps: int, value: Callable[[str, int, int], float]
) -> list[list[Any]]:
    """Metric entities grouped into log_batch calls of MLflow's maximum size."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    flat = [
        Metric(key, value(key, k, step), now, step)
        for step in range(steps)
        for k, key in enumerate(keys)
    ]
    return [flat[i : i + MLFLOW_BATCH_LIMIT] for i in range(0, len(flat), MLFLOW_BATCH_LIMIT)]


def ml_log_batch(sizes: Sizes, workdir: Path) -> dict[str, Any]:
    """Batch API: ``MlflowClient.log_batch`` with 1,000 metrics per call, then terminate."""
    from mlflow import MlflowClient

    experiment_id = ml_setup(workdir, "bench-metrics")
    client = MlflowClient()
    keys = [f"m{k}" for k in range(sizes.batch_keys)]
    chunks = ml_metric_chunks(keys, sizes.batch_steps, lambda _key, k, step: step + k / 1000)
    total = sizes.batch_keys * sizes.batch_steps
    run_id = client.create_run(experiment_id, run_name="batch").info.run_id
    start = time.perf_counter()
    for chunk in chunks:
        client.log_batch(run_id, metrics=chunk)
    client.set_terminated(run_id)
    seconds = time.perf_counter() - start
    landed = sum(len(client.get_metric_history(run_id, key)) for key in keys)
    check(landed == total, f"mlflow batch wrote {landed} of {total} points")
    return {
        "points": total,
        "points_per_call": MLFLOW_BATCH_LIMIT,
        "seconds": seconds,
        "points_per_s": total / seconds,
    }


def ml_history(sizes: Sizes, workdir: Path) -> dict[str, Any]:
    """A long metric history written with log_batch, then read back with get_metric_history."""
    from mlflow import MlflowClient

    experiment_id = ml_setup(workdir, "bench-history")
    client = MlflowClient()
    n = sizes.history_steps
    values = [math.sin(step / 100) for step in range(n)]
    chunks = ml_metric_chunks(["loss"], n, lambda _key, _k, step: values[step])
    run_id = client.create_run(experiment_id, run_name="history").info.run_id
    start = time.perf_counter()
    for chunk in chunks:
        client.log_batch(run_id, metrics=chunk)
    client.set_terminated(run_id)
    write_s = time.perf_counter() - start
    reads = []
    for _ in range(5):
        start = time.perf_counter()
        history = client.get_metric_history(run_id, "loss")
        reads.append(time.perf_counter() - start)
        check(len(history) == n, f"mlflow history read {len(history)} of {n} points")
    check(sorted(m.value for m in history) == sorted(values), "mlflow history values")
    return {"points": n, "write_s": write_s, "read_s": statistics.median(reads), "reads_s": reads}


def ml_populate_api(client: Any, experiment_id: str, rows: list[SearchRow]) -> str:
    """Runs created the way a script would: create_run, one log_batch, set_terminated.

    Returns the id of the last run, a reference for what the API writes.
    """
    from mlflow.entities import Metric, Param

    run_id = ""
    for i, row in enumerate(rows):
        run_id = client.create_run(experiment_id, run_name=f"run-{i}").info.run_id
        now = int(time.time() * 1000)
        client.log_batch(
            run_id,
            metrics=[Metric("auc", row.auc, now, 0), Metric("loss", row.loss, now, 0)],
            params=[
                Param("model", row.model),
                Param("max_depth", str(row.max_depth)),
                Param("learning_rate", str(row.learning_rate)),
            ],
        )
        client.set_terminated(run_id)
    return run_id


def ml_populate_bulk(experiment_id: str, rows: list[SearchRow], first_index: int) -> str:
    """Insert finished runs straight into MLflow's own tables through its SQLAlchemy models.

    The rows mirror, column by column, what MLflow's SqlAlchemyStore writes for
    create_run + log_batch + set_terminated (``ml_check_bulk`` compares one of each), so
    search_runs cannot tell them apart; this only skips the per-run transactions.
    Returns the id of the first inserted run.
    """
    import mlflow
    from mlflow.store.tracking.dbmodels.models import (
        SqlLatestMetric,
        SqlMetric,
        SqlParam,
        SqlRun,
        SqlTag,
    )
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    experiment = mlflow.get_experiment(experiment_id)
    store = SqlAlchemyStore(mlflow.get_tracking_uri(), experiment.artifact_location)
    now = int(time.time() * 1000)
    runs: list[dict[str, Any]] = []
    tags: list[dict[str, Any]] = []
    params: list[dict[str, Any]] = []
    metrics: list[dict[str, Any]] = []
    for offset, row in enumerate(rows):
        run_id, name = uuid.uuid4().hex, f"run-{first_index + offset}"
        runs.append(
            {
                "run_uuid": run_id,
                "name": name,
                "source_type": "UNKNOWN",
                "source_name": "",
                "entry_point_name": "",
                "user_id": "unknown",
                "status": "FINISHED",
                "start_time": now + offset,
                "end_time": now + offset,
                "deleted_time": None,
                "source_version": "",
                "lifecycle_stage": "active",
                "artifact_uri": f"{experiment.artifact_location}/{run_id}/artifacts",
                "experiment_id": int(experiment_id),
            }
        )
        tags.append({"key": "mlflow.runName", "value": name, "run_uuid": run_id})
        for key, value in (
            ("model", row.model),
            ("max_depth", str(row.max_depth)),
            ("learning_rate", str(row.learning_rate)),
        ):
            params.append({"key": key, "value": value, "run_uuid": run_id})
        for key, number in (("auc", row.auc), ("loss", row.loss)):
            metrics.append(
                {
                    "key": key,
                    "value": number,
                    "timestamp": now,
                    "step": 0,
                    "is_nan": False,
                    "run_uuid": run_id,
                }
            )
    with store.engine.begin() as conn:
        conn.execute(SqlRun.__table__.insert(), runs)
        conn.execute(SqlTag.__table__.insert(), tags)
        conn.execute(SqlParam.__table__.insert(), params)
        conn.execute(SqlMetric.__table__.insert(), metrics)
        conn.execute(SqlLatestMetric.__table__.insert(), metrics)
    store.engine.dispose()
    return runs[0]["run_uuid"]


def ml_check_bulk(client: Any, api_run_id: str, bulk_run_id: str) -> None:
    """A bulk-inserted run must look exactly like one made through the API."""

    def shape(run_id: str) -> tuple[Any, ...]:
        run = client.get_run(run_id)
        info = run.info
        return (
            info.status,
            info.lifecycle_stage,
            info.user_id,
            info.artifact_uri.replace(run_id, "ID"),
            sorted(run.data.params),
            sorted(run.data.metrics),
            sorted(run.data.tags),
        )

    check(shape(api_run_id) == shape(bulk_run_id), "bulk-inserted MLflow run differs from API run")


def ml_search(sizes: Sizes, workdir: Path) -> dict[str, Any]:
    """MlflowClient.search_runs with the same filter and ordering over the same runs."""
    from mlflow import MlflowClient

    experiment_id = ml_setup(workdir, "bench-search")
    client = MlflowClient()
    rows = search_dataset(sizes.search_runs)
    api_rows = rows[: sizes.search_api_runs]
    check(0 < len(api_rows) < len(rows), "MLflow search needs both API and bulk runs")
    start = time.perf_counter()
    api_run_id = ml_populate_api(client, experiment_id, api_rows)
    api_s = time.perf_counter() - start
    start = time.perf_counter()
    bulk_run_id = ml_populate_bulk(experiment_id, rows[len(api_rows) :], len(api_rows))
    bulk_s = time.perf_counter() - start
    ml_check_bulk(client, api_run_id, bulk_run_id)
    check(count_rows(workdir / "mlflow.db", "runs") == len(rows), "mlflow search run count")

    def query() -> list[Any]:
        return list(
            client.search_runs(
                [experiment_id],
                filter_string=SEARCH_FILTER,
                order_by=["metrics.auc DESC"],
                max_results=100,
            )
        )

    timings, found = time_queries(query, sizes.search_queries)
    aucs = [run.data.metrics["auc"] for run in found]
    check(all(run.data.params["model"] == "gbm" for run in found), "mlflow search params")
    method = (
        f"{len(api_rows)} runs through the API (create_run/log_batch/set_terminated, "
        f"{len(api_rows) / api_s:.0f} runs/s), {len(rows) - len(api_rows)} bulk-inserted "
        "through MLflow's SQLAlchemy table models"
    )
    result = search_result(rows, api_s + bulk_s, method, timings, aucs)
    result["api_runs"] = len(api_rows)
    result["api_runs_per_s"] = len(api_rows) / api_s
    result["estimated_api_populate_s"] = len(rows) / (len(api_rows) / api_s)
    return result


def ml_model(sizes: Sizes, workdir: Path) -> dict[str, Any]:
    """Register a GradientBoostingClassifier version + alias, then load it by alias."""
    import mlflow
    import mlflow.sklearn
    import numpy as np
    from mlflow import MlflowClient

    ml_setup(workdir, "bench-model")
    client = MlflowClient()
    data, _target, models = train_models(sizes.model_reps)
    trusted = skops_trusted_types(models[0])
    log_s, load_s = [], []
    for i, model in enumerate(models):
        with mlflow.start_run(run_name=f"model-{i}"):
            start = time.perf_counter()
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                registered_model_name=MODEL_NAME,
                input_example=data[:5],
                skops_trusted_types=trusted,
            )
            client.set_registered_model_alias(
                MODEL_NAME, "champion", str(info.registered_model_version)
            )
            log_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        loaded = mlflow.sklearn.load_model(f"models:/{MODEL_NAME}@champion")
        load_s.append(time.perf_counter() - start)
        check(np.array_equal(loaded.predict(data), model.predict(data)), "mlflow model load")
    return model_result(log_s, load_s)


# ---------------------------------------------------------------------------------------
# Pieces the workloads of both tools share.


def time_queries(query: Callable[[], list[Any]], repeats: int) -> tuple[list[float], list[Any]]:
    """Three untimed warm-up queries (connection, caches), then ``repeats`` timed ones."""
    found: list[Any] = []
    for _ in range(3):
        found = query()
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        found = query()
        timings.append(time.perf_counter() - start)
    return timings, found


def search_result(
    rows: list[SearchRow], populate_s: float, method: str, timings: list[float], aucs: list[float]
) -> dict[str, Any]:
    """Latency figures plus what came back, so the two tools' answers can be compared."""
    expected = sorted((r.auc for r in rows if r.model == "gbm" and r.auc > 0.9), reverse=True)
    check(auc_summary(aucs) == auc_summary(expected[:100]), "search returned the wrong runs")
    return {
        "runs": len(rows),
        "matching": len(expected),
        "returned": len(aucs),
        "populate_s": populate_s,
        "populate_method": method,
        "queries": len(timings),
        "p50_ms": percentile(timings, 50) * 1000,
        "p95_ms": percentile(timings, 95) * 1000,
        "mean_ms": statistics.fmean(timings) * 1000,
        "top_auc": aucs[:3],
    }


def train_models(count: int) -> tuple[Any, Any, list[Any]]:
    """GradientBoostingClassifiers (50 trees) on breast cancer data, one per repetition.

    Each has its own random_state, so every registered version is new bytes and a load
    never finds a copy of an earlier version in a local cache.
    """
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import GradientBoostingClassifier

    data, target = load_breast_cancer(return_X_y=True)
    models = [
        GradientBoostingClassifier(n_estimators=50, random_state=seed).fit(data, target)
        for seed in range(count)
    ]
    return data, target, models


def skops_trusted_types(model: Any) -> list[str]:
    """The types skops must be told to trust to load ``model`` back.

    MLflow saves scikit-learn models with skops and refuses to log one whose types are
    not declared (forgeml records them itself); a user would write this list by hand.
    """
    import skops.io

    return sorted(skops.io.get_untrusted_types(data=skops.io.dumps(model)))


def model_result(log_s: list[float], load_s: list[float]) -> dict[str, Any]:
    """Medians over the repetitions, with every repetition kept for the record."""
    return {
        "reps": len(log_s),
        "log_and_alias_s": statistics.median(log_s),
        "load_s": statistics.median(load_s),
        "log_and_alias_all_s": log_s,
        "load_all_s": load_s,
    }


WORKERS: dict[tuple[str, str], Callable[[Sizes, Path], dict[str, Any]]] = {
    ("forgeml", "runs"): fm_runs,
    ("forgeml", "log_metric"): fm_log_metric,
    ("forgeml", "log_batch"): fm_log_batch,
    ("forgeml", "history"): fm_history,
    ("forgeml", "search"): fm_search,
    ("forgeml", "model"): fm_model,
    ("mlflow", "runs"): ml_runs,
    ("mlflow", "log_metric"): ml_log_metric,
    ("mlflow", "log_batch"): ml_log_batch,
    ("mlflow", "history"): ml_history,
    ("mlflow", "search"): ml_search,
    ("mlflow", "model"): ml_model,
}


def tool_version(tool: str) -> str:
    """The version of the tool this worker measures, recorded next to its figures."""
    from importlib import metadata

    return metadata.version(tool)


def run_worker(tool: str, workload: str, quick: bool, workdir: Path, as_json: bool) -> None:
    """Worker mode: one workload, figures as JSON on the real stdout (one line with --json).

    Everything else the libraries print goes to stderr, so stdout stays parseable.
    """
    real_stdout = sys.stdout
    sys.stdout = sys.stderr
    os.environ.update(store_env(tool, workdir))
    sizes = (QUICK_SIZES if quick else SIZES)[tool]
    started = time.perf_counter()
    figures = WORKERS[(tool, workload)](sizes, workdir)
    figures["workload_wall_s"] = time.perf_counter() - started
    figures["version"] = tool_version(tool)
    figures["python"] = platform.python_version()
    real_stdout.write(json.dumps(figures, indent=None if as_json else 2) + "\n")
    real_stdout.flush()


# ---------------------------------------------------------------------------------------
# Orchestrator (run under .venv/bin/python): set-up, subprocesses, report.


def log(message: str) -> None:
    """Progress on stderr, so a redirected stdout holds only the results table."""
    print(message, file=sys.stderr, flush=True)


def forgeml_python() -> Path:
    """The interpreter with forgeml installed: the repository's .venv, else this one."""
    candidate = FORGEML_VENV / "bin" / "python"
    return candidate if candidate.exists() else Path(sys.executable)


def mlflow_python() -> Path:
    return MLFLOW_VENV / "bin" / "python"


def interpreter(tool: str) -> Path:
    return forgeml_python() if tool == "forgeml" else mlflow_python()


def ensure_mlflow_venv() -> None:
    """Create benchmarks/.venv-mlflow with MLflow and scikit-learn unless it already works."""
    python = mlflow_python()
    if python.exists():
        probe = subprocess.run(
            [str(python), "-c", "import mlflow, sklearn"],
            capture_output=True,
            check=False,
            env={**os.environ, **MLFLOW_ENV},
        )
        if probe.returncode == 0:
            return
        log(f"{MLFLOW_VENV} exists but cannot import mlflow; reinstalling into it")
    else:
        base = shutil.which("python3") or sys.executable
        log(f"creating the MLflow virtualenv: {base} -m venv {MLFLOW_VENV}")
        subprocess.run([base, "-m", "venv", str(MLFLOW_VENV)], check=True)
    command = [
        str(python),
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "mlflow",
        "scikit-learn",
    ]
    log(f"installing MLflow into it (a few minutes): {' '.join(command)}")
    subprocess.run(command, check=True)


def store_env(tool: str, workdir: Path) -> dict[str, str]:
    """The variables that point a tool at the fresh store in ``workdir`` (and off the net)."""
    if tool == "forgeml":
        return {
            "FORGEML_HOME": str(workdir / "home"),
            "FORGEML_DB_URL": f"sqlite:///{workdir / 'forgeml.db'}",
            "FORGEML_ARTIFACTS_URL": str(workdir / "artifacts"),
            "XDG_CONFIG_HOME": str(workdir / "config"),
        }
    return {**MLFLOW_ENV, "XDG_CONFIG_HOME": str(workdir / "config")}


def tool_env(tool: str, workdir: Path) -> dict[str, str]:
    """Environment of a worker: this process's, minus any FORGEML_/MLFLOW_ settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FORGEML_", "MLFLOW_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(store_env(tool, workdir))
    return env


@contextlib.contextmanager
def scratch_dir(label: str) -> Iterator[Path]:
    """A fresh temporary directory per workload and tool, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=f"forgeml-bench-{label}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run_workload(tool: str, workload: str, quick: bool) -> dict[str, Any]:
    """One workload of one tool in a fresh interpreter and a fresh store."""
    with scratch_dir(f"{tool}-{workload}") as workdir:
        command = [
            str(interpreter(tool)),
            str(Path(__file__).resolve()),
            "--tool",
            tool,
            "--workload",
            workload,
            "--workdir",
            str(workdir),
            "--json",
        ]
        if quick:
            command.append("--quick")
        started = time.perf_counter()
        try:
            done = subprocess.run(
                command,
                cwd=workdir,
                env=tool_env(tool, workdir),
                capture_output=True,
                text=True,
                timeout=WORKER_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {WORKER_TIMEOUT_S} s"}
        wall = time.perf_counter() - started
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        log(f"  {tool} {workload} FAILED (exit {done.returncode}):\n{tail}")
        return {"error": tail.splitlines()[-1] if tail else f"exit {done.returncode}"}
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    figures["subprocess_wall_s"] = wall
    return figures


def time_command(command: list[str], env: dict[str, str], repeats: int = 5) -> dict[str, Any]:
    """Wall time of a whole subprocess: one untimed warm-up, then the median of ``repeats``."""
    subprocess.run(command, env=env, capture_output=True, check=True)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, env=env, capture_output=True, check=True)
        samples.append(time.perf_counter() - start)
    return {"median_s": statistics.median(samples), "samples_s": samples}


def measure_startup() -> dict[str, dict[str, Any]]:
    """``import`` time and ``--help`` time of each tool, as a user would see them."""
    results: dict[str, dict[str, Any]] = {}
    with scratch_dir("startup") as workdir:
        for tool in TOOLS:
            env = tool_env(tool, workdir)
            python = interpreter(tool)
            cli = python.parent / tool
            log(f"  {tool}: python -c 'import {tool}', {tool} --help")
            results[tool] = {
                "bare_python": time_command([str(python), "-c", "pass"], env),
                "import": time_command([str(python), "-c", f"import {tool}"], env),
                "cli_help": time_command([str(cli), "--help"], env),
            }
    return results


@dataclass
class Row:
    """One line of the results table."""

    workload: str
    unit: str
    forgeml: float | None
    mlflow: float | None
    higher_is_better: bool
    target: str = ""
    met: bool | None = None

    @property
    def speedup(self) -> float | None:
        """How many times faster forgeml is (above 1) or slower (below 1)."""
        if not self.forgeml or not self.mlflow:
            return None
        return self.forgeml / self.mlflow if self.higher_is_better else self.mlflow / self.forgeml


def figure(results: dict[str, dict[str, Any]], tool: str, workload: str, key: str) -> float | None:
    """A number from a worker's figures, or None when that workload failed or did not run."""
    value = results.get(tool, {}).get(workload, {}).get(key)
    return float(value) if isinstance(value, (int, float)) else None


def build_rows(results: dict[str, dict[str, Any]], startup: dict[str, dict[str, Any]]) -> list[Row]:
    """The table: one row per figure, with the targets forgeml promises next to them."""

    def pair(workload: str, key: str, scale: float = 1.0) -> tuple[float | None, float | None]:
        values = [figure(results, tool, workload, key) for tool in TOOLS]
        return tuple(None if v is None else v * scale for v in values)  # type: ignore[return-value]

    def start(kind: str) -> tuple[float | None, float | None]:
        return startup["forgeml"][kind]["median_s"], startup["mlflow"][kind]["median_s"]

    rows = [
        Row(
            "Runs created (10 params + 20 metrics)",
            "runs/s",
            *pair("runs", "runs_per_s"),
            True,
            ">= 20x MLflow",
        ),
        Row(
            "log_metric, per call (incl. flush)",
            "points/s",
            *pair("log_metric", "points_per_s"),
            True,
            ">= 100x MLflow",
        ),
        Row(
            "Batch metric logging (incl. flush)",
            "points/s",
            *pair("log_batch", "points_per_s"),
            True,
        ),
        Row("10,000-step history: write", "ms", *pair("history", "write_s", 1000), False),
        Row("10,000-step history: read", "ms", *pair("history", "read_s", 1000), False),
        Row(
            "search_runs over 10,000 runs: p50",
            "ms",
            *pair("search", "p50_ms"),
            False,
            "p50 <= 20 ms",
        ),
        Row("search_runs over 10,000 runs: p95", "ms", *pair("search", "p95_ms"), False),
        Row("log_model + set alias (median)", "ms", *pair("model", "log_and_alias_s", 1000), False),
        Row("load_model by alias (median)", "ms", *pair("model", "load_s", 1000), False),
        Row("import (python -c 'import ...')", "s", *start("import"), False, "< 0.5 s"),
        Row("CLI start (... --help)", "s", *start("cli_help"), False, "< 0.3 s"),
    ]
    judge_targets(rows)
    return rows


def judge_targets(rows: list[Row]) -> None:
    """Mark each promised target met or not met from the measured figures."""
    for row in rows:
        if not row.target:
            continue
        if row.target.endswith("x MLflow"):
            wanted = float(row.target.split()[1].rstrip("x"))
            row.met = None if row.speedup is None else row.speedup >= wanted
        elif row.target.startswith("p50 <="):
            row.met = None if row.forgeml is None else row.forgeml <= 20.0
        elif row.target.startswith("<"):
            limit = float(row.target.split()[1])
            row.met = None if row.forgeml is None else row.forgeml < limit


def fmt_value(value: float | None, unit: str) -> str:
    """Numbers at a precision that reads well: thousands separators, no false digits."""
    if value is None:
        return "n/a"
    if unit == "s":
        return f"{value:.3f} s"
    if unit == "ms":
        return f"{value:,.1f} ms" if value < 100 else f"{value:,.0f} ms"
    return f"{value:,.0f} {unit}" if value >= 100 else f"{value:,.1f} {unit}"


def fmt_speedup(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.0f}x" if value >= 10 else f"{value:.1f}x"


def fmt_met(met: bool | None, target: str) -> str:
    if not target:
        return ""
    if met is None:
        return "n/a"
    return "met" if met else "NOT met"


HEADER = ("Workload", "forgeml", "MLflow", "forgeml speed-up", "Target", "Met")


def table_cells(rows: list[Row]) -> list[tuple[str, ...]]:
    return [
        (
            row.workload,
            fmt_value(row.forgeml, row.unit),
            fmt_value(row.mlflow, row.unit),
            fmt_speedup(row.speedup),
            row.target,
            fmt_met(row.met, row.target),
        )
        for row in rows
    ]


def markdown_table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_cells(rows)]
    return "\n".join(lines) + "\n"


def print_table(rows: list[Row], title: str) -> None:
    """A rich table when rich is importable (it is in forgeml's venv), plain text otherwise."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(title)
        widths = [max(len(c[i]) for c in [HEADER, *table_cells(rows)]) for i in range(len(HEADER))]
        for cells in [HEADER, *table_cells(rows)]:
            print("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)))
        return
    table = Table(title=title)
    for i, name in enumerate(HEADER):
        table.add_column(name, justify="left" if i in (0, 4, 5) else "right")
    for cells in table_cells(rows):
        table.add_row(*cells)
    Console(width=None if sys.stdout.isatty() else 150).print(table)


def fmt_count(value: Any) -> str:
    """A count with thousands separators, or "?" when its workload did not report it."""
    return f"{value:,}" if isinstance(value, int) else "?"


def notes(results: dict[str, dict[str, Any]]) -> list[str]:
    """What a reader needs to interpret the table: counts per tool and how data got in."""
    lines = []
    for tool in TOOLS:
        r = results.get(tool, {})
        parts = [
            f"{fmt_count(r.get('runs', {}).get('runs'))} runs timed",
            f"{fmt_count(r.get('log_metric', {}).get('points'))} per-call points",
            f"{fmt_count(r.get('log_batch', {}).get('points'))} batch points "
            f"({fmt_count(r.get('log_batch', {}).get('points_per_call'))} per call)",
            f"{fmt_count(r.get('model', {}).get('reps'))} model repetitions",
        ]
        lines.append(f"{tool}: " + ", ".join(parts) + ".")
        model = r.get("model", {})
        if model.get("log_and_alias_all_s"):
            lines.append(
                f"{tool} first log_model + alias in a fresh process (one of the median's samples): "
                f"{model['log_and_alias_all_s'][0] * 1000:,.0f} ms; first load: "
                f"{model['load_all_s'][0] * 1000:,.0f} ms."
            )
        search = r.get("search", {})
        if "populate_method" in search:
            lines.append(
                f"{tool} search store: {fmt_count(search['runs'])} runs, populated in "
                f"{search['populate_s']:.1f} s via {search['populate_method']}."
            )
    return lines


def machine_info() -> dict[str, Any]:
    """Where the figures came from: they only compare with runs on the same machine."""
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "orchestrator_python": platform.python_version(),
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError, ValueError, IndexError):
        first = Path("/proc/meminfo").read_text().splitlines()[0]
        info["memory_gib"] = round(int(first.split()[1]) / 1024**2, 1)
    return info


def write_results(
    rows: list[Row],
    results: dict[str, dict[str, Any]],
    startup: dict[str, dict[str, Any]],
    total_s: float,
    source: dict[str, Any],
) -> None:
    """results/tracking.json (every raw number) and results/tracking.md (the table)."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    versions = {
        tool: {
            "version": next(
                (w.get("version") for w in results[tool].values() if "version" in w), None
            ),
            "python": next(
                (w.get("python") for w in results[tool].values() if "python" in w), None
            ),
        }
        for tool in TOOLS
    }
    document = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "forgeml_source": source,
        "versions": versions,
        "sizes": {tool: asdict(SIZES[tool]) for tool in TOOLS},
        "mlflow_environment": MLFLOW_ENV,
        "search_filter": SEARCH_FILTER,
        "total_seconds": total_s,
        "rows": [{**asdict(row), "speedup": row.speedup} for row in rows],
        "results": results,
        "startup": startup,
        "notes": notes(results),
    }
    (RESULTS_DIR / "tracking.json").write_text(json.dumps(document, indent=2) + "\n")
    commit = (source.get("commit") or "unknown")[:10]
    if source.get("src_uncommitted_changes"):
        commit += " + uncommitted changes in src/"
    header = (
        f"# Tracking benchmark results\n\n{document['date']}, {machine_info()['cpu_count']} CPUs, "
        f"forgeml {versions['forgeml']['version']} (commit {commit}) vs MLflow "
        f"{versions['mlflow']['version']}, Python {versions['forgeml']['python']}, SQLite "
        f"stores, whole benchmark {total_s:.0f} s.\n\n"
    )
    footer = "\n" + "\n".join(f"- {line}" for line in notes(results)) + "\n"
    (RESULTS_DIR / "tracking.md").write_text(header + markdown_table(rows) + footer)
    plot_speedups(rows, RESULTS_DIR / "tracking.png")


def plot_speedups(rows: list[Row], path: Path) -> None:
    """A bar per workload: how many times faster forgeml is, on a log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [row for row in rows if row.speedup is not None]
    labels = [row.workload for row in shown]
    values = [row.speedup or 0.0 for row in shown]
    colours = ["#2a9d8f" if v >= 1 else "#e76f51" for v in values]
    figure, axis = plt.subplots(figsize=(9, 0.42 * len(shown) + 1.2))
    positions = range(len(shown))
    axis.barh(list(positions), values, color=colours)
    axis.set_xscale("log")
    axis.axvline(1.0, color="black", linewidth=0.8)
    axis.set_yticks(list(positions), labels)
    axis.invert_yaxis()
    for position, value in zip(positions, values, strict=True):
        text = f"{value:,.0f}x" if value >= 100 else f"{value:.3g}x"
        axis.text(value * 1.08, position, text, va="center", fontsize=8)
    axis.set_xlabel("forgeml speed-up over MLflow (log scale; 1x = same speed)")
    axis.set_title("Tracking and registry: forgeml vs MLflow, same machine, SQLite")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def source_state() -> dict[str, Any]:
    """The forgeml code measured: git commit, uncommitted changes, a digest of src/.

    The digest is taken before and after the run; if it moved, the figures mix versions.
    """
    import hashlib

    digest = hashlib.sha256()
    for path in sorted((ROOT / "src").rglob("*.py")):
        digest.update(path.relative_to(ROOT).as_posix().encode())
        digest.update(path.read_bytes())

    def git(*args: str) -> str | None:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else None

    status = git("status", "--porcelain", "--", "src")
    return {
        "commit": git("rev-parse", "HEAD"),
        "src_uncommitted_changes": None if status is None else bool(status),
        "src_digest": digest.hexdigest(),
    }


def orchestrate(quick: bool, only: list[str]) -> int:
    """The whole benchmark: every workload for both tools, then the report."""
    started = time.perf_counter()
    source = source_state()
    ensure_mlflow_venv()
    results: dict[str, dict[str, Any]] = {tool: {} for tool in TOOLS}
    for workload in only:
        for tool in TOOLS:
            log(f"running {workload} with {tool} ...")
            results[tool][workload] = run_workload(tool, workload, quick)
            wall = results[tool][workload].get("subprocess_wall_s")
            if wall is not None:
                log(f"  done in {wall:.1f} s")
    log("measuring start-up times ...")
    startup = measure_startup()
    total_s = time.perf_counter() - started
    source["src_changed_during_run"] = source_state()["src_digest"] != source["src_digest"]
    if source["src_changed_during_run"]:
        log("WARNING: files under src/ changed while the benchmark ran; figures mix versions")
    rows = build_rows(results, startup)
    print_table(rows, f"forgeml vs MLflow tracking on SQLite ({os.cpu_count()} CPUs)")
    for line in notes(results):
        print(line)
    print(f"total benchmark time: {total_s:.0f} s")
    if quick or only != list(WORKLOADS):
        print("(partial or --quick run: results/ not written)")
    else:
        write_results(rows, results, startup, total_s, source)
        print(f"wrote {RESULTS_DIR / 'tracking.json'} and {RESULTS_DIR / 'tracking.md'}")
    failed = [f"{t}/{w}" for t in TOOLS for w, r in results[t].items() if "error" in r]
    if failed:
        print(f"failed workloads: {', '.join(failed)}")
        return 1
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tool", choices=TOOLS, help="worker mode: measure this tool only")
    parser.add_argument(
        "--workload", choices=WORKLOADS, action="append", help="run only this workload (repeatable)"
    )
    parser.add_argument("--workdir", type=Path, help="worker mode: the fresh store directory")
    parser.add_argument("--json", action="store_true", help="worker mode: print figures as JSON")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes, for a smoke test; results/ is not written",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.tool is not None:
        if not args.workload or len(args.workload) != 1 or args.workdir is None:
            raise SystemExit("worker mode needs --tool, one --workload and --workdir")
        run_worker(args.tool, args.workload[0], args.quick, args.workdir.resolve(), args.json)
        return 0
    return orchestrate(args.quick, args.workload or list(WORKLOADS))


if __name__ == "__main__":
    sys.exit(main())
