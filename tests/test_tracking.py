"""Experiment tracking through the public API, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

import forgeml as fm
from forgeml import backend
from forgeml.errors import ArtifactError, InvalidArgumentError, NotFoundError
from forgeml.store import RunStatus
from forgeml.tracking import fluent


def test_a_run_records_everything(any_backend: str, tmp_path: Path) -> None:
    plot = tmp_path / "confusion.png"
    plot.write_bytes(b"\x89PNG fake")
    with fm.start_run(experiment="flights", name="gbm", tags={"team": "risk"}) as run:
        fm.log_params({"max_depth": 6, "model": "gbm"})
        fm.log_metrics({"auc": 0.91, "loss": 0.3}, step=3)
        fm.log_metric("auc", 0.93, step=4)
        fm.set_tag("stage", "dev")
        fm.log_artifact(plot)
        fm.log_dict({"classes": [0, 1]}, "meta/classes.json")
        assert fm.active_run() is run
    assert fm.active_run() is None
    stored = fm.get_run(run.id)
    assert stored.status is RunStatus.FINISHED
    assert stored.experiment == "flights"
    assert stored.name == "gbm"
    assert stored.params == {"max_depth": "6", "model": "gbm"}
    assert stored.metrics == {"auc": 0.93, "loss": 0.3}
    assert stored.tags == {"team": "risk", "stage": "dev"}
    assert stored.user == "tester"
    assert stored.command and "pytest" in stored.command
    assert stored.host
    assert stored.duration is not None and stored.duration >= 0
    system = stored.system
    assert system["wall_time_s"] > 0
    assert system["peak_rss_bytes"] > 10 << 20
    assert 0 <= system["cpu_percent"] <= 100 * (system["cpu_count"] or 1) + 5
    env = backend.runs().get_environment(stored.environment_digest or "")
    assert env["python"] == sys.version.split()[0]
    assert "sqlalchemy" in env["packages"]
    assert [a.path for a in fm.list_artifacts(run.id)] == ["confusion.png", "meta/classes.json"]
    copy = fm.download_artifact(run.id, "meta/classes.json", tmp_path / "out")
    assert copy.read_text().replace(" ", "").replace("\n", "") == '{"classes":[0,1]}'
    assert [(p.step, p.value) for p in fm.get_metric_history(run.id, "auc")] == [
        (3, 0.91),
        (4, 0.93),
    ]


def test_gpu_samples_are_summarised_per_device() -> None:
    from forgeml.tracking.resources import Usage

    usage = Usage(wall_start=0.0, cpu_start=0.0, exact_peak=False)
    usage.add(100, [(50.0, 1000), (0.0, 10)])
    usage.add(300, [(100.0, 4000), (20.0, 5)])
    usage.add(200, [])
    assert usage.peak_rss == 300
    assert usage.gpu_util == [[50.0, 100.0], [0.0, 20.0]]
    assert usage.gpu_peak_memory == [4000, 10]
    summary = usage.summary(wall_end=2.0, cpu_end=1.0, high_water=350)
    assert summary["cpu_percent"] == 50.0
    assert summary["peak_rss_bytes"] == 350
    assert summary["gpus"] == [
        {"index": 0, "utilization_mean_percent": 75.0, "memory_peak_bytes": 4000},
        {"index": 1, "utilization_mean_percent": 10.0, "memory_peak_bytes": 10},
    ]


def test_git_version_is_recorded(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = Path.cwd()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    (repo / "train.py").write_text("print(1)\n")
    subprocess.run(["git", "add", "."], cwd=repo, check=True)
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", "x"],
        cwd=repo,
        check=True,
    )
    sha = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    from forgeml.tracking import environment

    environment.code_version.cache_clear()
    with fm.start_run() as clean:
        pass
    (repo / "train.py").write_text("print(2)\n")
    environment.code_version.cache_clear()
    with fm.start_run() as dirty:
        pass
    environment.code_version.cache_clear()
    assert (fm.get_run(clean.id).git_sha, fm.get_run(clean.id).git_dirty) == (sha, False)
    assert (fm.get_run(dirty.id).git_sha, fm.get_run(dirty.id).git_dirty) == (sha, True)


def test_a_run_that_raises_is_failed_with_its_traceback(any_backend: str) -> None:
    with pytest.raises(ZeroDivisionError), fm.start_run(name="boom") as run:
        fm.log_metric("progress", 1)
        _ = 1 / 0
    stored = fm.get_run(run.id)
    assert stored.status is RunStatus.FAILED
    assert stored.error is not None
    assert "ZeroDivisionError: division by zero" in stored.error
    assert "test_a_run_that_raises" in stored.error
    assert stored.metrics == {"progress": 1.0}


def test_keyboard_interrupt_marks_the_run_killed(home: Path) -> None:
    with pytest.raises(KeyboardInterrupt), fm.start_run() as run:
        raise KeyboardInterrupt
    assert fm.get_run(run.id).status is RunStatus.KILLED


def test_nested_runs_find_their_parent(any_backend: str) -> None:
    with fm.start_run(experiment="tune", name="search") as parent:
        for trial in range(3):
            with fm.start_run(name=f"trial-{trial}") as child:
                fm.log_metric("score", trial)
                assert fm.active_run() is child
            assert fm.active_run() is parent
        with fm.start_run(name="detached", parent=None) as orphan:
            pass
    children = backend.runs().child_run_ids(parent.id)
    assert len(children) == 3
    assert {fm.get_run(c).experiment for c in children} == {"tune"}
    assert fm.get_run(orphan.id).parent_id is None


def test_the_current_run_is_per_thread_and_per_task(home: Path) -> None:
    seen: dict[str, str | None] = {}

    def worker(name: str) -> None:
        assert fm.active_run() is None
        with fm.start_run(name=name) as run:
            fm.log_metric("x", 1)
            seen[name] = run.id if fm.active_run() is run else None

    with fm.start_run(name="main") as main:
        threads = [threading.Thread(target=worker, args=(f"t{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert fm.active_run() is main

    async def task(name: str) -> str | None:
        with fm.start_run(name=name, parent=None) as run:
            await asyncio.sleep(0.01)
            return run.id if fm.active_run() is run else None

    async def both() -> list[str | None]:
        return await asyncio.gather(task("a"), task("b"))

    assert all(asyncio.run(both()))
    assert all(seen.values()) and len(seen) == 4
    assert all(fm.get_run(r).parent_id is None for r in seen.values() if r)


def test_per_call_logging_is_buffered_into_few_transactions(home: Path) -> None:
    with fm.start_run() as run:
        writer = fluent.session().writer
        before = writer.flushes
        for i in range(100_000):
            fm.log_metric("loss", 1.0 / (i + 1))
    transactions = writer.flushes - before
    assert transactions <= 40, f"{transactions} transactions for 100,000 log_metric calls"
    history = fm.get_metric_history(run.id, "loss")
    assert len(history) == 100_000
    assert [p.step for p in history[:3]] == [0, 1, 2]
    assert history[-1].value == pytest.approx(1e-5)


def test_values_from_numpy_and_nan(home: Path) -> None:
    with fm.start_run() as run:
        fm.log_metric("np_float", np.float32(0.5))
        fm.log_metric("np_int", np.int64(7))
        fm.log_metric("nan", math.nan)
        fm.log_metric("count", 3)
    metrics = fm.get_run(run.id).metrics
    assert metrics["np_float"] == 0.5
    assert metrics["np_int"] == 7.0
    assert math.isnan(metrics["nan"])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: fm.log_metric("auc", "high"), "metric 'auc' must be a number, got 'high'"),
        (lambda: fm.log_metric("auc", None), "metric 'auc' must be a number"),
        (lambda: fm.log_metric("auc", [1, 2]), "metric 'auc' must be a number"),
        (lambda: fm.log_metric("", 1.0), "metric name must be a non-empty string"),
        (
            lambda: fm.log_metric("auc", 1.0, step=1.5),
            "step of metric 'auc' must be a whole number",
        ),
        (lambda: fm.log_params({"k" * 300: 1}), "is 300 characters long"),
        (lambda: fm.log_artifact("/no/such/file"), "no such file or directory"),
        (lambda: fm.log_text("x", "../outside.txt"), "must be a relative path"),
    ],
)
def test_bad_values_are_refused_at_the_call(home: Path, call: object, message: str) -> None:
    with fm.start_run():
        with pytest.raises((InvalidArgumentError, ArtifactError)) as info:
            call()  # type: ignore[operator]
        assert message in str(info.value)


def test_params_cannot_change_within_a_run(home: Path) -> None:
    with fm.start_run() as run:
        fm.log_param("lr", 0.1)
        fm.log_param("lr", 0.1)
        with pytest.raises(InvalidArgumentError, match=r"param 'lr' .* is already '0\.1'"):
            fm.log_param("lr", 0.2)
    assert fm.get_run(run.id).params == {"lr": "0.1"}


def test_logging_outside_a_run_or_after_it_ended(home: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="no active run"):
        fm.log_metric("x", 1)
    with fm.start_run() as run:
        pass
    with pytest.raises(InvalidArgumentError, match="has ended"):
        run.log_metric("x", 1)
    run.end()  # ending twice changes nothing
    assert fm.get_run(run.id).status is RunStatus.FINISHED


def test_search_runs_with_paging_and_order(any_backend: str) -> None:
    for i in range(12):
        with fm.start_run(experiment="grid", name=f"r{i:02d}"):
            fm.log_params({"model": "gbm" if i % 2 else "lr"})
            fm.log_metric("auc", 0.80 + i / 100)
    page = fm.search_runs(
        "metrics.auc > 0.855 and params.model = 'gbm'",
        experiment="grid",
        order_by=["metrics.auc desc"],
        max_results=2,
    )
    names = [r.name for r in page]
    while page.next_page_token:
        page = fm.search_runs(
            "metrics.auc > 0.855 and params.model = 'gbm'",
            experiment="grid",
            order_by=["metrics.auc desc"],
            max_results=2,
            page_token=page.next_page_token,
        )
        names += [r.name for r in page]
    assert names == ["r11", "r09", "r07"]
    frame = fm.search_runs(experiment="grid", max_results=50).to_pandas()
    assert len(frame) == 12
    assert {"run_id", "params.model", "metrics.auc"} <= set(frame.columns)
    with pytest.raises(InvalidArgumentError, match="page_token"):
        fm.search_runs(page_token="garbage")
    with pytest.raises(InvalidArgumentError, match="max_results"):
        fm.search_runs(max_results=0)


def test_unknown_runs_and_metrics(home: Path) -> None:
    with pytest.raises(NotFoundError):
        fm.get_run("0123456789abcdef0123456789abcdef")
    with fm.start_run() as run:
        pass
    with pytest.raises(NotFoundError, match="has no metric 'nope'"):
        fm.get_metric_history(run.id, "nope")
    with pytest.raises(NotFoundError, match="has no artifact"):
        fm.download_artifact(run.id, "nope.txt")


def _run_script(body: str, home: Path) -> subprocess.CompletedProcess[str]:
    script = textwrap.dedent(body)
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )


def test_open_runs_are_finished_and_flushed_at_exit(home: Path) -> None:
    result = _run_script(
        """
        import forgeml as fm
        run = fm.start_run(experiment="exit", name="left-open")
        for i in range(1000):
            fm.log_metric("m", i)
        print(run.id)
        """,
        home,
    )
    assert result.returncode == 0, result.stderr
    stored = fm.get_run(result.stdout.strip())
    assert stored.status is RunStatus.FINISHED
    assert stored.metrics == {"m": 999.0}
    assert len(fm.get_metric_history(stored.id, "m")) == 1000


def test_an_uncaught_exception_fails_open_runs(home: Path) -> None:
    result = _run_script(
        """
        import forgeml as fm
        run = fm.start_run(experiment="exit", name="crash")
        print(run.id, flush=True)
        raise RuntimeError("training diverged")
        """,
        home,
    )
    assert result.returncode == 1
    stored = fm.get_run(result.stdout.strip())
    assert stored.status is RunStatus.FAILED
    assert "RuntimeError: training diverged" in (stored.error or "")
