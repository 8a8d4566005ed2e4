"""Feature store benchmark: forgeml's feature store and Feast's local provider, same data.

    .venv/bin/python benchmarks/features.py                    # the full benchmark (10-12 min)
    .venv/bin/python benchmarks/features.py --quick            # a smoke test; writes no results
    .venv/bin/python benchmarks/features.py --workload online  # some workloads; writes nothing

One seeded data set: 100,000 drivers and 10,000,000 rows of 10 float features over 90
days, in one Parquet file. Four workloads. ``training``: a point-in-time training frame
for 1,000,000 entity rows, by forgeml, by Feast's file offline store and by a hand-written
DuckDB ASOF join. ``materialize``: the latest values into the online store, SQLite and
Redis, full and incremental. ``online``: in-process lookups of 1 and 100 entities.
``http``: each tool's feature server at a fixed offered rate of 1,000 requests/s, plus
its maximum throughput.

Every workload of every tool runs in its own subprocess; Feast runs in its own virtualenv
(``benchmarks/.venv-feast``, created on first use). The same file is the worker (``--tool
NAME --workload NAME --data-dir DIR --workdir DIR --json``) and the HTTP load generator
(``--loadgen``), so it imports only the standard library at the top: Feast's virtualenv
has neither forgeml nor psutil.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import importlib
import json
import math
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "benchmarks"
RESULTS_DIR = BENCH_DIR / "results"
FORGEML_VENV = ROOT / ".venv"
FEAST_VENV = BENCH_DIR / ".venv-feast"
FEAST_PACKAGES = ("feast[redis]", "pyarrow")
FEAST_PROBE = "import feast, redis, pyarrow"

WORKLOADS = ("training", "materialize", "online", "http")
TRAINING_TOOLS = ("forgeml", "duckdb", "feast")
STORE_TOOLS = ("forgeml", "feast")
BACKENDS = ("sqlite", "redis")
TOOL_LABELS = {"forgeml": "forgeml", "feast": "Feast", "duckdb": "DuckDB script"}
BACKEND_LABELS = {"sqlite": "SQLite", "redis": "Redis"}

SEED = 20_241_201
DAYS = 90
TTL_DAYS = 2
DAY_US = 86_400 * 1_000_000
TTL_US = TTL_DAYS * DAY_US
# Online lookups ask for drivers whose latest value is at most this old at the end of the
# data, so it stays within the 2-day TTL for the whole run and every tool returns values.
FRESH_US = DAY_US
VIEW = "driver_stats"
FEATURES = tuple(f"f{i}" for i in range(10))
REFS = [f"{VIEW}:{name}" for name in FEATURES]
KEY = "driver_id"
TS = "event_timestamp"

STATS_FILE = "stats.parquet"
ENTITIES_FILE = "entities.parquet"
LATEST_FILE = "latest.parquet"
REFERENCE_FILE = "reference.parquet"
LOOKUPS_FILE = "lookups.json"
MANIFEST_FILE = "manifest.json"

REDIS_HOST, REDIS_PORT, REDIS_DB = "127.0.0.1", 6379, 15
REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"
FEAST_REDIS = f"{REDIS_HOST}:{REDIS_PORT},db={REDIS_DB}"

REPEATS = 3  # timed repetitions of a training frame after the first call
WORKER_TIMEOUT_S = 1_800
RSS_LIMIT_MB = 12_000.0  # a worker whose process tree passes this is killed
SAMPLE_INTERVAL_S = 0.2
FEAST_TRAINING_BUDGET_S = 900.0  # Feast starts no new chunk after this many seconds
VERIFY_ENTITIES = 10_000  # online values read back after materialization
HTTP_CONNECTIONS = 64
THROUGHPUT_CONNECTIONS = 32
HTTP_DRAIN_S = 60.0
HTTP_PROBES = 20
SPIN_S = 0.0015  # the load generator yields in a loop for the last 1.5 ms before a send
TRAINING_RSS_TARGET_MB = 2_000.0

# Usage reporting and progress bars off: neither is part of the work measured.
WORKER_ENV = {
    "DO_NOT_TRACK": "1",
    "FEAST_USAGE": "False",
    "TQDM_DISABLE": "1",
    "PYTHONUNBUFFERED": "1",
}


@dataclass(frozen=True)
class Sizes:
    """How much data and how many calls; ``--quick`` shrinks everything."""

    entities: int
    rows: int
    entity_rows: int
    feast_chunk: int
    feast_budget_s: float
    lookups: int
    warmup: int
    batch: int
    http_rate: int
    http_seconds: float
    throughput_seconds: float


SIZES = Sizes(
    entities=100_000,
    rows=10_000_000,
    entity_rows=1_000_000,
    feast_chunk=100_000,
    feast_budget_s=FEAST_TRAINING_BUDGET_S,
    lookups=2_000,
    warmup=200,
    batch=100,
    http_rate=1_000,
    http_seconds=10.0,
    throughput_seconds=5.0,
)
QUICK_SIZES = Sizes(
    entities=2_000,
    rows=200_000,
    entity_rows=20_000,
    feast_chunk=5_000,
    feast_budget_s=120.0,
    lookups=200,
    warmup=20,
    batch=100,
    http_rate=200,
    http_seconds=2.0,
    throughput_seconds=1.0,
)


# ---------------------------------------------------------------------------------------
# Small helpers shared by every interpreter (standard library only).


def check(condition: bool, message: str) -> None:
    """Fail the workload loudly: a figure for work that was not done is worthless."""
    if not condition:
        raise RuntimeError(f"verification failed: {message}")


def log(message: str) -> None:
    """Progress on stderr, so a redirected stdout holds only the results tables."""
    print(message, file=sys.stderr, flush=True)


def current_rss_mb() -> float:
    """This process's resident set now, in MB, from /proc (no psutil in Feast's venv)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


class RssSampler:
    """The peak resident set of this process, read every 20 ms by a daemon thread.

    ``reset`` starts a new phase, ``peak_mb`` is the largest reading since. It is only
    used around calls that take seconds; latency loops run without it.
    """

    def __init__(self, interval_s: float = 0.02) -> None:
        self._interval = interval_s
        self._peak = current_rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._peak = max(self._peak, current_rss_mb())

    def reset(self) -> None:
        self._peak = current_rss_mb()

    def peak_mb(self) -> float:
        self._peak = max(self._peak, current_rss_mb())
        return self._peak

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: always an observed value."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_summary(seconds: Sequence[float]) -> dict[str, Any]:
    """p50/p90/p99/p99.9/max and mean of latencies given in seconds, reported in ms."""
    if not seconds:
        return {"count": 0}
    return {
        "count": len(seconds),
        "p50_ms": percentile(seconds, 50) * 1000,
        "p90_ms": percentile(seconds, 90) * 1000,
        "p99_ms": percentile(seconds, 99) * 1000,
        "p999_ms": percentile(seconds, 99.9) * 1000,
        "max_ms": max(seconds) * 1000,
        "mean_ms": statistics.fmean(seconds) * 1000,
    }


def distribution_versions(names: Sequence[str]) -> dict[str, str | None]:
    """Versions of the packages a worker measured, recorded next to its figures."""
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def utc(micros: int) -> dt.datetime:
    """A timezone-aware UTC datetime from microseconds since the epoch."""
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=micros)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def load_sizes(data_dir: Path) -> tuple[Sizes, dict[str, Any]]:
    """The sizes the data set was written with, and the rest of its manifest."""
    manifest = read_json(data_dir / MANIFEST_FILE)
    return Sizes(**manifest["sizes"]), manifest


def latest_values(data_dir: Path) -> dict[int, tuple[int, list[float]]]:
    """Each driver's newest row in the data: {driver_id: (time in us, [f0..f9])}."""
    import pyarrow.parquet as pq

    columns = pq.read_table(data_dir / LATEST_FILE).to_pydict()
    return {
        driver: (ts, [columns[name][i] for name in FEATURES])
        for i, (driver, ts) in enumerate(zip(columns[KEY], columns["ts_us"], strict=True))
    }


@dataclass
class OnlineCheck:
    """What a tool's online reads returned, against each driver's newest row."""

    rows: int = 0
    latest: int = 0  # exactly the newest row's values
    expired_null: int = 0  # nulls where the newest row is older than the TTL now
    expired_value: int = 0  # the newest row's values although older than the TTL now
    unknown_null: int = 0  # nulls for a driver without rows
    wrong: int = 0
    examples: list[str] = field(default_factory=list)

    def add(
        self,
        ids: Sequence[int],
        columns: dict[str, list[Any]],
        latest: dict[int, tuple[int, list[float]]],
        now_us: int,
    ) -> None:
        for row, driver in enumerate(ids):
            got = [columns[name][row] for name in FEATURES]
            got = [None if isinstance(v, float) and math.isnan(v) else v for v in got]
            self.rows += 1
            known = latest.get(int(driver))
            if known is None:
                ok = all(v is None for v in got)
                self.unknown_null += ok
            else:
                ts, values = known
                expired = now_us - ts > TTL_US
                if got == values:
                    ok = True
                    self.latest += 1
                    self.expired_value += expired
                else:
                    ok = expired and all(v is None for v in got)
                    self.expired_null += ok
            if not ok:
                self.wrong += 1
                if len(self.examples) < 5:
                    self.examples.append(f"driver {driver}: got {got[:3]}..., newest {known}")


# ---------------------------------------------------------------------------------------
# The data (written once by the orchestrator, under .venv/bin/python).


