"""Batch scoring benchmark: ``forgeml predict`` against the pandas script users write instead.

    .venv/bin/python benchmarks/batch_scoring.py            # the full benchmark (4 to 6 minutes)
    .venv/bin/python benchmarks/batch_scoring.py --quick    # 500,000 rows; writes nothing

One seeded table of 10,000,000 rows: an ``id`` and 30 float64 features, written as
Parquet in row groups of 100,000 to a temporary directory. One model: scikit-learn's
GradientBoostingClassifier(n_estimators=100), trained on 5,000 rows drawn the same way
and registered in a fresh forgeml home. Each contender runs as its own process, one at
a time, while the peak resident memory of its whole process tree (the process and every
child: worker processes, the forkserver) is sampled every 50 ms with psutil:

- forgeml: ``forgeml predict -m models:/bench@champion -i rows.parquet -o out.parquet
  --keep id``, with ``--workers 1`` (in-process) and ``--workers 2`` (two processes);
- pandas: ``pd.read_parquet`` of the file, ``model.predict`` on the whole frame, and
  ``to_parquet`` of ``id`` and ``prediction`` (the model loaded once through
  ``fm.load_model``, outside the timing of its three steps);
- MLflow, when ``benchmarks/.venv-mlflow`` exists: the same model saved as an MLflow
  model, ``mlflow.pyfunc.load_model(...).predict`` on the whole frame, the same write.

Every contender's predictions must equal forgeml's row for row (same ids, same order,
same labels), or the run stops. Seconds are wall time of the whole process (start-up
included); the pandas and MLflow workers also report the time of their read, predict
and write alone. Targets: 10 million rows in under 2 GB of peak RSS, all processes
together, for every forgeml configuration. The worker modes (``--naive``, ``--mlflow``)
import only the standard library at the top: the MLflow one runs in MLflow's virtualenv.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "benchmarks"
RESULTS_DIR = BENCH_DIR / "results"
FORGEML = ROOT / ".venv" / "bin" / "forgeml"
MLFLOW_VENV = BENCH_DIR / ".venv-mlflow"

SEED = 20_260_301
FULL_ROWS = 10_000_000
QUICK_ROWS = 500_000
ROW_GROUP = 100_000
FEATURES = tuple(f"x{i}" for i in range(30))
TRAIN_ROWS = 5_000
MODEL = "bench"
SAMPLE_S = 0.05
TARGET_RSS_MB = 2048.0
QUIET_ENV = {"DO_NOT_TRACK": "1", "MLFLOW_DISABLE_TELEMETRY": "true", "GIT_PYTHON_REFRESH": "quiet"}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the workers (pandas, MLflow): standard library at the top, the rest imported here ---------


def run_naive(loader: str, model_ref: str, source: str, target: str) -> dict[str, Any]:
    """What a user writes without a batch scorer: the whole table in memory, three steps."""
    import pandas as pd

    if loader == "mlflow":
        import mlflow.pyfunc  # type: ignore[import-not-found]

        model: Any = mlflow.pyfunc.load_model(model_ref)
    else:
        import forgeml as fm

        model = fm.load_model(model_ref)
    started = time.perf_counter()
    frame = pd.read_parquet(source)
    read_s = time.perf_counter() - started
    frame["prediction"] = model.predict(frame[list(FEATURES)])
    predict_s = time.perf_counter() - started - read_s
    frame[["id", "prediction"]].to_parquet(target, index=False)
    total = time.perf_counter() - started
    return {
        "read_s": read_s,
        "predict_s": predict_s,
        "write_s": total - read_s - predict_s,
        "inner_s": total,
    }


def save_mlflow(model_ref: str, directory: str, env: dict[str, str]) -> None:
    """The registered model, saved in MLflow's format by MLflow's own Python."""
    load = (
        "import forgeml as fm, pickle, sys; "
        f"pickle.dump(fm.load_model({model_ref!r}), sys.stdout.buffer)"
    )
    model = subprocess.run([sys.executable, "-c", load], env=env, capture_output=True, check=True)
    save = (
        "import pickle, sys, mlflow.sklearn; "
        "mlflow.sklearn.save_model(pickle.load(sys.stdin.buffer), sys.argv[1], "
        "skops_trusted_types=['sklearn.tree._tree.Tree'])"
    )
    done = subprocess.run(
        [str(MLFLOW_VENV / "bin" / "python"), "-c", save, directory],
        input=model.stdout,
        capture_output=True,
        env=env,
    )
    if done.returncode != 0:
        raise SystemExit(f"saving the MLflow model failed:\n{done.stderr.decode()[-3000:]}")


# -- the orchestrator ----------------------------------------------------------------------


def make_table(path: Path, rows: int) -> None:
    """Seeded rows written 100,000 at a time: the generator never holds the table."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(SEED)
    schema = pa.schema([("id", pa.int64()), *[(name, pa.float64()) for name in FEATURES]])
    with pq.ParquetWriter(path, schema, compression="snappy") as writer:
        for start in range(0, rows, ROW_GROUP):
            size = min(ROW_GROUP, rows - start)
            values = rng.normal(size=(len(FEATURES), size))
            columns = [pa.array(np.arange(start, start + size, dtype=np.int64)), *values]
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))


