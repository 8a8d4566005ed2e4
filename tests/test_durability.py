"""Several processes at once, and processes killed mid-write: nothing lost, nothing torn."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import forgeml as fm
from forgeml import config
from forgeml.store import RunStatus

WRITER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    go = Path(sys.argv[1])
    while not go.exists():
        time.sleep(0.005)
    import forgeml as fm
    with fm.start_run(experiment="parallel", name=f"worker-{sys.argv[2]}") as run:
        fm.log_params({"worker": sys.argv[2]})
        for step in range(20_000):
            fm.log_metric("loss", 1.0 / (step + 1), step=step)
            if step % 5000 == 0:
                fm.set_tag("progress", step)
        fm.log_text("done", "result.txt")
    print(run.id)
    """
)


def test_four_processes_logging_at_once_lose_nothing(home: Path, tmp_path: Path) -> None:
    go = tmp_path / "go"
    env = {**os.environ, "FORGEML_FLUSH_SIZE": "400", "FORGEML_FLUSH_INTERVAL": "0.05"}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(go), str(i)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    time.sleep(1.0)  # let every interpreter reach the start line
    go.touch()  # all four open the (still empty) database and write at the same moment
    outputs = [w.communicate(timeout=240) for w in workers]
    for worker, (_, stderr) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, stderr
        assert "database is locked" not in stderr
    run_ids = [stdout.strip() for stdout, _ in outputs]
    for run_id in run_ids:
        run = fm.get_run(run_id)
        assert run.status is RunStatus.FINISHED
        assert run.metrics == {"loss": 1.0 / 20_000}
        assert run.tags == {"progress": "15000"}
        history = fm.get_metric_history(run_id, "loss")
        assert [p.step for p in history] == list(range(20_000))
        assert [a.path for a in fm.list_artifacts(run_id)] == ["result.txt"]
    assert len(fm.search_runs(experiment="parallel")) == 4


KILLED_WRITER = textwrap.dedent(
    """
    import sys
    import forgeml as fm
    run = fm.start_run(experiment="crash", name="victim")
    fm.log_metric("before", 1.0)
    fm.flush()
    print(run.id, flush=True)
    fm.log_artifact(sys.argv[1])  # a FIFO: the test feeds it, then kills us mid-write
    print("finished", flush=True)
    """
)


def _db_path() -> str:
    return config.settings().db_url.removeprefix("sqlite:///")


def _feed_then_kill(child: subprocess.Popen[str], fifo: Path, artifacts: Path) -> None:
    """Write 8 MiB into the FIFO the child reads, wait for its partial file, kill it."""
    with open(fifo, "wb") as feed:
        chunk = os.urandom(1 << 20)
        for _ in range(8):
            feed.write(chunk)
            feed.flush()
        deadline = time.time() + 30
        partial: list[Path] = []
        while time.time() < deadline and not partial:
            partial = [p for p in (artifacts / ".tmp").iterdir() if p.stat().st_size > 0]
            time.sleep(0.05)
        assert partial, "the child never started writing"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)


def test_sigkill_during_an_artifact_write_leaves_nothing_visible(
    home: Path, tmp_path: Path
) -> None:
    fifo = tmp_path / "weights.bin"
    os.mkfifo(fifo)
    with subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(fifo)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None
        run_id = child.stdout.readline().strip()
        _feed_then_kill(child, fifo, home / "artifacts")
    assert child.returncode == -signal.SIGKILL
    artifacts = home / "artifacts"
    # No blob became visible, the run lists no artifact, the database is intact.
    visible = (
        [p for p in (artifacts / "sha256").rglob("*") if p.is_file()]
        if (artifacts / "sha256").exists()
        else []
    )
    assert visible == []
    assert fm.list_artifacts(run_id) == []
    run = fm.get_run(run_id)
    assert run.status is RunStatus.RUNNING
    assert run.metrics == {"before": 1.0}
    with sqlite3.connect(_db_path()) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    # The store keeps working for the next process.
    with fm.start_run(experiment="crash", name="after") as after:
        fm.log_text("fine", "ok.txt")
    assert [a.path for a in fm.list_artifacts(after.id)] == ["ok.txt"]


KILLED_LOGGER = textwrap.dedent(
    """
    import forgeml as fm
    with fm.start_run(experiment="crash", name="logger") as run:
        print(run.id, flush=True)
        step = 0
        while True:
            fm.log_metrics({"a": step, "b": -step}, step=step)
            step += 1
    """
)


def test_sigkill_during_metric_flushes_keeps_the_database_consistent(home: Path) -> None:
    env = {**os.environ, "FORGEML_FLUSH_SIZE": "2000", "FORGEML_FLUSH_INTERVAL": "0.01"}
    with subprocess.Popen(
        [sys.executable, "-c", KILLED_LOGGER],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None
        run_id = child.stdout.readline().strip()
        time.sleep(2.0)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    with sqlite3.connect(_db_path()) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        counts = dict(
            conn.execute(
                "SELECT key, count(*) FROM metrics WHERE run_id = ? GROUP BY key", (run_id,)
            ).fetchall()
        )
        latest = dict(
            conn.execute(
                "SELECT key, step FROM latest_metrics WHERE run_id = ?", (run_id,)
            ).fetchall()
        )
        top = dict(
            conn.execute(
                "SELECT key, max(step) FROM metrics WHERE run_id = ? GROUP BY key", (run_id,)
            ).fetchall()
        )
    assert counts["a"] == counts["b"] > 0  # batches land whole or not at all
    assert latest == top  # the search index agrees with the history
