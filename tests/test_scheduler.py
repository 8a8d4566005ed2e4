"""The scheduler end to end: real child processes, real databases, restarts and races."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from forgeml import events
from forgeml.data import Dataset
from forgeml.pipelines.api import get_run, list_runs
from forgeml.pipelines.scheduler import Scheduler
from forgeml.pipelines.schedules_api import get_schedule, list_schedules, resume, schedule, trigger
from forgeml.store.records import PipelineRunRecord
from forgeml_cli import FORGEML, cli

TESTS = str(Path(__file__).parent)


@pytest.fixture(autouse=True)
def importable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Child processes import tests/scheduled_pipelines.py."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([TESTS, os.environ.get("PYTHONPATH", "")]))


def runs(pipeline: str = "ping") -> list[PipelineRunRecord]:
    return list_runs(pipeline, limit=1000)


def assert_no_duplicates(found: list[PipelineRunRecord]) -> None:
    keys = collections.Counter(r.dedupe_key for r in found)
    assert all(k is not None for k in keys)
    assert [k for k, n in keys.items() if n > 1] == []


def wait_for(condition: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


def test_an_interval_schedule_fires_once_per_slot(any_backend: str) -> None:
    schedule("tick", "scheduled_pipelines:ping", every="1s", params={"tag": "t"})
    due = get_schedule("tick").next_fire_at
    assert due is not None
    scheduler = Scheduler(max_concurrent=2)
    fired = scheduler.tick(due + 5.5)  # five slots missed: only the newest fires
    assert [f.dedupe_key for f in fired] == [f"schedule:tick@{_iso(due + 5)}"]
    assert scheduler.tick(due + 5.5) == []  # the slot is claimed
    assert scheduler.wait(60)
    found = runs()
    assert [(r.trigger, r.dedupe_key, r.status.value) for r in found] == [
        ("schedule:tick", f"schedule:tick@{_iso(due + 5)}", "succeeded")
    ]
    assert get_run(found[0].id).result == "t"
    record = get_schedule("tick")
    assert record.next_fire_at == due + 6
    assert record.last_run_id == found[0].id


def _iso(stamp: float) -> str:
    from forgeml.pipelines.scheduler import slot_text

    return slot_text(stamp)


def _start(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [FORGEML, "scheduler", "--poll-interval", "0.2", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _settle(found: list[PipelineRunRecord]) -> list[PipelineRunRecord]:
    """Wait for the runs started by stopped schedulers to end."""
    wait_for(lambda: all(r.status.value != "running" for r in runs()), 90)
    return runs()


def test_restart_after_kill_9_never_runs_a_slot_twice(any_backend: str) -> None:
    schedule("beat", "scheduled_pipelines:ping", every="1s")
    first = _start()
    try:
        wait_for(lambda: len(runs()) >= 2)
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
    before = {r.id for r in runs()}
    second = _start()
    try:
        wait_for(lambda: len({r.id for r in runs()} - before) >= 1)
    finally:
        second.send_signal(signal.SIGTERM)
        _, errors = second.communicate(timeout=30)
    assert second.returncode == 0, errors.decode()
    assert b'"event":"scheduler_stopped"' in errors
    found = _settle(runs())
    assert_no_duplicates(found)
    assert all(r.trigger == "schedule:beat" for r in found)
    assert len({r.id for r in found} - before) >= 1


def test_two_schedulers_at_once_share_the_slots(any_backend: str) -> None:
    schedule("both", "scheduled_pipelines:ping", every="1s")
    pair = [_start(), _start()]
    try:
        wait_for(lambda: len(runs()) >= 3)
    finally:
        for process in pair:
            process.send_signal(signal.SIGTERM)
        for process in pair:
            process.communicate(timeout=30)
    found = _settle(runs())
    assert_no_duplicates(found)
    assert len(found) >= 3


def test_a_new_dataset_version_fires_once(home: Path) -> None:
    schedule("retrain", "scheduled_pipelines:react", on="dataset:flights")
    schedule("other", "scheduled_pipelines:react", on="dataset:trips")
    source = home.parent / "flights.csv"
    pd.DataFrame({"a": [1, 2, 3]}).to_csv(source, index=False)
    version = Dataset.ingest(str(source), name="flights")
    Dataset.ingest(str(source), name="flights")  # the same rows: no new version, no event
    scheduler = Scheduler()
    fired = scheduler.tick()
    assert [(f.schedule, f.trigger) for f in fired] == [("retrain", "dataset_version:flights")]
    assert scheduler.wait(60)
    assert scheduler.tick() == []
    found = runs("react")
    assert len(found) == 1
    event = events.since(0, ["dataset_version"])
    assert [(e.subject, e.payload) for e in event] == [("flights", {"version": version.version})]
    assert get_run(found[0].id).result == f"dataset_version:flights:{event[0].id}"


def test_an_alert_fires_its_schedule_and_a_wildcard(any_backend: str) -> None:
    schedule("on-drift", "scheduled_pipelines:react", on="alert:drift")
    schedule("on-any", "scheduled_pipelines:ping", on="alert:*")
    other_id = events.publish("alert", "latency", {"p99": 0.8})
    event_id = events.publish("alert", "drift", {"psi": 0.4})
    scheduler = Scheduler(max_concurrent=3)
    fired = scheduler.tick()
    assert sorted(f.dedupe_key for f in fired) == [
        f"event:on-any@{other_id}",
        f"event:on-any@{event_id}",
        f"event:on-drift@{event_id}",
    ]
    assert scheduler.wait(60)
    assert get_run(runs("react")[0].id).result == f"alert:drift:{event_id}"
    assert scheduler.tick() == []


def test_cli_trigger_fires_a_manual_run(home: Path) -> None:
    cli(
        "schedules",
        "add",
        "nightly",
        "--pipeline",
        "scheduled_pipelines:ping",
        "--cron",
        "0 2 * * *",
        "--timezone",
        "Europe/Paris",
        "--param",
        "tag=manual",
    )
    event_id = int(cli("schedules", "trigger", "nightly").stdout)
    done = cli("scheduler", "--once")
    assert '"event":"fired"' in done.stderr
    found = runs()
    assert [(r.trigger, r.dedupe_key) for r in found] == [
        ("manual:nightly", f"event:nightly@{event_id}")
    ]
    listed = cli("schedules", "list").stdout
    assert "0 2 * * * (Europe/Paris)" in listed and found[0].id[:12] in listed
    cli("schedules", "pause", "nightly")
    trigger("nightly")
    assert Scheduler().tick() == []  # paused: manual triggers wait too
    resume("nightly")
    scheduler = Scheduler()
    assert len(scheduler.tick()) == 1  # the trigger made while paused fires on resume
    assert scheduler.wait(60)
    cli("schedules", "remove", "nightly")
    assert list_schedules() == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cron", "0 25 * * *"], "hour field '25': 25 is outside 0-23"),
        (["--every", "5x"], "interval '5x'"),
        (["--on", "model:x"], "expected dataset:NAME or alert:NAME"),
        (["--cron", "* * * * *", "--timezone", "Nowhere/Land"], "'Nowhere/Land' is not an IANA"),
    ],
)
def test_bad_input_is_one_line_exit_2(home: Path, args: list[str], message: str) -> None:
    done = cli(
        "schedules", "add", "x", "--pipeline", "scheduled_pipelines:ping", *args, check=False
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and message in done.stderr


def test_unknown_pipeline_is_one_line_exit_2(home: Path) -> None:
    done = cli(
        "schedules",
        "add",
        "x",
        "--pipeline",
        "scheduled_pipelines:nope",
        "--every",
        "1m",
        check=False,
    )
    assert (done.returncode, done.stderr.count("\n")) == (2, 1)
    assert "has no 'nope'" in done.stderr
    done = cli("schedules", "trigger", "missing", check=False)
    assert done.returncode == 2 and "no schedule named 'missing'" in done.stderr