def train_and_register(env: dict[str, str]) -> None:
    """Train on rows of the same distribution, register, and name the version champion."""
    code = f"""
import numpy as np, pandas as pd
from sklearn.ensemble import GradientBoostingClassifier
import forgeml as fm
rng = np.random.default_rng({SEED + 1})
frame = pd.DataFrame(rng.normal(size=({TRAIN_ROWS}, {len(FEATURES)})), columns={list(FEATURES)!r})
labels = (frame.x0 + frame.x1 * frame.x2 - 0.5 * frame.x3 > 0).astype(int)
model = GradientBoostingClassifier(n_estimators=100, random_state=0).fit(frame, labels)
version = fm.log_model(model, {MODEL!r}, example=frame[:5], run_id=None)
fm.set_alias({MODEL!r}, "champion", version.version)
"""
    subprocess.run([sys.executable, "-c", code], env=env, check=True)


def measured(command: list[str], env: dict[str, str], cwd: str) -> dict[str, Any]:
    """Run ``command``; its wall time, exit status, stdout, and the tree's peak RSS."""
    import psutil

    started = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    root = psutil.Process(process.pid)
    peak = 0
    peak_processes = 0
    output: dict[str, str] = {}

    def drain(name: str, stream: Any) -> None:
        output[name] = stream.read()

    readers = [
        threading.Thread(target=drain, args=("stdout", process.stdout), daemon=True),
        threading.Thread(target=drain, args=("stderr", process.stderr), daemon=True),
    ]
    for reader in readers:
        reader.start()
    while process.poll() is None:
        total, count = 0, 0
        try:
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        for member in tree:
            try:
                total += member.memory_info().rss
                count += 1
            except psutil.NoSuchProcess:
                pass
        if total > peak:
            peak, peak_processes = total, count
        time.sleep(SAMPLE_S)
    process.wait()
    seconds = time.perf_counter() - started
    for reader in readers:
        reader.join()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{output.get('stderr', '')[-4000:]}")
    return {
        "seconds": seconds,
        "peak_rss_mb": peak / 2**20,
        "processes_at_peak": peak_processes,
        "stdout": output.get("stdout", ""),
    }


def check_same(reference: Path, other: Path, name: str) -> None:
    import numpy as np
    import pyarrow.parquet as pq

    left = pq.read_table(reference, columns=["id", "prediction"])
    right = pq.read_table(other, columns=["id", "prediction"])
    for column in ("id", "prediction"):
        if not np.array_equal(left.column(column).to_numpy(), right.column(column).to_numpy()):
            raise SystemExit(f"{name}: column {column!r} differs from forgeml's output")


def versions() -> dict[str, str]:
    import importlib.metadata as metadata

    found = {
        name: metadata.version(name)
        for name in ("forgeml", "scikit-learn", "pyarrow", "pandas", "numpy", "psutil")
    }
    if (MLFLOW_VENV / "bin" / "python").exists():
        done = subprocess.run(
            [str(MLFLOW_VENV / "bin" / "python"), "-c", "import mlflow; print(mlflow.__version__)"],
            capture_output=True,
            text=True,
        )
        found["mlflow"] = done.stdout.strip() or "unusable"
    return found