def write_data(data_dir: Path, sizes: Sizes) -> dict[str, Any]:
    """stats.parquet, entities.parquet, latest.parquet, lookups.json and manifest.json.

    Feature rows: ``sizes.rows`` rows in time order, drivers uniform over
    1..``sizes.entities``, times uniform over the 90 days before the current minute,
    features standard normal. No driver has two rows at the same microsecond, so "the
    latest row" is never ambiguous. The data ends at the current minute because online
    reads judge a value's TTL against the wall clock.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    started = time.perf_counter()
    rng = np.random.default_rng(SEED)
    span = DAYS * DAY_US
    end_us = int(time.time()) // 60 * 60 * 1_000_000
    start_us = end_us - span
    ids = rng.integers(1, sizes.entities + 1, sizes.rows, dtype=np.int64)
    offsets = rng.integers(0, span, sizes.rows, dtype=np.int64)
    while True:  # ties of driver and time are redrawn (there are almost never any)
        keys = ids * span + offsets
        ordered = np.sort(keys)
        tied = ordered[1:][ordered[1:] == ordered[:-1]]
        if not len(tied):
            break
        redraw = np.isin(keys, tied)
        offsets[redraw] = rng.integers(0, span, int(redraw.sum()), dtype=np.int64)
    by_time = np.argsort(offsets, kind="stable")
    ids, offsets = ids[by_time], offsets[by_time]
    values = [rng.standard_normal(sizes.rows) for _ in FEATURES]
    timestamps = pa.array(start_us + offsets, pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    table = pa.table({KEY: ids, TS: timestamps, **dict(zip(FEATURES, values, strict=True))})
    pq.write_table(table, data_dir / STATS_FILE, compression="zstd")
    del table, timestamps

    # Each driver's newest row: the last of its group in (driver, time) order.
    by_key = np.argsort(ids * span + offsets)
    grouped = ids[by_key]
    last = by_key[np.flatnonzero(np.r_[grouped[1:] != grouped[:-1], True])]
    latest: dict[str, Any] = {KEY: ids[last], "ts_us": start_us + offsets[last]}
    latest.update({name: v[last] for name, v in zip(FEATURES, values, strict=True)})
    pq.write_table(pa.table(latest), data_dir / LATEST_FILE)

    entity_info = write_entities(data_dir, sizes, rng, ids, offsets, start_us)
    fresh = latest[KEY][latest["ts_us"] >= end_us - FRESH_US]
    lookups = lookup_ids(rng, sizes, fresh)
    (data_dir / LOOKUPS_FILE).write_text(json.dumps(lookups))
    manifest = {
        "seed": SEED,
        "sizes": asdict(sizes),
        "start_us": start_us,
        "end_us": end_us,
        "start": utc(start_us).isoformat(),
        "end": utc(end_us).isoformat(),
        "days": DAYS,
        "ttl_days": TTL_DAYS,
        "entities_with_rows": len(last),
        "fresh_entities": len(fresh),
        "entity_rows": entity_info,
        "files": {
            name: (data_dir / name).stat().st_size
            for name in (STATS_FILE, ENTITIES_FILE, LATEST_FILE)
        },
        "seconds": time.perf_counter() - started,
    }
    (data_dir / MANIFEST_FILE).write_text(json.dumps(manifest))
    return manifest


def write_entities(
    data_dir: Path, sizes: Sizes, rng: Any, ids: Any, offsets: Any, start_us: int
) -> dict[str, Any]:
    """The entity rows of the training frame, shuffled, with four kinds of special rows.

    Most rows are a random driver at a random time. 0.1% name drivers that have no
    feature rows; 0.1% have exactly the time of one of the driver's feature rows ("at or
    before" must include it); 0.1% are exactly the TTL after one ("within the TTL" is
    inclusive); 1% repeat another row exactly. Their positions go into the manifest.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = sizes.entity_rows
    special = max(1, n // 1_000)
    repeats = n // 100
    plain = n - 3 * special - repeats
    span = DAYS * DAY_US
    parts_ids = [rng.integers(1, sizes.entities + 1, plain, dtype=np.int64)]
    parts_off = [rng.integers(0, span, plain, dtype=np.int64)]
    parts_ids.append(np.arange(sizes.entities + 1, sizes.entities + 1 + special, dtype=np.int64))
    parts_off.append(rng.integers(0, span, special, dtype=np.int64))
    exact = rng.choice(len(ids), special, replace=False)
    parts_ids.append(ids[exact])
    parts_off.append(offsets[exact])
    early = np.flatnonzero(offsets < span - TTL_US)
    edge = early[rng.choice(len(early), special, replace=False)]
    parts_ids.append(ids[edge])
    parts_off.append(offsets[edge] + TTL_US)
    kinds = np.repeat(np.arange(4), [plain, special, special, special])
    all_ids, all_off = np.concatenate(parts_ids), np.concatenate(parts_off)
    copied = rng.choice(len(all_ids), repeats, replace=True)
    all_ids = np.concatenate([all_ids, all_ids[copied]])
    all_off = np.concatenate([all_off, all_off[copied]])
    kinds = np.concatenate([kinds, np.full(repeats, 4)])
    order = rng.permutation(n)
    all_ids, all_off, kinds = all_ids[order], all_off[order], kinds[order]
    timestamps = pa.array(start_us + all_off, pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    pq.write_table(pa.table({KEY: all_ids, TS: timestamps}), data_dir / ENTITIES_FILE)
    positions = {
        name: np.flatnonzero(kinds == code).tolist()
        for code, name in enumerate(("plain", "unknown_driver", "exact_time", "ttl_edge", "repeat"))
    }
    return {
        "rows": n,
        "counts": {name: len(rows) for name, rows in positions.items()},
        "positions": {name: rows for name, rows in positions.items() if name != "plain"},
    }


def lookup_ids(rng: Any, sizes: Sizes, fresh: Any) -> dict[str, Any]:
    """The drivers each online lookup asks for, the same for every tool.

    ``single`` and ``batches`` are uniform over drivers with a fresh value; ``skewed``
    follows a Zipf law (s = 1.2) over them, for the cache's hit rate; ``http`` feeds the
    load generator; ``probe`` is checked value by value against the newest rows.
    """
    import numpy as np

    calls = sizes.warmup + sizes.lookups
    ranks = np.minimum(rng.zipf(1.2, calls), len(fresh)) - 1
    popular = rng.permutation(fresh)
    http = int(sizes.http_rate * (sizes.http_seconds + 2)) + 10_000
    return {
        "single": rng.choice(fresh, calls).tolist(),
        "batches": rng.choice(fresh, (calls, sizes.batch)).tolist(),
        "skewed": popular[ranks].tolist(),
        "http": rng.choice(fresh, http).tolist(),
        "probe": rng.choice(fresh, HTTP_PROBES, replace=False).tolist(),
    }


# ---------------------------------------------------------------------------------------
# Worker context and helpers for frames (pandas is in every virtualenv).


@dataclass(frozen=True)
class Context:
    """What a worker is given: the shared data, its own scratch directory, the store."""

    data_dir: Path
    workdir: Path
    backend: str
    sizes: Sizes
    manifest: dict[str, Any]

    @property
    def start(self) -> dt.datetime:
        return utc(int(self.manifest["start_us"]))

    @property
    def end(self) -> dt.datetime:
        return utc(int(self.manifest["end_us"]))

    @property
    def day_89(self) -> dt.datetime:
        return self.end - dt.timedelta(days=1)


def micros(series: Any) -> Any:
    """Timestamps as int64 microseconds since the epoch, whatever their unit and zone."""
    import pandas as pd

    values = pd.to_datetime(series, utc=True).dt.tz_localize(None)
    return values.astype("datetime64[us]").astype("int64").to_numpy()


def feature_matrix(frame: Any) -> Any:
    """The 10 feature columns of a frame as one float64 array, nulls as NaN."""
    import numpy as np

    return np.column_stack(
        [frame[name].to_numpy(dtype="float64", na_value=np.nan) for name in FEATURES]
    )


def differing_rows(left: Any, right: Any) -> Any:
    """Rows of two feature matrices that differ anywhere (two NaNs count as equal)."""
    import numpy as np

    same = (left == right) | (np.isnan(left) & np.isnan(right))
    return ~same.all(axis=1)


def compare_in_order(frame: Any, reference: Any) -> dict[str, Any]:
    """A frame against the DuckDB script's, row by row: same keys, order and values."""
    import numpy as np

    result: dict[str, Any] = {"rows": len(frame), "reference_rows": len(reference)}
    if len(frame) != len(reference):
        result.update(same_keys_in_order=False, mismatched_rows=None, matches=False)
        return result
    same_keys = bool(
        np.array_equal(frame[KEY].to_numpy(), reference[KEY].to_numpy())
        and np.array_equal(micros(frame[TS]), micros(reference[TS]))
    )
    values = feature_matrix(frame)
    mismatched = int(differing_rows(values, feature_matrix(reference)).sum())
    result.update(
        same_keys_in_order=same_keys,
        mismatched_rows=mismatched,
        null_rows=int(np.isnan(values).all(axis=1).sum()),
        matches=same_keys and mismatched == 0,
    )
    return result


def timed_calls(action: Callable[[], None], sampler: RssSampler) -> dict[str, Any]:
    """The first call on its own, then ``REPEATS`` more; peak RSS of each phase."""
    sampler.reset()
    start = time.perf_counter()
    action()
    first_s = time.perf_counter() - start
    first_peak = sampler.peak_mb()
    sampler.reset()
    samples = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return {
        "first_s": first_s,
        "first_peak_rss_mb": first_peak,
        "samples_s": samples,
        "median_s": statistics.median(samples),
        "warm_peak_rss_mb": sampler.peak_mb(),
    }


# ---------------------------------------------------------------------------------------
# Workload 1: the training frame.


def duckdb_training_sql(stats: Path) -> str:
    """The hand-written point-in-time join: ASOF LEFT JOIN, then the TTL, in input order."""
    ttl = f"INTERVAL '{TTL_DAYS * 86_400} seconds'"
    values = ", ".join(
        f"CASE WHEN f.{TS} >= e.{TS} - {ttl} THEN f.{name} END AS {name}" for name in FEATURES
    )
    return (
        f"SELECT e.{KEY}, e.{TS}, {values} "
        f"FROM entity_rows e ASOF LEFT JOIN read_parquet('{stats}') f "
        f"ON e.{KEY} = f.{KEY} AND e.{TS} >= f.{TS} "
        "ORDER BY e.row_index"
    )


def training_duckdb(ctx: Context, sampler: RssSampler) -> dict[str, Any]:
    """The DuckDB script, timed like forgeml; its frame becomes everyone's reference."""
    import duckdb
    import numpy as np
    import pandas as pd

    entity = pd.read_parquet(ctx.data_dir / ENTITIES_FILE)
    sql = duckdb_training_sql(ctx.data_dir / STATS_FILE)
    state: dict[str, Any] = {}

    def action() -> None:
        state["frame"] = None
        connection = duckdb.connect()
        try:
            connection.execute("SET TimeZone = 'UTC'")
            connection.register("entity_rows", entity.assign(row_index=np.arange(len(entity))))
            state["frame"] = connection.sql(sql).df()
        finally:
            connection.close()

    timing = timed_calls(action, sampler)
    frame = state["frame"]
    check(len(frame) == len(entity), f"the DuckDB script returned {len(frame)} rows")
    brute = brute_force_check(ctx, frame)
    check(brute["mismatches"] == 0, f"the DuckDB script differs from numpy: {brute}")
    frame.to_parquet(ctx.data_dir / REFERENCE_FILE)
    return {
        **timing,
        "rows_in": len(entity),
        "rows_out": len(frame),
        "null_rows": int(np.isnan(feature_matrix(frame)).all(axis=1).sum()),
        "independent_check": brute,
    }


def brute_force_check(ctx: Context, frame: Any) -> dict[str, Any]:
    """Recompute sampled rows of a frame with numpy binary searches, no join engine.

    The sample is 2,000 random rows plus up to 250 of each kind of special row.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(ctx.data_dir / STATS_FILE)
    ids = table[KEY].to_numpy()
    times = table[TS].cast(pa.int64()).to_numpy()
    order = np.lexsort((times, ids))
    ids_sorted, times_sorted = ids[order], times[order]
    values = np.column_stack([table[name].to_numpy() for name in FEATURES])[order]
    del table
    entity = pq.read_table(ctx.data_dir / ENTITIES_FILE)
    entity_ids = entity[KEY].to_numpy()
    entity_times = entity[TS].cast(pa.int64()).to_numpy()
    rng = np.random.default_rng(SEED + 1)
    sample = set(rng.choice(len(entity_ids), min(2_000, len(entity_ids)), replace=False).tolist())
    for rows in ctx.manifest["entity_rows"]["positions"].values():
        sample.update(rows[:250])
    got = feature_matrix(frame)
    mismatches = with_value = 0
    for row in sorted(sample):
        driver, when = entity_ids[row], entity_times[row]
        low = np.searchsorted(ids_sorted, driver, "left")
        high = np.searchsorted(ids_sorted, driver, "right")
        last = low + np.searchsorted(times_sorted[low:high], when, "right") - 1
        expected = np.full(len(FEATURES), np.nan)
        if last >= low and times_sorted[last] >= when - TTL_US:
            expected = values[last]
            with_value += 1
        if differing_rows(expected[None, :], got[row][None, :])[0]:
            mismatches += 1
    return {"rows_checked": len(sample), "with_value": with_value, "mismatches": mismatches}


def fm_view(ctx: Context) -> Any:
    """The forgeml entity and feature view, applied to the worker's fresh store."""
    import forgeml as fm

    driver = fm.Entity("driver", join_keys=[KEY])
    stats = fm.FeatureView(
        name=VIEW,
        entities=[driver],
        source=str(ctx.data_dir / STATS_FILE),
        timestamp_field=TS,
        features=list(FEATURES),
        ttl=dt.timedelta(days=TTL_DAYS),
    )
    fm.features.apply([driver, stats])
    return stats


def training_forgeml(ctx: Context, sampler: RssSampler) -> dict[str, Any]:
    """``fm.features.training_frame``: the first call (one-time checks), then warm calls."""
    import pandas as pd

    import forgeml as fm

    stats = fm_view(ctx)
    entity = pd.read_parquet(ctx.data_dir / ENTITIES_FILE)
    state: dict[str, Any] = {}

    def action() -> None:
        state["frame"] = None
        state["frame"] = fm.features.training_frame(entity, features=[stats])

    timing = timed_calls(action, sampler)
    frame = state["frame"]
    reference_path = ctx.data_dir / REFERENCE_FILE
    comparison = (
        compare_in_order(frame, pd.read_parquet(reference_path))
        if reference_path.exists()
        else None
    )
    return {
        **timing,
        "rows_in": len(entity),
        "rows_out": len(frame),
        "comparison": comparison,
        "offline_modes": offline_modes(),
    }


def offline_modes() -> list[str]:
    """How forgeml's first call decided to read the view's rows, from its cache files.

    "direct": the checks found no two rows with the same driver and time, so the
    Parquet source is read as it is; "built": a sorted, de-duplicated copy was written.
    """
    cache = Path(os.environ["FORGEML_HOME"]) / "cache" / "features"
    modes = {str(read_json(path).get("mode")) for path in cache.glob("*.json")}
    return sorted(modes)


def first_call_label(figures: dict[str, Any]) -> str:
    modes = figures.get("offline_modes") or []
    if modes == ["direct"]:
        return "first call (checks the source once, then reads it directly)"
    if modes == ["built"]:
        return "first call (builds the sorted offline table)"
    return "first call"


def feast_module(name: str) -> Any:
    """A Feast module, imported by name (Feast is only installed in its own virtualenv)."""
    return importlib.import_module(name)


def feast_store(ctx: Context) -> Any:
    """A Feast repository in the worker's directory: local provider, file offline store.

    The registry is applied once; later workers on the same directory reuse it.
    """
    feast = feast_module("feast")
    repo = ctx.workdir / "feast-repo"
    repo.mkdir(parents=True, exist_ok=True)
    if ctx.backend == "redis":
        online = f'  type: redis\n  connection_string: "{FEAST_REDIS}"\n'
    else:
        online = f"  type: sqlite\n  path: {repo / 'online.db'}\n"
    (repo / "feature_store.yaml").write_text(
        "project: bench\n"
        f"registry: {repo / 'registry.db'}\n"
        "provider: local\n"
        f"online_store:\n{online}"
        "offline_store:\n  type: file\n"
        "entity_key_serialization_version: 3\n"
    )
    store = feast.FeatureStore(repo_path=str(repo))
    if not (repo / "registry.db").exists():
        types = feast_module("feast.types")
        driver = feast.Entity(name="driver", join_keys=[KEY], value_type=feast.ValueType.INT64)
        source = feast.FileSource(path=str(ctx.data_dir / STATS_FILE), timestamp_field=TS)
        view = feast.FeatureView(
            name=VIEW,
            entities=[driver],
            ttl=dt.timedelta(days=TTL_DAYS),
            schema=[feast.Field(name=name, dtype=types.Float64) for name in FEATURES],
            source=source,
            online=True,
        )
        store.apply([driver, view])
    return store


def training_feast(ctx: Context, sampler: RssSampler) -> dict[str, Any]:
    """``get_historical_features(...).to_df()`` in chunks of entity rows.

    One call for all 1,000,000 rows does not fit in 16 GB, so the rows go in chunks of
    100,000, in order. No new chunk starts once the budget is spent; the rate of the
    chunks done then gives an estimate for all rows.
    """
    import pandas as pd

    store = feast_store(ctx)
    entity = pd.read_parquet(ctx.data_dir / ENTITIES_FILE)
    size = ctx.sizes.feast_chunk
    chunks = [entity.iloc[i : i + size] for i in range(0, len(entity), size)]
    outputs, seconds, peaks = [], [], []
    started = time.perf_counter()
    for number, chunk in enumerate(chunks):
        if time.perf_counter() - started > ctx.sizes.feast_budget_s:
            log(f"  Feast: budget spent after {number} of {len(chunks)} chunks")
            break
        sampler.reset()
        start = time.perf_counter()
        frame = store.get_historical_features(entity_df=chunk, features=REFS).to_df()
        seconds.append(time.perf_counter() - start)
        peaks.append(sampler.peak_mb())
        outputs.append(frame[[KEY, TS, *FEATURES]])
        log(f"  Feast chunk {number + 1}/{len(chunks)}: {seconds[-1]:.1f} s, {len(frame):,} rows")
    done = chunks[: len(outputs)]
    rows_done = sum(len(c) for c in done)
    total_s = sum(seconds)
    reference_path = ctx.data_dir / REFERENCE_FILE
    comparison = (
        compare_feast(done, outputs, pd.read_parquet(reference_path))
        if reference_path.exists()
        else None
    )
    return {
        "chunk_rows": size,
        "chunks": len(chunks),
        "chunks_done": len(outputs),
        "rows_in": rows_done,
        "rows_out": sum(len(o) for o in outputs),
        "chunk_s": seconds,
        "chunk_peak_rss_mb": peaks,
        "total_s": total_s,
        "rows_per_s": rows_done / total_s if total_s else None,
        "estimated_s": total_s * len(entity) / rows_done if rows_done else None,
        "extrapolated": rows_done < len(entity),
        "peak_rss_mb": max(peaks, default=None),
        "comparison": comparison,
    }


def compare_feast(chunks: list[Any], outputs: list[Any], reference: Any) -> dict[str, Any]:
    """Feast's rows against the reference, matched on (driver, time), chunk by chunk.

    Feast's file offline store returns one row per distinct (driver, time) of a call and
    drops those with no value within the TTL, in its own order; every returned row must
    carry the reference's values.
    """
    import numpy as np
    import pandas as pd

    reference = reference.assign(ts_us=micros(reference[TS]))
    offset = 0
    counts = dict.fromkeys(
        (
            "rows_in",
            "distinct_in",
            "rows_out",
            "repeats_merged",
            "dropped",
            "dropped_without_value",
            "dropped_with_value",
            "unmatched_out",
            "mismatched_out",
            "null_rows_out",
        ),
        0,
    )
    for chunk, output in zip(chunks, outputs, strict=True):
        expected = reference.iloc[offset : offset + len(chunk)].drop_duplicates([KEY, "ts_us"])
        offset += len(chunk)
        got = pd.DataFrame({KEY: output[KEY].to_numpy(), "ts_us": micros(output[TS])})
        got[list(FEATURES)] = feature_matrix(output)
        merged = got.merge(
            expected, on=[KEY, "ts_us"], how="left", suffixes=("", "_ref"), indicator=True
        )
        matched = merged["_merge"] == "both"
        ref_values = np.column_stack([merged[f"{n}_ref"].to_numpy() for n in FEATURES])
        wrong = differing_rows(feature_matrix(merged), ref_values) & matched.to_numpy()
        present = expected.merge(got[[KEY, "ts_us"]], on=[KEY, "ts_us"], how="left", indicator=True)
        missing = present[present["_merge"] == "left_only"]
        missing_empty = int(np.isnan(feature_matrix(missing)).all(axis=1).sum())
        counts["rows_in"] += len(chunk)
        counts["distinct_in"] += len(expected)
        counts["rows_out"] += len(output)
        counts["repeats_merged"] += len(chunk) - len(expected)
        counts["dropped"] += len(missing)
        counts["dropped_without_value"] += missing_empty
        counts["dropped_with_value"] += len(missing) - missing_empty
        counts["unmatched_out"] += int((~matched).sum())
        counts["mismatched_out"] += int(wrong.sum())
        counts["null_rows_out"] += int(np.isnan(feature_matrix(output)).all(axis=1).sum())
    counts["matches"] = counts["unmatched_out"] == 0 and counts["mismatched_out"] == 0
    return counts


# ---------------------------------------------------------------------------------------
# Workload 2: materialization; also the set-up of the online and HTTP workloads.

MARKER_FILE = "materialized.json"


def verify_ids(ctx: Context, count: int) -> list[int]:
    """Drivers read back after materialization: a seeded sample, the same for both tools."""
    import random

    drivers = range(1, ctx.sizes.entities + 1)
    return sorted(random.Random(SEED).sample(drivers, min(count, len(drivers))))


def verify_online(
    ctx: Context, lookup: Callable[[list[int]], dict[str, list[Any]]], count: int
) -> dict[str, Any]:
    """Read ``count`` drivers back, 1,000 per call, and compare with their newest rows."""
    latest = latest_values(ctx.data_dir)
    ids = verify_ids(ctx, count)
    result = OnlineCheck()
    for i in range(0, len(ids), 1_000):
        part = ids[i : i + 1_000]
        result.add(part, lookup(part), latest, time.time_ns() // 1_000)
    return asdict(result)


def fm_lookup(cache: bool) -> Callable[[list[int]], dict[str, list[Any]]]:
    import forgeml as fm

    def lookup(ids: list[int]) -> dict[str, list[Any]]:
        return fm.features.online({KEY: ids}, features=REFS, cache=cache)

    return lookup


def feast_lookup(store: Any) -> Callable[[list[int]], dict[str, list[Any]]]:
    def lookup(ids: list[int]) -> dict[str, list[Any]]:
        response = store.get_online_features(features=REFS, entity_rows={KEY: ids})
        columns: dict[str, list[Any]] = response.to_dict()
        return columns

    return lookup


@dataclass(frozen=True)
class Materializer:
    """One tool's three materialization calls and its online read-back."""

    full: Callable[[dt.datetime], Any]
    incremental: Callable[[dt.datetime], Any]
    describe: Callable[[Any], dict[str, Any]]
    lookup: Callable[[list[int]], dict[str, list[Any]]]


def fm_materializer(ctx: Context) -> Materializer:
    import forgeml as fm

    stats = fm_view(ctx)

    def describe(results: Any) -> dict[str, Any]:
        first = results[0]
        return {
            "rows_read": first.rows_read,
            "entities_written": first.entities_written,
            "ran_full": first.full,
        }

    return Materializer(
        full=lambda end: fm.features.materialize([stats], end=end, full=True),
        incremental=lambda end: fm.features.materialize([stats], end=end),
        describe=describe,
        lookup=fm_lookup(cache=False),
    )


def feast_materializer(ctx: Context) -> Materializer:
    store = feast_store(ctx)
    return Materializer(
        full=lambda end: store.materialize(
            start_date=ctx.start, end_date=end, feature_views=[VIEW]
        ),
        incremental=lambda end: store.materialize_incremental(end_date=end, feature_views=[VIEW]),
        describe=lambda _result: {},
        lookup=feast_lookup(store),
    )


MATERIALIZERS: dict[str, Callable[[Context], Materializer]] = {
    "forgeml": fm_materializer,
    "feast": feast_materializer,
}


def materialize_workload(ctx: Context, tool: str, sampler: RssSampler) -> dict[str, Any]:
    """Full up to day 89 on a fresh store, incremental to day 90, then full again.

    After the incremental run a sample of 10,000 drivers is read back and compared with
    each driver's newest row; after the repeated full run, 1,000.
    """
    materializer = MATERIALIZERS[tool](ctx)
    steps: dict[str, dict[str, Any]] = {}

    def step(name: str, call: Callable[[], Any]) -> None:
        sampler.reset()
        start = time.perf_counter()
        result = call()
        seconds = time.perf_counter() - start
        steps[name] = {
            "seconds": seconds,
            "peak_rss_mb": sampler.peak_mb(),
            **materializer.describe(result),
        }
        log(f"  {tool} {name}: {seconds:.1f} s")

    step("full", lambda: materializer.full(ctx.day_89))
    step("incremental", lambda: materializer.incremental(ctx.end))
    after_incremental = verify_online(ctx, materializer.lookup, VERIFY_ENTITIES)
    check(after_incremental["wrong"] == 0, f"{tool} online values: {after_incremental}")
    step("full_again", lambda: materializer.full(ctx.end))
    after_full = verify_online(ctx, materializer.lookup, 1_000)
    check(after_full["wrong"] == 0, f"{tool} online values after a full run: {after_full}")
    (ctx.workdir / MARKER_FILE).write_text(json.dumps({"end": ctx.end.isoformat()}))
    return {"steps": steps, "verified": after_incremental, "verified_after_full": after_full}


def prepare_workload(ctx: Context, tool: str, sampler: RssSampler) -> dict[str, Any]:
    """Untimed set-up for the online and HTTP workloads: one full run up to the end."""
    materializer = MATERIALIZERS[tool](ctx)
    start = time.perf_counter()
    materializer.full(ctx.end)
    (ctx.workdir / MARKER_FILE).write_text(json.dumps({"end": ctx.end.isoformat()}))
    return {"seconds": time.perf_counter() - start}


# ---------------------------------------------------------------------------------------
# Workload 3: online lookups in process.


def time_lookups(
    call: Callable[[Any], dict[str, list[Any]]], arguments: Sequence[Any], warmup: int
) -> tuple[dict[str, Any], list[dict[str, list[Any]]]]:
    """``warmup`` untimed calls, then one timed call per remaining argument."""
    for argument in arguments[:warmup]:
        call(argument)
    seconds: list[float] = []
    results: list[dict[str, list[Any]]] = []
    clock = time.perf_counter_ns
    for argument in arguments[warmup:]:
        start = clock()
        result = call(argument)
        seconds.append((clock() - start) / 1e9)
        results.append(result)
    return latency_summary(seconds), results


def check_results(
    ctx: Context, arguments: Sequence[Any], results: list[dict[str, list[Any]]], many: bool
) -> dict[str, Any]:
    """Every value every timed call returned, against the drivers' newest rows."""
    latest = latest_values(ctx.data_dir)
    now_us = time.time_ns() // 1_000
    outcome = OnlineCheck()
    for argument, columns in zip(arguments[ctx.sizes.warmup :], results, strict=True):
        outcome.add(argument if many else [argument], columns, latest, now_us)
    return asdict(outcome)


def online_series(
    ctx: Context,
    single: Callable[[int], dict[str, list[Any]]],
    many: Callable[[list[int]], dict[str, list[Any]]],
    lookups: dict[str, Any],
    label: str,
) -> dict[str, Any]:
    """1-entity and 100-entity lookups through one pair of callables, checked."""
    out: dict[str, Any] = {}
    for name, call, arguments, is_many in (
        ("single", single, lookups["single"], False),
        ("batch", many, lookups["batches"], True),
    ):
        summary, results = time_lookups(call, arguments, ctx.sizes.warmup)
        verified = check_results(ctx, arguments, results, is_many)
        check(verified["wrong"] == 0, f"{label} {name} lookups returned wrong values: {verified}")
        check(
            verified["latest"] == verified["rows"], f"{label} {name}: not every value is the newest"
        )
        out[name] = {**summary, "entities_per_call": len(arguments[0]) if is_many else 1}
        out[name]["verified"] = verified
    return out


def online_forgeml(ctx: Context, lookups: dict[str, Any]) -> dict[str, Any]:
    """``fm.features.online`` with cache=False (headline), then a cached client."""
    import forgeml as fm

    def single(driver: int) -> dict[str, list[Any]]:
        return fm.features.online({KEY: [driver]}, features=REFS, cache=False)

    def many(drivers: list[int]) -> dict[str, list[Any]]:
        return fm.features.online({KEY: drivers}, features=REFS, cache=False)

    out = online_series(ctx, single, many, lookups, "forgeml")
    cached: dict[str, Any] = {}
    for name, arguments in (("uniform", lookups["single"]), ("zipf", lookups["skewed"])):
        client = fm.features.FeatureClient(cache=True)

        def lookup(driver: int, client: Any = client) -> dict[str, list[Any]]:
            columns: dict[str, list[Any]] = client.get({KEY: [driver]}, REFS)
            return columns

        summary, results = time_lookups(lookup, arguments, ctx.sizes.warmup)
        verified = check_results(ctx, arguments, results, False)
        check(verified["wrong"] == 0, f"forgeml cached lookups returned wrong values: {verified}")
        stats = client.stats()["cache"]
        distinct = len(set(arguments))
        cached[name] = {**summary, "cache": stats, "distinct_drivers": distinct}
    out["cached"] = cached
    return out


def online_feast(ctx: Context, lookups: dict[str, Any]) -> dict[str, Any]:
    """``FeatureStore.get_online_features(...).to_dict()``."""
    store = feast_store(ctx)
    lookup = feast_lookup(store)
    return online_series(ctx, lambda driver: lookup([driver]), lookup, lookups, "Feast")


def online_workload(ctx: Context, tool: str, sampler: RssSampler) -> dict[str, Any]:
    check((ctx.workdir / MARKER_FILE).exists(), "the online store was not materialized")
    sampler.stop()  # no thread competing for the interpreter while latencies are timed
    lookups = read_json(ctx.data_dir / LOOKUPS_FILE)
    return online_forgeml(ctx, lookups) if tool == "forgeml" else online_feast(ctx, lookups)


def training_workload(ctx: Context, tool: str, sampler: RssSampler) -> dict[str, Any]:
    runner = {"forgeml": training_forgeml, "feast": training_feast, "duckdb": training_duckdb}
    return runner[tool](ctx, sampler)


WORKERS: dict[str, Callable[[Context, str, RssSampler], dict[str, Any]]] = {
    "training": training_workload,
    "materialize": materialize_workload,
    "online": online_workload,
    "prepare": prepare_workload,
}
DISTRIBUTIONS = {
    "forgeml": ("forgeml", "duckdb", "pyarrow", "pandas", "redis"),
    "feast": ("feast", "dask", "pandas", "pyarrow", "redis"),
    "duckdb": ("duckdb", "pandas", "pyarrow"),
}


def run_worker(args: argparse.Namespace) -> None:
    """One workload of one tool; figures as JSON on the real stdout, the rest on stderr."""
    real_stdout = sys.stdout
    sys.stdout = sys.stderr
    data_dir = args.data_dir.resolve()
    sizes, manifest = load_sizes(data_dir)
    ctx = Context(data_dir, args.workdir.resolve(), args.backend, sizes, manifest)
    # Run by hand, a worker keeps forgeml's store in its workdir too (the orchestrator
    # has set these already).
    for key, value in worker_env(ctx.workdir, ctx.backend).items():
        if key.startswith("FORGEML_") or key in WORKER_ENV:
            os.environ.setdefault(key, value)
    sampler = RssSampler()
    started = time.perf_counter()
    figures = WORKERS[args.workload[0]](ctx, args.tool, sampler)
    figures["workload_wall_s"] = time.perf_counter() - started
    figures["versions"] = distribution_versions(DISTRIBUTIONS[args.tool])
    figures["python"] = platform.python_version()
    real_stdout.write(json.dumps(figures, indent=None if args.json else 2, default=str) + "\n")
    real_stdout.flush()


# ---------------------------------------------------------------------------------------
# Workload 4: the feature servers over HTTP. The load generator is its own process
# (``--loadgen``), on asyncio streams with a minimal HTTP/1.1 client, so no client
# library's overhead sits between the schedule and the socket.

SERVER_PATHS = {"forgeml": "/v1/features", "feast": "/get-online-features"}


def request_body(driver: int) -> bytes:
    """The same JSON body for both servers: 10 feature references, one driver."""
    return json.dumps({"features": REFS, "entities": {KEY: [driver]}}).encode()


def http_request(port: int, path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def response_values(tool: str, body: bytes) -> list[Any]:
    """The 10 feature values of a 1-driver answer, from either server's JSON shape."""
    document = json.loads(body)
    if tool == "forgeml":
        columns = document["features"]
        return [columns[name][0] for name in FEATURES]
    names = document["metadata"]["feature_names"]
    results = document["results"]
    return [results[names.index(name)]["values"][0] for name in FEATURES]


class HttpConnection:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def close(self) -> None:
        writer, self.reader, self.writer = self.writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def request(self, data: bytes) -> tuple[int, bytes]:
        """Send one request and read its whole response: (status, body)."""
        if self.reader is None or self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        self.writer.write(data)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self._chunked(self.reader)
        else:
            body = b""
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, body

    @staticmethod
    async def _chunked(reader: asyncio.StreamReader) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int((await reader.readline()).split(b";")[0].strip(), 16)
            if size == 0:
                await reader.readline()
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readline()


REQUEST_ERRORS = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError)


async def probe_server(
    tool: str, port: int, drivers: list[int], latest: dict[int, tuple[int, list[float]]]
) -> dict[str, Any]:
    """One request per probe driver, in turn; every answer is checked value by value."""
    connection = HttpConnection(port)
    statuses = []
    outcome = OnlineCheck()
    for driver in drivers:
        status, body = await connection.request(
            http_request(port, SERVER_PATHS[tool], request_body(driver))
        )
        statuses.append(status)
        if status == 200:
            values = response_values(tool, body)
            columns = {name: [value] for name, value in zip(FEATURES, values, strict=True)}
            outcome.add([driver], columns, latest, time.time_ns() // 1_000)
    await connection.close()
    return {"statuses": sorted(set(statuses)), **asdict(outcome)}


async def open_loop(
    port: int, requests: list[bytes], rate: float, seconds: float, drain_s: float
) -> dict[str, Any]:
    """Requests sent on a fixed schedule, whatever the answers; latency from the schedule.

    Request i is due at start + i / rate. It takes an idle connection of the pool (64),
    sends and reads the answer. Its latency runs from when it was due, so time spent
    waiting for a connection or for the generator itself counts (no coordinated
    omission). ``service`` runs from the actual send. Requests still open ``drain_s``
    after the last send are abandoned and count with the time they had waited.
    """
    loop = asyncio.get_running_loop()
    connections = [HttpConnection(port) for _ in range(HTTP_CONNECTIONS)]
    for connection in connections:
        await connection.open()
    idle: asyncio.Queue[HttpConnection] = asyncio.Queue()
    for connection in connections:
        idle.put_nowait(connection)
    count = int(rate * seconds)
    latency = [math.nan] * count
    service = [math.nan] * count
    lag = [0.0] * count
    status = [0] * count

    async def one(index: int, due: float) -> None:
        connection = await idle.get()
        sent = loop.time()
        try:
            code, _ = await connection.request(requests[index % len(requests)])
        except REQUEST_ERRORS:
            code = -1
            await connection.close()
        finally:
            idle.put_nowait(connection)
        done = loop.time()
        latency[index], service[index], status[index] = done - due, done - sent, code

    start = loop.time() + 0.05
    tasks = []
    for index in range(count):
        due = start + index / rate
        delay = due - loop.time()
        if delay > SPIN_S:  # epoll sleeps in whole milliseconds, rounded up
            await asyncio.sleep(delay - SPIN_S)
        while loop.time() < due:  # the last stretch: keep serving answers until due
            await asyncio.sleep(0)
        lag[index] = loop.time() - due
        tasks.append(asyncio.ensure_future(one(index, due)))
    sending_s = loop.time() - start
    pending: set[asyncio.Future[None]] = set()
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=drain_s)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    finish = loop.time()
    for connection in connections:
        await connection.close()
    unfinished = [i for i in range(count) if status[i] == 0]
    for index in unfinished:
        latency[index] = finish - (start + index / rate)
    completed = sum(1 for code in status if code == 200)
    ends = [start + i / rate + latency[i] for i in range(count) if status[i] == 200]
    return {
        "offered_rps": rate,
        "seconds": seconds,
        "sent": count,
        "completed": completed,
        "errors": sum(1 for code in status if code not in (0, 200)),
        "unfinished": len(unfinished),
        "sending_s": sending_s,
        "achieved_rps": completed / (max(ends) - start) if ends else 0.0,
        **latency_summary(latency),
        "service": latency_summary([s for s in service if not math.isnan(s)]),
        "generator_lag": latency_summary(lag),
    }


async def closed_loop(
    port: int, requests: list[bytes], width: int, seconds: float
) -> dict[str, Any]:
    """Maximum throughput: ``width`` connections, each sending its next request at once."""
    loop = asyncio.get_running_loop()
    connections = [HttpConnection(port) for _ in range(width)]
    for connection in connections:
        await connection.open()
    latencies: list[float] = []
    errors = 0
    counter = iter(range(1 << 62))
    deadline = loop.time() + seconds

    async def worker(connection: HttpConnection) -> None:
        nonlocal errors
        while loop.time() < deadline:
            sent = loop.time()
            try:
                code, _ = await connection.request(requests[next(counter) % len(requests)])
            except REQUEST_ERRORS:
                code = -1
                await connection.close()
            if code == 200:
                latencies.append(loop.time() - sent)
            else:
                errors += 1

    start = loop.time()
    await asyncio.gather(*(worker(c) for c in connections))
    elapsed = loop.time() - start
    for connection in connections:
        await connection.close()
    return {
        "connections": width,
        "seconds": elapsed,
        "completed": len(latencies),
        "errors": errors,
        "rps": len(latencies) / elapsed,
        **latency_summary(latencies),
    }


def run_loadgen(args: argparse.Namespace) -> None:
    """Probe, 1 s of warm-up at the offered rate, the measured run, then max throughput."""
    data_dir = args.data_dir.resolve()
    sizes, _manifest = load_sizes(data_dir)
    lookups = read_json(data_dir / LOOKUPS_FILE)
    path = SERVER_PATHS[args.tool]
    requests = [http_request(args.port, path, request_body(d)) for d in lookups["http"]]
    warm_count = sizes.http_rate
    probe = asyncio.run(
        probe_server(args.tool, args.port, lookups["probe"], latest_values(data_dir))
    )
    check(probe["statuses"] == [200], f"{args.tool} server answered {probe['statuses']}")
    check(probe["latest"] == len(lookups["probe"]), f"{args.tool} server values: {probe}")
    warmup = asyncio.run(
        open_loop(args.port, requests[:warm_count], sizes.http_rate, 1.0, HTTP_DRAIN_S)
    )
    measured = asyncio.run(
        open_loop(
            args.port, requests[warm_count:], sizes.http_rate, sizes.http_seconds, HTTP_DRAIN_S
        )
    )
    throughput = asyncio.run(
        closed_loop(args.port, requests, THROUGHPUT_CONNECTIONS, sizes.throughput_seconds)
    )
    figures = {
        "probe": probe,
        "warmup": {k: warmup[k] for k in ("sent", "completed", "p50_ms", "p99_ms")},
        "open_loop": measured,
        "throughput": throughput,
    }
    print(json.dumps(figures, indent=None if args.json else 2))


# -- the servers (orchestrator side) ------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def server_command(tool: str, workdir: Path, port: int) -> tuple[list[str], Path]:
    """How each server is started, and in which directory.

    forgeml: ``forgeml features serve --no-cache`` (one process; the cache would answer
    repeated drivers without reading the store). Feast: ``feast serve`` with one worker,
    no access log and ``--max-requests 0``: by default its gunicorn worker restarts
    every 1,000 requests, which would land inside the measured window.
    """
    if tool == "forgeml":
        binary = FORGEML_VENV / "bin" / "forgeml"
        prefix = [str(binary)] if binary.exists() else [sys.executable, "-m", "forgeml"]
        command = [*prefix, "features", "serve", "--host", "127.0.0.1", "--port", str(port)]
        return [*command, "--no-cache"], workdir
    command = [str(FEAST_VENV / "bin" / "feast"), "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--no-access-log", "--max-requests", "0"]
    return command, workdir / "feast-repo"


def wait_ready(tool: str, port: int, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Until the server answers a real lookup with 200 (it may take seconds to start)."""
    import urllib.error
    import urllib.request

    body = request_body(1)
    url = f"http://127.0.0.1:{port}{SERVER_PATHS[tool]}"
    deadline = time.perf_counter() + timeout_s
    last = "no answer"
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the {tool} server exited with {process.returncode}")
        request = urllib.request.Request(
            url, data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                if answer.status == 200:
                    return
                last = f"status {answer.status}"
        except urllib.error.HTTPError as exc:
            last = f"status {exc.code}: {exc.read()[:200]!r}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.25)
    raise RuntimeError(f"the {tool} server was not ready after {timeout_s:.0f} s: {last}")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's pid, SIGKILL after 15 s; then its children, by pid."""
    import psutil

    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.Error:
        children = []
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    _gone, alive = psutil.wait_procs(children, timeout=10)
    for child in alive:
        with contextlib.suppress(psutil.Error):
            child.kill()


class TreeSampler:
    """The peak resident memory of a process and its children, sampled every 0.2 s."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.process = psutil.Process(pid)
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL_S):
            self.peak = max(self.peak, tree_rss_mb(self.process))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak


def http_workload(tool: str, workdir: Path, data_dir: Path) -> dict[str, Any]:
    """Start the tool's server on a free port, run the load generator, stop the server."""
    port = free_port()
    command, cwd = server_command(tool, workdir, port)
    log_path = workdir / f"server-{tool}.log"
    loadgen = [
        str(forgeml_python()),
        str(Path(__file__).resolve()),
        "--loadgen",
        "--tool",
        tool,
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--json",
    ]
    load = os.getloadavg()[0]
    with log_path.open("wb") as out:
        started = time.perf_counter()
        process = subprocess.Popen(
            command, cwd=cwd, env=worker_env(workdir, "sqlite"), stdout=out, stderr=out
        )
        try:
            wait_ready(tool, port, process, 120.0)
            ready_s = time.perf_counter() - started
            sampler = TreeSampler(process.pid)
            try:
                done = subprocess.run(
                    loadgen, capture_output=True, text=True, timeout=600, check=False
                )
            finally:
                peak = sampler.stop()
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            stop_process(process)
            lines = log_path.read_text(errors="replace").strip().splitlines()[-10:]
            log(f"  {tool} http FAILED: {exc}\n" + "\n".join(lines))
            return {"error": str(exc)}
        stop_process(process)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        log(f"  {tool} load generator FAILED (exit {done.returncode}):\n{tail}")
        return {"error": tail.splitlines()[-1] if tail else f"exit {done.returncode}"}
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    figures.update(
        load_average_before=load,
        server_command=" ".join([Path(command[0]).name, *command[1:]]),
        server_ready_s=ready_s,
        server_peak_rss_mb=peak,
    )
    return figures


# ---------------------------------------------------------------------------------------
# Orchestrator (runs under .venv/bin/python): environments, data, subprocesses, report.


def forgeml_python() -> Path:
    """The interpreter with forgeml installed: the repository's .venv, else this one."""
    candidate = FORGEML_VENV / "bin" / "python"
    return candidate if candidate.exists() else Path(sys.executable)


def interpreter(tool: str) -> Path:
    return FEAST_VENV / "bin" / "python" if tool == "feast" else forgeml_python()


def ensure_feast_venv() -> None:
    """Create benchmarks/.venv-feast with Feast (redis extra) unless one already works."""
    python = FEAST_VENV / "bin" / "python"
    if python.exists():
        probe = subprocess.run([str(python), "-c", FEAST_PROBE], capture_output=True, check=False)
        if probe.returncode == 0:
            return
        log(f"{FEAST_VENV} exists but cannot run {FEAST_PROBE!r}; installing into it again")
    else:
        base = shutil.which("python3") or sys.executable
        log(f"creating {FEAST_VENV}: {base} -m venv")
        subprocess.run([base, "-m", "venv", str(FEAST_VENV)], check=True)
    command = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    log(f"installing {' '.join(FEAST_PACKAGES)} into {FEAST_VENV.name} (a few minutes, once)")
    subprocess.run([*command, *FEAST_PACKAGES], check=True)


def worker_env(workdir: Path, backend: str) -> dict[str, str]:
    """A worker's environment: this one, with a fresh forgeml home and online store."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FORGEML_", "FEAST_"))}
    env.update(WORKER_ENV)
    online = REDIS_URL if backend == "redis" else f"sqlite:///{workdir / 'online.db'}"
    env.update(
        {
            "FORGEML_HOME": str(workdir / "home"),
            "FORGEML_DB_URL": f"sqlite:///{workdir / 'forgeml.db'}",
            "FORGEML_ARTIFACTS_URL": str(workdir / "artifacts"),
            "FORGEML_ONLINE_URL": online,
            "XDG_CONFIG_HOME": str(workdir / "config"),
        }
    )
    return env


@contextlib.contextmanager
def scratch_dir(label: str) -> Iterator[Path]:
    """A fresh temporary directory, removed afterwards whatever happens."""
    path = Path(tempfile.mkdtemp(prefix=f"forgeml-bench-{label}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def tree_rss_mb(process: Any) -> float:
    """Resident memory of a process and all its children, in MB (0 once it has gone)."""
    import psutil

    total = 0
    with contextlib.suppress(psutil.Error):
        total += process.memory_info().rss
        for child in process.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
    return total / 1e6


@dataclass
class Sampled:
    """How a worker ended, what it printed, and its memory over time."""

    code: int
    stdout: str
    stderr: str
    samples: list[list[float]]
    killed: str | None


def run_sampled(command: list[str], workdir: Path, env: dict[str, str], label: str) -> Sampled:
    """Run a worker, sampling its resident memory every 0.2 s from outside.

    The worker is killed, by its pid, when its process tree passes 12 GB or it runs
    past the time limit, so a tool that runs away can never take the machine down.
    Output goes to files, not pipes, so a chatty worker can never block.
    """
    import psutil

    out_path, err_path = workdir / f"{label}.out", workdir / f"{label}.err"
    samples: list[list[float]] = []
    killed = None
    with out_path.open("w") as out, err_path.open("w") as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=workdir, env=env, stdout=out, stderr=err)
        watched = psutil.Process(process.pid)
        while process.poll() is None:
            rss = tree_rss_mb(watched)
            elapsed = time.perf_counter() - started
            samples.append([round(elapsed, 3), round(rss, 1)])
            if rss > RSS_LIMIT_MB:
                killed = f"killed: resident memory passed {RSS_LIMIT_MB:,.0f} MB"
            elif elapsed > WORKER_TIMEOUT_S:
                killed = f"killed: still running after {WORKER_TIMEOUT_S} s"
            if killed:
                for child in watched.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        child.kill()
                process.kill()
                process.wait()
                break
            time.sleep(SAMPLE_INTERVAL_S)
    return Sampled(process.returncode, out_path.read_text(), err_path.read_text(), samples, killed)


def run_workload(
    tool: str, workload: str, workdir: Path, data_dir: Path, backend: str = "sqlite"
) -> dict[str, Any]:
    """One workload of one tool in a fresh interpreter; the figures it printed."""
    command = [
        str(interpreter(tool)),
        str(Path(__file__).resolve()),
        "--tool",
        tool,
        "--workload",
        workload,
        "--backend",
        backend,
        "--data-dir",
        str(data_dir),
        "--workdir",
        str(workdir),
        "--json",
    ]
    log(f"running {workload} with {TOOL_LABELS[tool]} ({BACKEND_LABELS[backend]}) ...")
    load = os.getloadavg()[0]
    started = time.perf_counter()
    run = run_sampled(command, workdir, worker_env(workdir, backend), f"{tool}-{workload}")
    wall = time.perf_counter() - started
    peak = max((s[1] for s in run.samples), default=None)
    if run.killed or run.code != 0:
        tail = "\n".join(run.stderr.strip().splitlines()[-15:])
        reason = run.killed or (tail.splitlines()[-1] if tail else f"exit {run.code}")
        log(f"  {tool} {workload} FAILED ({reason}):\n{tail}")
        return {"error": reason, "subprocess_wall_s": wall, "sampled_peak_rss_mb": peak}
    figures: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    figures["subprocess_wall_s"] = wall
    figures["sampled_peak_rss_mb"] = peak
    figures["load_average_before"] = load
    log(f"  done in {wall:.1f} s")
    return figures


def flush_redis() -> None:
    """Empty database 15 of the local Redis, the benchmark's own, and no other."""
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB)
    try:
        client.flushdb()
    finally:
        client.close()


def redis_reachable() -> str | None:
    """None when Redis answers, else why not."""
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        return str(exc)
    finally:
        client.close()
    return None


@dataclass
class Report:
    """Everything one invocation measured, in the shape the tables and files need."""

    data: dict[str, Any] = field(default_factory=dict)
    training: dict[str, dict[str, Any]] = field(default_factory=dict)
    materialize: dict[str, dict[str, Any]] = field(default_factory=dict)  # "tool/backend"
    prepare: dict[str, dict[str, Any]] = field(default_factory=dict)
    online: dict[str, dict[str, Any]] = field(default_factory=dict)
    http: dict[str, dict[str, Any]] = field(default_factory=dict)


def store_sequence(
    report: Report, tool: str, backend: str, wanted: list[str], data_dir: Path
) -> None:
    """materialize, online and http of one tool on one store, in one scratch directory."""
    key = f"{tool}/{backend}"
    with scratch_dir(f"{tool}-{backend}") as workdir:
        if backend == "redis":
            flush_redis()
        try:
            if "materialize" in wanted:
                report.materialize[key] = run_workload(
                    tool, "materialize", workdir, data_dir, backend
                )
            needs_store = "online" in wanted or "http" in wanted
            if needs_store and not (workdir / MARKER_FILE).exists():
                report.prepare[key] = run_workload(tool, "prepare", workdir, data_dir, backend)
            if "online" in wanted:
                report.online[key] = run_workload(tool, "online", workdir, data_dir, backend)
            if "http" in wanted:
                log(f"running http with {TOOL_LABELS[tool]} ({BACKEND_LABELS[backend]}) ...")
                started = time.perf_counter()
                report.http[tool] = http_workload(tool, workdir, data_dir)
                log(f"  done in {time.perf_counter() - started:.1f} s")
        finally:
            if backend == "redis":
                flush_redis()


def orchestrate(args: argparse.Namespace) -> int:
    """The whole benchmark: the Feast virtualenv, the data, every workload, the report."""
    started = time.perf_counter()
    source = source_state()
    only = args.workload or list(WORKLOADS)
    sizes = QUICK_SIZES if args.quick else SIZES
    backends = list(args.backend or BACKENDS)
    ensure_feast_venv()
    load = os.getloadavg()[0]
    if load > 0.5:
        log(f"the 1-minute load average is {load:.2f}: if other work is running, figures are noisy")
    report = Report()
    skipped: list[str] = []
    if "redis" in backends and ("materialize" in only or "online" in only):
        problem = redis_reachable()
        if problem is not None:
            log(f"Redis at {REDIS_HOST}:{REDIS_PORT} does not answer ({problem}); skipping it")
            backends.remove("redis")
            skipped.append(f"Redis: {problem}")
    with scratch_dir("data") as data_dir:
        log(f"writing {sizes.rows:,} feature rows and {sizes.entity_rows:,} entity rows ...")
        manifest = write_data(data_dir, sizes)
        report.data = {k: v for k, v in manifest.items() if k != "entity_rows"}
        report.data["entity_rows"] = {
            k: v for k, v in manifest["entity_rows"].items() if k != "positions"
        }
        log(f"  done in {manifest['seconds']:.1f} s")
        if "training" in only:
            for tool in ("duckdb", "forgeml", "feast"):  # the DuckDB frame is the reference
                with scratch_dir(f"{tool}-training") as workdir:
                    report.training[tool] = run_workload(tool, "training", workdir, data_dir)
        for tool in STORE_TOOLS:
            for backend in backends:
                wanted = [
                    w
                    for w in ("materialize", "online", "http")
                    if w in only and (w != "http" or backend == "sqlite")
                ]
                if wanted:
                    store_sequence(report, tool, backend, wanted, data_dir)
    total_s = time.perf_counter() - started
    source["src_changed_during_run"] = source_state()["src_digest"] != source["src_digest"]
    if source["src_changed_during_run"]:
        log("WARNING: files under src/ changed while the benchmark ran; figures mix versions")
    print_tables(sections(report))
    for line in notes(report):
        print(f"- {line}")
    print(f"total benchmark time: {total_s:.0f} s")
    partial = (
        args.quick or sorted(only) != sorted(WORKLOADS) or sorted(backends) != sorted(BACKENDS)
    )
    if partial:
        print("(partial or --quick run: results/ not written)")
    else:
        write_results(report, total_s, source)
        print(f"wrote {RESULTS_DIR / 'features.json'}, features.md and features.png")
    failed = [
        f"{workload}/{key}"
        for workload in ("training", "materialize", "prepare", "online", "http")
        for key, figures in getattr(report, workload).items()
        if "error" in figures
    ]
    if failed or skipped:
        print(f"failed or skipped: {', '.join(failed + skipped)}")
        return 1
    return 0


# -- the report ---------------------------------------------------------------------------


def num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def ratio(slower: Any, faster: Any) -> float | None:
    a, b = num(slower), num(faster)
    return None if not a or not b else a / b


def fmt_s(value: Any) -> str:
    """Seconds at a precision that reads well for both 0.05 s and 200 s."""
    seconds = num(value)
    if seconds is None:
        return "n/a"
    if seconds < 1:
        return f"{seconds * 1000:,.0f} ms"
    return f"{seconds:,.2f} s" if seconds < 10 else f"{seconds:,.1f} s"


def fmt_ms(value: Any) -> str:
    ms = num(value)
    if ms is None:
        return "n/a"
    if ms < 1:
        return f"{ms:.3f} ms"
    return f"{ms:.2f} ms" if ms < 10 else f"{ms:,.1f} ms" if ms < 1000 else f"{ms:,.0f} ms"


def fmt_mb(value: Any) -> str:
    mb = num(value)
    return "n/a" if mb is None else f"{mb:,.0f} MB"


def fmt_x(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.0f}x" if value >= 10 else f"{value:.2f}x"


def fmt_int(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else "n/a"


def fmt_met(met: bool | None) -> str:
    return "n/a" if met is None else ("met" if met else "NOT met")


def relative_text(relative: float | None) -> str:
    """How a time compares with forgeml's, said in the direction that holds."""
    if relative is None:
        return "n/a"
    return f"{fmt_x(relative)} slower" if relative >= 1 else f"{fmt_x(1 / relative)} faster"


def failed_cell(figures: dict[str, Any]) -> str | None:
    if not figures:
        return "did not run"
    return f"failed: {figures['error']}" if "error" in figures else None


Section = tuple[str, list[str], list[list[str]]]


def training_table(report: Report) -> Section:
    header = [
        "Tool",
        "Call",
        "Time",
        "Entity rows/s",
        "Peak RSS",
        "Rows out",
        "Same values as the DuckDB script",
        "vs forgeml warm",
    ]
    rows: list[list[str]] = []
    fm = report.training.get("forgeml", {})
    base = fm.get("median_s")
    n = report.data.get("entity_rows", {}).get("rows")

    def rate(seconds: Any) -> str:
        value = ratio(n, seconds)
        return "n/a" if value is None else f"{value:,.0f}"

    problem = failed_cell(fm)
    if problem:
        rows.append(["forgeml", problem, "", "", "", "", "", ""])
    else:
        same = comparison_text(fm.get("comparison"))
        rows.append(
            [
                "forgeml",
                first_call_label(fm),
                fmt_s(fm["first_s"]),
                rate(fm["first_s"]),
                fmt_mb(fm["first_peak_rss_mb"]),
                fmt_int(fm["rows_out"]),
                same,
                relative_text(ratio(fm["first_s"], base)),
            ]
        )
        rows.append(
            [
                "forgeml",
                f"warm call (median of {REPEATS})",
                fmt_s(base),
                rate(base),
                fmt_mb(fm["warm_peak_rss_mb"]),
                fmt_int(fm["rows_out"]),
                same,
                "1.00x",
            ]
        )
    duck = report.training.get("duckdb", {})
    problem = failed_cell(duck)
    if problem:
        rows.append(["DuckDB script", problem, "", "", "", "", "", ""])
    else:
        rows.append(
            [
                "DuckDB script",
                f"median of {REPEATS}, after 1 untimed",
                fmt_s(duck["median_s"]),
                rate(duck["median_s"]),
                fmt_mb(max(duck["first_peak_rss_mb"], duck["warm_peak_rss_mb"])),
                fmt_int(duck["rows_out"]),
                "(the reference)",
                relative_text(ratio(duck["median_s"], base)),
            ]
        )
    feast = report.training.get("feast", {})
    problem = failed_cell(feast)
    if problem:
        rows.append(["Feast", problem, "", "", "", "", "", ""])
    else:
        chunk = feast["chunk_rows"]
        if feast["extrapolated"]:
            call = (
                f"{feast['chunks_done']} of {feast['chunks']} calls of {chunk:,} rows, "
                "time extrapolated to all rows"
            )
        else:
            call = f"{feast['chunks']} calls of {chunk:,} rows (sum)"
        rows.append(
            [
                "Feast",
                call,
                fmt_s(feast["estimated_s"]),
                rate(feast["estimated_s"]),
                fmt_mb(feast["peak_rss_mb"]),
                fmt_int(feast["rows_out"]),
                feast_comparison_text(feast.get("comparison")),
                relative_text(ratio(feast["estimated_s"], base)),
            ]
        )
    title = f"Training frame: {fmt_int(n)} entity rows, point in time, TTL {TTL_DAYS} days"
    return title, header, rows


def comparison_text(comparison: dict[str, Any] | None) -> str:
    if not comparison:
        return "n/a (no reference)"
    if comparison["matches"]:
        return "yes (every row, same order)"
    if not comparison.get("same_keys_in_order"):
        return f"NO: {fmt_int(comparison['rows'])} rows, keys or order differ"
    return f"NO: {comparison['mismatched_rows']:,} rows differ"


def feast_comparison_text(comparison: dict[str, Any] | None) -> str:
    if not comparison:
        return "n/a (no reference)"
    verdict = "yes" if comparison["matches"] else f"NO: {comparison['mismatched_out']:,} differ"
    return (
        f"{verdict} on the rows it returns; {comparison['dropped']:,} rows dropped, "
        f"{comparison['repeats_merged']:,} repeats merged"
    )


STEP_LABELS = {
    "full": "full, days 1-89, fresh store",
    "incremental": "incremental, day 90",
    "full_again": "full again, days 1-90",
}


def materialize_table(report: Report) -> Section:
    header = ["Store", "Run", "forgeml", "Feast", "forgeml speed-up", "Peak RSS forgeml / Feast"]
    rows = []
    for backend in BACKENDS:
        fm = report.materialize.get(f"forgeml/{backend}", {})
        feast = report.materialize.get(f"feast/{backend}", {})
        if not fm and not feast:
            continue
        for step, label in STEP_LABELS.items():
            a = fm.get("steps", {}).get(step, {})
            b = feast.get("steps", {}).get(step, {})
            rows.append(
                [
                    BACKEND_LABELS[backend],
                    label,
                    failed_cell(fm) or fmt_s(a.get("seconds")),
                    failed_cell(feast) or fmt_s(b.get("seconds")),
                    fmt_x(ratio(b.get("seconds"), a.get("seconds"))),
                    f"{fmt_mb(a.get('peak_rss_mb'))} / {fmt_mb(b.get('peak_rss_mb'))}",
                ]
            )
    entities = report.data.get("entities_with_rows")
    rows_total = report.data.get("sizes", {}).get("rows")
    title = f"Materialization: latest of {fmt_int(rows_total)} rows for {fmt_int(entities)} drivers"
    return title, header, rows


def lookup(report: Report, tool: str, backend: str, name: str) -> dict[str, Any]:
    figures = report.online.get(f"{tool}/{backend}", {})
    return dict(figures.get(name, {})) if "error" not in figures else {}


def online_table(report: Report) -> Section:
    header = [
        "Lookup",
        "Store",
        "forgeml p50",
        "forgeml p99",
        "Feast p50",
        "Feast p99",
        "forgeml speed-up at p99",
    ]
    rows = []
    sizes = report.data.get("sizes", {})
    for name, label in (
        ("single", "1 entity x 10 features"),
        ("batch", f"{sizes.get('batch', 100)} entities x 10 features"),
    ):
        for backend in BACKENDS:
            if (
                f"forgeml/{backend}" not in report.online
                and f"feast/{backend}" not in report.online
            ):
                continue
            a = lookup(report, "forgeml", backend, name)
            b = lookup(report, "feast", backend, name)
            rows.append(
                [
                    label,
                    BACKEND_LABELS[backend],
                    fmt_ms(a.get("p50_ms")),
                    fmt_ms(a.get("p99_ms")),
                    fmt_ms(b.get("p50_ms")),
                    fmt_ms(b.get("p99_ms")),
                    fmt_x(ratio(b.get("p99_ms"), a.get("p99_ms"))),
                ]
            )
    calls, warmup = sizes.get("lookups"), sizes.get("warmup")
    title = (
        f"Online lookups in process: {fmt_int(calls)} timed calls after {fmt_int(warmup)} "
        "warm-up, forgeml cache off"
    )
    return title, header, rows


def cache_table(report: Report) -> Section:
    header = ["Drivers asked (1 per call)", "Store", "Distinct", "p50", "p99", "Cache hit rate"]
    rows = []
    for name, label in (("uniform", "uniform, as above"), ("zipf", "Zipf, s = 1.2")):
        for backend in BACKENDS:
            cached = lookup(report, "forgeml", backend, "cached").get(name)
            if not cached:
                continue
            hit_rate = cached["cache"]["hit_rate"]
            rows.append(
                [
                    label,
                    BACKEND_LABELS[backend],
                    fmt_int(cached["distinct_drivers"]),
                    fmt_ms(cached["p50_ms"]),
                    fmt_ms(cached["p99_ms"]),
                    f"{hit_rate:.1%}",
                ]
            )
    return "forgeml with its in-process cache on (FeatureClient(cache=True))", header, rows


def http_table(report: Report) -> Section:
    header = [
        "Server",
        "Completed / sent",
        "p50",
        "p99",
        "p99.9",
        "max",
        "Service p99",
        "Generator lag p99",
        "Max throughput",
        "Server peak RSS",
    ]
    rows = []
    rate = None
    for tool in STORE_TOOLS:
        figures = report.http.get(tool, {})
        problem = failed_cell(figures)
        if problem:
            if tool in report.http:
                rows.append([TOOL_LABELS[tool], problem, *[""] * 8])
            continue
        run = figures["open_loop"]
        rate = run["offered_rps"]
        peak = figures["throughput"]
        rows.append(
            [
                TOOL_LABELS[tool],
                f"{run['completed']:,} / {run['sent']:,}",
                fmt_ms(run["p50_ms"]),
                fmt_ms(run["p99_ms"]),
                fmt_ms(run["p999_ms"]),
                fmt_ms(run["max_ms"]),
                fmt_ms(run["service"].get("p99_ms")),
                fmt_ms(run["generator_lag"]["p99_ms"]),
                f"{peak['rps']:,.0f} req/s",
                fmt_mb(figures["server_peak_rss_mb"]),
            ]
        )
    seconds = report.data.get("sizes", {}).get("http_seconds")
    title = (
        f"HTTP, 1 entity x 10 features, SQLite: fixed rate {rate or 0:,.0f} requests/s for "
        f"{seconds or 0:g} s, latency from the scheduled send"
    )
    return title, header, rows


@dataclass
class Target:
    """A promise about forgeml, the figure it was judged on, and whether it held."""

    target: str
    figure: str
    met: bool | None


def training_targets(report: Report) -> list[Target]:
    """The training frame's targets: speed against Feast and DuckDB, memory, identity."""
    targets = []
    fm = report.training.get("forgeml", {})
    feast = report.training.get("feast", {})
    duck = report.training.get("duckdb", {})
    warm, first = num(fm.get("median_s")), num(fm.get("first_s"))
    speedup = ratio(feast.get("estimated_s"), warm)
    extrapolated = " (extrapolated)" if feast.get("extrapolated") else ""
    targets.append(
        Target(
            "training frame >= 10x faster than Feast",
            f"{fmt_x(speedup)} warm ({fmt_s(warm)} vs {fmt_s(feast.get('estimated_s'))}"
            f"{extrapolated}); first call {fmt_x(ratio(feast.get('estimated_s'), first))}",
            None if speedup is None else speedup >= 10,
        )
    )
    relative = ratio(warm, duck.get("median_s"))
    targets.append(
        Target(
            "training frame within 2x of the DuckDB script",
            f"{fmt_x(relative)} the script's time ({fmt_s(duck.get('median_s'))}); first "
            f"call {fmt_x(ratio(first, duck.get('median_s')))}",
            None if relative is None else relative <= 2,
        )
    )
    peaks = [num(fm.get("first_peak_rss_mb")), num(fm.get("warm_peak_rss_mb"))]
    peak = max((p for p in peaks if p is not None), default=None)
    targets.append(
        Target(
            "training frame peak RSS <= 2 GB",
            f"{fmt_mb(peak)} (first call {fmt_mb(peaks[0])}, warm {fmt_mb(peaks[1])})",
            None if peak is None else peak <= TRAINING_RSS_TARGET_MB,
        )
    )
    same = (fm.get("comparison") or {}).get("matches")
    targets.append(
        Target(
            "training frame identical to the DuckDB script's",
            comparison_text(fm.get("comparison")),
            same,
        )
    )
    return targets


def judge(report: Report) -> list[Target]:
    """Each target of the specification, judged on this run's figures."""
    targets = training_targets(report) if report.training else []
    for backend in BACKENDS:
        a = report.materialize.get(f"forgeml/{backend}", {}).get("steps", {})
        b = report.materialize.get(f"feast/{backend}", {}).get("steps", {})
        if not a and not b:
            continue
        for step in ("full", "incremental"):
            x, y = a.get(step, {}).get("seconds"), b.get(step, {}).get("seconds")
            value = ratio(y, x)
            targets.append(
                Target(
                    f"materialization >= 10x Feast: {BACKEND_LABELS[backend]}, {STEP_LABELS[step]}",
                    f"{fmt_x(value)} ({fmt_s(x)} vs {fmt_s(y)})",
                    None if value is None else value >= 10,
                )
            )
    for name, backend, limit in (
        ("single", "sqlite", 1.0),
        ("single", "redis", 2.0),
        ("batch", "sqlite", 5.0),
        ("batch", "redis", 5.0),
    ):
        if f"forgeml/{backend}" not in report.online:
            continue
        p99 = num(lookup(report, "forgeml", backend, name).get("p99_ms"))
        what = "1 entity" if name == "single" else "100 entities"
        targets.append(
            Target(
                f"online {what} p99 <= {limit:g} ms, {BACKEND_LABELS[backend]}",
                fmt_ms(p99),
                None if p99 is None else p99 <= limit,
            )
        )
    if "forgeml" in report.http:
        run = report.http["forgeml"].get("open_loop", {})
        p99 = num(run.get("p99_ms"))
        rate = run.get("offered_rps")
        targets.append(
            Target(
                "HTTP p99 <= 5 ms at 1,000 requests/s",
                f"{fmt_ms(p99)} at {rate or 0:,.0f} requests/s "
                f"({fmt_int(run.get('completed'))} of {fmt_int(run.get('sent'))} answered)",
                None if p99 is None else p99 <= 5.0 and run.get("completed") == run.get("sent"),
            )
        )
    return targets


def sections(report: Report) -> list[Section]:
    """The tables of this run, titled; workloads that did not run are left out."""
    out = []
    if report.training:
        out.append(training_table(report))
    if report.materialize:
        out.append(materialize_table(report))
    if report.online:
        out.append(online_table(report))
        out.append(cache_table(report))
    if report.http:
        out.append(http_table(report))
    targets = judge(report)
    out.append(
        (
            "Targets",
            ["Target", "Figure", "Met"],
            [[t.target, t.figure, fmt_met(t.met)] for t in targets],
        )
    )
    return out


def notes(report: Report) -> list[str]:
    """What a reader needs to interpret the tables."""
    lines = []
    data = report.data
    if data:
        counts = data.get("entity_rows", {}).get("counts", {})
        lines.append(
            f"Data: {fmt_int(data['sizes']['rows'])} feature rows for "
            f"{fmt_int(data['entities_with_rows'])} drivers over {DAYS} days ending "
            f"{data['end']}, {data['files'][STATS_FILE] / 1e6:,.0f} MB of Parquet; entity rows: "
            + ", ".join(f"{fmt_int(v)} {k.replace('_', ' ')}" for k, v in counts.items())
            + f"; written in {data['seconds']:.1f} s."
        )
    duck = report.training.get("duckdb", {})
    if "independent_check" in duck:
        brute = duck["independent_check"]
        lines.append(
            f"The DuckDB script's frame was checked against numpy binary searches on "
            f"{brute['rows_checked']:,} rows (every kind of special row included): "
            f"{brute['mismatches']} differences. {duck['null_rows']:,} of its "
            f"{duck['rows_out']:,} rows have no value within the TTL."
        )
        lines.append(
            f"DuckDB script samples: first {fmt_s(duck['first_s'])}, then "
            + ", ".join(fmt_s(s) for s in duck["samples_s"])
            + "."
        )
    fm = report.training.get("forgeml", {})
    if "samples_s" in fm:
        lines.append(
            f"forgeml training frame: first call {fmt_s(fm['first_s'])}, then "
            + ", ".join(fmt_s(s) for s in fm["samples_s"])
            + f"; worker peak RSS sampled from outside {fmt_mb(fm.get('sampled_peak_rss_mb'))}."
        )
    feast = report.training.get("feast", {})
    comparison = feast.get("comparison")
    if comparison:
        lines.append(
            f"Feast training frame: {feast['chunks_done']} calls of {feast['chunk_rows']:,} "
            f"entity rows, {', '.join(f'{s:.1f}' for s in feast['chunk_s'])} s; peak RSS per "
            f"call up to {fmt_mb(feast['peak_rss_mb'])}. Of {comparison['rows_in']:,} rows in, "
            f"{comparison['rows_out']:,} came back: {comparison['repeats_merged']:,} repeated "
            f"rows were merged and {comparison['dropped']:,} dropped "
            f"({comparison['dropped_without_value']:,} of them have no value within the TTL, "
            f"{comparison['dropped_with_value']:,} have one). Returned rows that differ from "
            f"the reference: {comparison['mismatched_out']:,}; not in it: "
            f"{comparison['unmatched_out']:,}."
        )
    for key, figures in report.materialize.items():
        steps = figures.get("steps", {})
        verified = figures.get("verified", {})
        if not steps:
            continue
        tool, backend = key.split("/")
        extra = ""
        if "rows_read" in steps.get("full", {}):
            extra = "; rows read / drivers written: " + ", ".join(
                f"{name} {s['rows_read']:,} / {s['entities_written']:,}"
                for name, s in steps.items()
            )
        lines.append(
            f"{TOOL_LABELS[tool]} materialization ({BACKEND_LABELS[backend]}): "
            f"{verified.get('rows', 0):,} drivers read back after the incremental run, "
            f"{verified.get('latest', 0):,} with their newest values, "
            f"{verified.get('expired_null', 0):,} null because the newest row is older than "
            f"the TTL, {verified.get('expired_value', 0):,} with the newest values although "
            f"older than the TTL{extra}."
        )
    loads = [
        figures["load_average_before"]
        for group in (report.training, report.materialize, report.online, report.http)
        for figures in group.values()
        if "load_average_before" in figures
    ]
    if loads:
        lines.append(
            f"1-minute load average before each workload: {min(loads):.2f} to {max(loads):.2f} "
            f"({os.cpu_count()} CPUs)."
        )
    for tool in STORE_TOOLS:
        figures = report.http.get(tool, {})
        if "open_loop" not in figures:
            continue
        run, peak = figures["open_loop"], figures["throughput"]
        lines.append(
            f"{TOOL_LABELS[tool]} server (`{figures['server_command']}`): ready in "
            f"{figures['server_ready_s']:.1f} s; at the fixed rate {run['completed']:,} answered, "
            f"{run['errors']:,} errors, {run['unfinished']:,} unanswered after "
            f"{HTTP_DRAIN_S:.0f} s, {run['achieved_rps']:,.0f} answers/s; max throughput "
            f"{peak['rps']:,.0f} req/s with {peak['connections']} connections (p50 "
            f"{fmt_ms(peak.get('p50_ms'))}, p99 {fmt_ms(peak.get('p99_ms'))})."
        )
    return lines


def print_tables(sections_: list[Section]) -> None:
    """The tables on stdout with rich (installed in forgeml's venv)."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 200)
    for title, header, rows in sections_:
        table = Table(title=title)
        for i, name in enumerate(header):
            table.add_column(name, justify="left" if i < 2 else "right")
        for cells in rows:
            table.add_row(*cells)
        console.print(table)


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines) + "\n"


def machine_info() -> dict[str, Any]:
    """Where the figures came from: they only compare with runs on the same machine."""
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "machine": platform.machine(),
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


def source_state() -> dict[str, Any]:
    """The forgeml code measured: git commit, uncommitted changes, a digest of src/."""
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


def versions_line(report: Report) -> str:
    """The packages each virtualenv's workers imported, with their versions."""
    venvs: dict[str, dict[str, str]] = {"forgeml": {}, "feast": {}}
    for group in (report.training, report.materialize, report.online):
        for key, figures in sorted(group.items(), key=lambda item: item[0] != "forgeml"):
            target = venvs["feast" if key.startswith("feast") else "forgeml"]
            for name, version in figures.get("versions", {}).items():
                if version:
                    target.setdefault(name, version)
    parts = []
    for venv, label in (("forgeml", ".venv"), ("feast", "benchmarks/.venv-feast")):
        if venvs[venv]:
            listed = ", ".join(f"{name} {version}" for name, version in venvs[venv].items())
            parts.append(f"{listed} ({label})")
    return "; ".join(parts)


def write_results(report: Report, total_s: float, source: dict[str, Any]) -> None:
    """results/features.json (every raw number), features.md (the tables), features.png."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    date = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    targets = judge(report)
    document = {
        "date": date,
        "machine": machine_info(),
        "forgeml_source": source,
        "versions": versions_line(report),
        "settings": {
            "seed": SEED,
            "ttl_days": TTL_DAYS,
            "repeats": REPEATS,
            "feast_training_budget_s": FEAST_TRAINING_BUDGET_S,
            "rss_limit_mb": RSS_LIMIT_MB,
            "http_connections": HTTP_CONNECTIONS,
            "throughput_connections": THROUGHPUT_CONNECTIONS,
            "environment": WORKER_ENV,
        },
        "data": report.data,
        "total_seconds": total_s,
        "targets": [asdict(t) for t in targets],
        "results": {
            "training": report.training,
            "materialize": report.materialize,
            "prepare": report.prepare,
            "online": report.online,
            "http": report.http,
        },
        "notes": notes(report),
    }
    (RESULTS_DIR / "features.json").write_text(json.dumps(document, indent=2, default=str) + "\n")
    commit = (source.get("commit") or "unknown")[:10]
    if source.get("src_uncommitted_changes"):
        commit += " + uncommitted changes in src/"
    info = machine_info()
    text = [
        "# Feature store benchmark results\n",
        f"{date}, {info['cpu_count']} CPUs, {info.get('memory_gib', '?')} GiB, forgeml "
        f"(commit {commit}), Python {platform.python_version()}, whole benchmark "
        f"{total_s:.0f} s.\n",
        f"Versions: {versions_line(report)}.\n",
    ]
    if source.get("src_changed_during_run"):
        text.append("Files under src/ changed while this run was in progress.\n")
    for title, header, rows in sections(report):
        text += [f"## {title}\n", markdown(header, rows)]
    text += ["## Notes\n", "\n".join(f"- {line}" for line in notes(report)) + "\n"]
    (RESULTS_DIR / "features.md").write_text("\n".join(text))
    plot(report, RESULTS_DIR / "features.png")


COLOURS = {"forgeml": "#2a9d8f", "feast": "#e76f51", "duckdb": "#8d99ae"}


def plot(report: Report, path: Path) -> None:
    """Four panels: training time, materialization time, online p99, HTTP percentiles."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 2, figsize=(15, 9))
    fm = report.training.get("forgeml", {})
    bars = [
        ("forgeml, first call", fm.get("first_s"), "forgeml"),
        ("forgeml, warm", fm.get("median_s"), "forgeml"),
        ("DuckDB script", report.training.get("duckdb", {}).get("median_s"), "duckdb"),
        ("Feast", report.training.get("feast", {}).get("estimated_s"), "feast"),
    ]
    bar_panel(
        axes[0][0],
        [(label, num(value), tool) for label, value, tool in bars],
        "seconds (log scale)",
        "Training frame, 1,000,000 entity rows",
        fmt_s,
    )
    pairs = []
    for backend in BACKENDS:
        for step, label in STEP_LABELS.items():
            for tool in STORE_TOOLS:
                steps = report.materialize.get(f"{tool}/{backend}", {}).get("steps", {})
                seconds = num(steps.get(step, {}).get("seconds"))
                pairs.append(
                    (f"{BACKEND_LABELS[backend]}, {label}: {TOOL_LABELS[tool]}", seconds, tool)
                )
    bar_panel(axes[0][1], pairs, "seconds (log scale)", "Materialization", fmt_s)
    latencies = []
    for name, label in (("single", "1 entity"), ("batch", "100 entities")):
        for backend in BACKENDS:
            for tool in STORE_TOOLS:
                p99 = num(lookup(report, tool, backend, name).get("p99_ms"))
                latencies.append(
                    (f"{label}, {BACKEND_LABELS[backend]}: {TOOL_LABELS[tool]}", p99, tool)
                )
    bar_panel(axes[1][0], latencies, "p99 ms (log scale)", "Online lookups in process, p99", fmt_ms)
    axis = axes[1][1]
    levels = [("p50_ms", 50), ("p90_ms", 90), ("p99_ms", 99), ("p999_ms", 99.9)]
    for tool in STORE_TOOLS:
        run = report.http.get(tool, {}).get("open_loop")
        if run:
            axis.plot(
                [str(q) for _, q in levels],
                [run[k] for k, _ in levels],
                marker="o",
                color=COLOURS[tool],
                label=TOOL_LABELS[tool],
            )
    axis.axhline(5.0, color="black", linestyle="--", linewidth=0.8, label="forgeml target, p99")
    axis.set_yscale("log")
    axis.set_xlabel("percentile")
    axis.set_ylabel("ms from the scheduled send (log scale)")
    axis.set_title("HTTP at a fixed 1,000 requests/s, 1 entity x 10 features", fontsize=10)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def bar_panel(
    axis: Any,
    bars: list[tuple[str, float | None, str]],
    xlabel: str,
    title: str,
    fmt: Callable[[Any], str],
) -> None:
    """Horizontal bars on a log scale, coloured by tool, each labelled with its value."""
    shown = [(label, value, tool) for label, value, tool in bars if value]
    positions = list(range(len(shown)))
    values = [value or 0.0 for _, value, _ in shown]
    axis.barh(positions, values, color=[COLOURS[tool] for _, _, tool in shown])
    axis.set_xscale("log")
    axis.set_yticks(positions, [label for label, _, _ in shown], fontsize=8)
    axis.invert_yaxis()
    for position, value in zip(positions, values, strict=True):
        axis.text(value * 1.1, position, fmt(value), va="center", fontsize=8)
    if values:
        axis.set_xlim(min(values) / 2, max(values) * 8)
    axis.set_xlabel(xlabel)
    axis.set_title(title, fontsize=10)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--workload",
        choices=[*WORKLOADS, "prepare"],
        action="append",
        help="run only this workload (repeatable; 'prepare' is for worker mode)",
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        action="append",
        help="online store(s) for materialize and online (repeatable; default both)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes, for a smoke test; results/ is not written",
    )
    worker = parser.add_argument_group("worker mode (used by the orchestrator)")
    worker.add_argument(
        "--tool", choices=sorted(TOOL_LABELS), help="measure this tool only (worker mode)"
    )
    worker.add_argument("--workdir", type=Path, help="the worker's scratch directory")
    worker.add_argument("--data-dir", type=Path, help="where the data set was written")
    worker.add_argument("--json", action="store_true", help="print figures as one JSON line")
    worker.add_argument("--loadgen", action="store_true", help="run the HTTP load generator")
    worker.add_argument("--port", type=int, help="the server's port (load generator)")
    parser.add_argument(
        "--write-data",
        type=Path,
        metavar="DIR",
        help="only write the data set into DIR (for running a worker by hand; add --quick)",
    )
    args = parser.parse_args(argv)
    if args.tool is not None and not args.loadgen:
        args.backend = (args.backend or ["sqlite"])[0]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.write_data is not None:
        args.write_data.mkdir(parents=True, exist_ok=True)
        manifest = write_data(args.write_data, QUICK_SIZES if args.quick else SIZES)
        print(json.dumps({k: manifest[k] for k in ("end", "files", "seconds")}))
        return 0
    if args.loadgen:
        if args.tool not in SERVER_PATHS or args.port is None or args.data_dir is None:
            raise SystemExit("--loadgen needs --tool forgeml|feast, --port and --data-dir")
        run_loadgen(args)
        return 0
    if args.tool is not None:
        if args.workload is None or len(args.workload) != 1 or args.workdir is None:
            raise SystemExit("worker mode needs --tool, one --workload, --data-dir and --workdir")
        if args.data_dir is None:
            raise SystemExit("worker mode needs --data-dir")
        run_worker(args)
        return 0
    if args.workload and "prepare" in args.workload:
        raise SystemExit("'prepare' is a worker-mode workload; give --tool")
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
