"""Pipeline orchestration overhead: forgeml and Prefect side by side, no-op steps.

    .venv/bin/python benchmarks/pipelines.py            # the full benchmark (about 3 minutes)
    .venv/bin/python benchmarks/pipelines.py --quick    # a smoke test; writes no results

Two pipelines of steps that do nothing (each adds one to a number), so that only the
orchestration is measured: ``chain``, 50 steps each waiting for the one before, and
``fan``, 50 independent steps and one that reads them all. Each tool runs in its own
fresh process with a fresh store (forgeml: SQLite and a local artifact directory;
Prefect 3: its default local setup, an ephemeral API server on SQLite and results
persisted to local files, which its caching needs). Per pipeline and tool:

- first: the first run in the fresh process, so it pays for starting the worker pool
  (forgeml) or the local API server (Prefect);
- uncached: three more runs on new inputs (median), nothing cached;
- cached: three re-runs of an earlier input (median), every step from cache.

forgeml runs each step in a worker process (2 workers, the number of CPUs); Prefect runs
tasks in threads of the flow's process (its default task runner). ``benchmarks/
.venv-prefect`` is created on first use. The worker mode (``--tool T --json``) imports
only the standard library at the top: it also runs under Prefect's virtualenv.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "benchmarks"
RESULTS_DIR = BENCH_DIR / "results"
PREFECT_VENV = BENCH_DIR / ".venv-prefect"
TOOLS = ("forgeml", "prefect")
PIPELINES = ("chain", "fan")
TARGETS = {"uncached": 2.0, "cached": 1.0}  # seconds, for the 50-step chain
# Prefect 3.8.8's local server does not import under FastAPI >= 0.120 (it passes
# Body(min_items=...)), and 3.9 needs a certifi newer than the package index has.
PREFECT_PACKAGES = ("prefect==3.8.8", "fastapi==0.119.1", "starlette==0.48.0")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the worker ----------------------------------------------------------------------------


def timed(call: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def run_worker(tool: str, size: int, repeats: int) -> dict[str, Any]:
    sys.path.insert(0, str(BENCH_DIR / "pipeline_workloads"))
    if tool == "forgeml":
        import forgeml_flows as flows  # type: ignore[import-not-found]
    else:
        import prefect_flows as flows  # type: ignore[import-not-found]
    figures: dict[str, Any] = {}
    start = 0
    for name in PIPELINES:
        expected = (
            (lambda s: s + size)
            if name == "chain"
            else (lambda s: sum(s + i + 1 for i in range(size)))
        )
        first_start = start
        seconds, result = timed(lambda s=start, n=name: flows.run(n, size, s))
        assert result == expected(start), (name, result)
        start += 10_000
        uncached = []
        for _ in range(repeats):
            seconds_u, result = timed(lambda s=start, n=name: flows.run(n, size, s))
            assert result == expected(start), (name, result)
            uncached.append(seconds_u)
            start += 10_000
        cached = []
        for _ in range(repeats):
            seconds_c, result = timed(lambda s=first_start, n=name: flows.run(n, size, s))
            assert result == expected(first_start), (name, result)
            cached.append(seconds_c)
        figures[name] = {
            "first_s": seconds,
            "uncached_s": uncached,
            "cached_s": cached,
            "uncached_median_s": statistics.median(uncached),
            "cached_median_s": statistics.median(cached),
        }
    return figures


# -- the orchestrator ----------------------------------------------------------------------


def ensure_prefect() -> None:
    python = PREFECT_VENV / "bin" / "python"
    if python.exists():
        check = subprocess.run([str(python), "-c", "import prefect"], capture_output=True)
        if check.returncode == 0:
            return
    log("installing prefect into benchmarks/.venv-prefect (a minute, once)")
    subprocess.run([sys.executable, "-m", "venv", str(PREFECT_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *PREFECT_PACKAGES], check=True)


def run_tool(tool: str, size: int, repeats: int) -> dict[str, Any]:
    python = sys.executable if tool == "forgeml" else str(PREFECT_VENV / "bin" / "python")
    with tempfile.TemporaryDirectory(prefix=f"bench-{tool}-") as scratch:
        env = {
            **os.environ,
            "FORGEML_HOME": str(Path(scratch) / "forgeml"),
            "PREFECT_HOME": str(Path(scratch) / "prefect"),
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
        }
        command = [
            python,
            __file__,
            "--tool",
            tool,
            "--size",
            str(size),
            "--repeats",
            str(repeats),
            "--json",
        ]
        started = time.perf_counter()
        done = subprocess.run(
            command, capture_output=True, text=True, env=env, cwd=scratch, timeout=900
        )
        if done.returncode != 0:
            raise SystemExit(f"{tool} worker failed:\n{done.stderr[-4000:]}")
        figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        figures["process_s"] = time.perf_counter() - started
        return figures


def versions(tool: str) -> str:
    python = sys.executable if tool == "forgeml" else str(PREFECT_VENV / "bin" / "python")
    name = "forgeml" if tool == "forgeml" else "prefect"
    done = subprocess.run(
        [python, "-c", f"import importlib.metadata as m; print(m.version({name!r}))"],
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def fmt(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def report(results: dict[str, Any], size: int, repeats: int) -> str:
    lines = [
        "# Pipeline orchestration benchmark results",
        "",
        f"{results['when']}, {results['cpus']} CPUs, Python {results['python']}, "
        f"forgeml {results['versions']['forgeml']} (commit {results['commit']}), "
        f"Prefect {results['versions']['prefect']}.",
        "",
        f"## {size} no-op steps",
        "",
        "| Pipeline | Run | forgeml | Prefect | forgeml speed-up |",
        "|---|---|---|---|---|",
    ]
    for name in PIPELINES:
        forgeml, prefect = results["forgeml"][name], results["prefect"][name]
        first = "first run, in a fresh process" if name == "chain" else "first run"
        for label, key in (
            (first, "first_s"),
            (f"uncached (median of {repeats})", "uncached_median_s"),
            (f"cached re-run (median of {repeats})", "cached_median_s"),
        ):
            ratio = prefect[key] / forgeml[key]
            lines.append(
                f"| {name} | {label} | {fmt(forgeml[key])} | {fmt(prefect[key])} | {ratio:.1f}x |"
            )
    chain = results["forgeml"]["chain"]
    worst_uncached = max(chain["first_s"], chain["uncached_median_s"])
    lines += [
        "",
        "## Targets",
        "",
        "| Target | Figure | Met |",
        "|---|---|---|",
        f"| {size}-step pipeline of no-op steps < 2 s | {fmt(worst_uncached)} (first run in a "
        f"fresh process; uncached median {fmt(chain['uncached_median_s'])}) | "
        f"{'met' if worst_uncached < TARGETS['uncached'] else 'NOT met'} |",
        f"| cached re-run < 1 s | {fmt(chain['cached_median_s'])} | "
        f"{'met' if chain['cached_median_s'] < TARGETS['cached'] else 'NOT met'} |",
        "",
        "## Samples",
        "",
    ]
    for tool in TOOLS:
        for name in PIPELINES:
            figures = results[tool][name]
            lines.append(
                f"- {tool} {name}: first {fmt(figures['first_s'])}; uncached "
                + ", ".join(fmt(s) for s in figures["uncached_s"])
                + "; cached "
                + ", ".join(fmt(s) for s in figures["cached_s"])
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tool", choices=TOOLS)
    parser.add_argument("--size", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.tool:
        print(json.dumps(run_worker(args.tool, args.size, args.repeats)))
        return
    size, repeats = (10, 1) if args.quick else (args.size, args.repeats)
    ensure_prefect()
    results: dict[str, Any] = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short=10", "HEAD"], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip(),
        "versions": {tool: versions(tool) for tool in TOOLS},
    }
    for tool in TOOLS:
        log(f"running {tool} ...")
        results[tool] = run_tool(tool, size, repeats)
        log(f"  done in {results[tool]['process_s']:.1f} s")
    text = report(results, size, repeats)
    print(text)
    if not args.quick:
        RESULTS_DIR.mkdir(exist_ok=True)
        (RESULTS_DIR / "pipelines.json").write_text(json.dumps(results, indent=2) + "\n")
        (RESULTS_DIR / "pipelines.md").write_text(text)
        log("wrote benchmarks/results/pipelines.json and pipelines.md")


if __name__ == "__main__":
    main()