def benchmark(rows: int, worker_counts: list[int]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as scratch_dir:
        scratch = Path(scratch_dir)
        env = {
            **os.environ,
            **QUIET_ENV,
            "FORGEML_HOME": str(scratch / "home"),
            "FORGEML_EXECUTOR": "local",
            "COLUMNS": "120",
        }
        table = scratch / "rows.parquet"
        log(f"writing {rows:,} rows x {len(FEATURES)} features ...")
        started = time.perf_counter()
        make_table(table, rows)
        log(f"  {table.stat().st_size / 2**20:,.0f} MiB in {time.perf_counter() - started:.1f} s")
        log("training and registering the model ...")
        train_and_register(env)
        runs: dict[str, Any] = {}
        reference: Path | None = None
        for workers in worker_counts:
            name = f"forgeml_{workers}w"
            out = scratch / f"{name}.parquet"
            log(f"forgeml predict --workers {workers} ...")
            command = [
                str(FORGEML),
                "predict",
                "-m",
                f"models:/{MODEL}@champion",
                "-i",
                str(table),
                "-o",
                str(out),
                "--keep",
                "id",
                "--workers",
                str(workers),
                "--quiet",
                "--json",
            ]
            figures = measured(command, env, scratch_dir)
            summary = json.loads(figures.pop("stdout"))
            figures.update(inner_s=summary["seconds"], rows=summary["rows"], command=command[1:])
            runs[name] = figures
            log(f"  {figures['seconds']:.1f} s, peak RSS {figures['peak_rss_mb']:,.0f} MB")
            if reference is None:
                reference = out
            else:
                check_same(reference, out, name)
                out.unlink()
        assert reference is not None
        contenders = [("pandas", "forgeml", f"models:/{MODEL}@champion")]
        if (MLFLOW_VENV / "bin" / "python").exists():
            mlflow_dir = scratch / "mlflow-model"
            save_mlflow(f"models:/{MODEL}@champion", str(mlflow_dir), env)
            contenders.append(("mlflow", "mlflow", str(mlflow_dir)))
        for name, loader, model_ref in contenders:
            python = sys.executable if loader == "forgeml" else str(MLFLOW_VENV / "bin" / "python")
            out = scratch / f"{name}.parquet"
            log(f"{name}: read_parquet + predict + to_parquet ...")
            command = [python, __file__, "--naive", loader, model_ref, str(table), str(out)]
            figures = measured(command, env, scratch_dir)
            figures.update(json.loads(figures.pop("stdout").strip().splitlines()[-1]))
            figures["rows"] = rows
            runs[name] = figures
            log(f"  {figures['seconds']:.1f} s, peak RSS {figures['peak_rss_mb']:,.0f} MB")
            check_same(reference, out, name)
            out.unlink()
        return {
            "rows": rows,
            "features": len(FEATURES),
            "row_group": ROW_GROUP,
            "file_mb": table.stat().st_size / 2**20,
            "runs": runs,
        }


def report(results: dict[str, Any]) -> str:
    runs = results["runs"]
    baseline = runs["pandas"]
    lines = [
        "# Batch scoring benchmark results",
        "",
        f"{results['when']}, {results['cpus']} CPUs, {results['memory_gb']:.0f} GB RAM, Python "
        f"{results['python']}, forgeml {results['versions']['forgeml']} (commit "
        f"{results['commit']}), scikit-learn {results['versions']['scikit-learn']}, pyarrow "
        f"{results['versions']['pyarrow']}, pandas {results['versions']['pandas']}.",
        "",
        f"{results['rows']:,} rows x {results['features']} float64 features "
        f"({results['file_mb']:,.0f} MiB of Parquet, row groups of {results['row_group']:,}); "
        "GradientBoostingClassifier(n_estimators=100). Seconds are the whole process's wall "
        "time; peak RSS is the sum over the process tree.",
        "",
        "| Contender | Seconds | Rows/s | Peak RSS (MB) | Time vs pandas | Memory vs pandas |",
        "|---|---|---|---|---|---|",
    ]
    for name, figures in runs.items():
        rate = figures["rows"] / figures["seconds"]
        lines.append(
            f"| {name} | {figures['seconds']:.1f} | {rate:,.0f} | {figures['peak_rss_mb']:,.0f} | "
            f"{figures['seconds'] / baseline['seconds']:.2f}x | "
            f"{figures['peak_rss_mb'] / baseline['peak_rss_mb']:.2f}x |"
        )
    lines += ["", "## Targets", "", "| Target | Figure | Met |", "|---|---|---|"]
    for name, figures in runs.items():
        if name.startswith("forgeml"):
            met = figures["peak_rss_mb"] < TARGET_RSS_MB
            lines.append(
                f"| {name}: {results['rows']:,} rows in < 2 GB peak RSS (all processes) | "
                f"{figures['peak_rss_mb']:,.0f} MB | {'met' if met else 'NOT met'} |"
            )
    lines += ["", "## Inside each process", ""]
    for name, figures in runs.items():
        if "read_s" in figures:
            lines.append(
                f"- {name}: read {figures['read_s']:.1f} s, predict {figures['predict_s']:.1f} s, "
                f"write {figures['write_s']:.1f} s ({figures['inner_s']:.1f} s of "
                f"{figures['seconds']:.1f} s)"
            )
        else:
            lines.append(
                f"- {name}: scoring {figures['inner_s']:.1f} s of {figures['seconds']:.1f} s "
                f"(the rest: start-up, model load, the metadata store)"
            )
    if "mlflow" not in runs:
        lines += ["", "MLflow was not measured: `benchmarks/.venv-mlflow` does not exist."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="500,000 rows; writes nothing")
    parser.add_argument("--rows", type=int, help="rows to score (writes nothing)")
    parser.add_argument("--naive", nargs=4, metavar=("LOADER", "MODEL", "INPUT", "OUTPUT"))
    args = parser.parse_args()
    if args.naive:
        print(json.dumps(run_naive(*args.naive)))
        return
    rows = args.rows or (QUICK_ROWS if args.quick else FULL_ROWS)
    import psutil

    results: dict[str, Any] = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "memory_gb": psutil.virtual_memory().total / 2**30,
        "load_average_at_start": list(os.getloadavg()),
        "python": platform.python_version(),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short=10", "HEAD"], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip(),
        "versions": versions(),
    }
    results.update(benchmark(rows, [1, 2]))
    results["load_average_at_end"] = list(os.getloadavg())
    text = report(results)
    print(text)
    if not args.quick and not args.rows:
        RESULTS_DIR.mkdir(exist_ok=True)
        (RESULTS_DIR / "batch_scoring.json").write_text(json.dumps(results, indent=2) + "\n")
        (RESULTS_DIR / "batch_scoring.md").write_text(text)
        log("wrote benchmarks/results/batch_scoring.json and batch_scoring.md")


if __name__ == "__main__":
    main()
