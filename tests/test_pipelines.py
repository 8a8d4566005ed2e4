"""Pipelines end to end: every test runs on the local executor and on a local Ray runtime."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

import forgeml as fm
import pipeline_steps as steps
from forgeml.errors import PipelineError
from forgeml.store.records import PipelineStatus, StepStatus
from forgeml_cli import cli

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(params=["local", "ray"])
def executor(request: pytest.FixtureRequest, home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "ray":
        request.getfixturevalue("ray_runtime")
    monkeypatch.setenv("FORGEML_EXECUTOR", request.param)
    return str(request.param)


@pytest.fixture
def marks(tmp_path: Path) -> str:
    path = tmp_path / "marks"
    path.mkdir()
    return str(path)


def statuses(run: fm.pipelines.PipelineRun) -> dict[str, str]:
    return {s.step: s.status.value for s in run.steps}


# -- running and caching -------------------------------------------------------------------


def test_steps_pass_tables_and_values(executor: str, marks: str) -> None:
    run = steps.tables(marks, n=5)
    assert run.status == PipelineStatus.SUCCEEDED
    assert statuses(run) == {
        "load": "succeeded",
        "double": "succeeded",
        "summarize": "succeeded",
        "report": "succeeded",
    }
    assert run.result == {"summary": {"rows": 5.0, "total": 40.0}, "report": "5 rows"}
    frame = run.output("double")
    assert isinstance(frame, pd.DataFrame) and frame["y"].tolist() == [0, 4, 8, 12, 16]
    record = run.step("double")
    assert record.outputs is not None and record.outputs[0]["kind"] == "table"
    assert record.inputs["frame"]["__fm_ref__"]["digest"] == run.step("load").outputs[0]["digest"]  # type: ignore[index]
    assert fm.pipelines.get_run(run.id[:8]).record.executor in ("local", "ray")


def test_second_run_comes_from_cache_and_explain_says_why(executor: str, marks: str) -> None:
    first = steps.tables(marks, n=5)
    again = steps.tables(marks, n=5)
    assert statuses(again) == {
        "load": "cached",
        "double": "cached",
        "summarize": "cached",
        "report": "succeeded",  # cache=False: it always runs
    }
    assert steps.marked(marks, "load") == steps.marked(marks, "load")[:1]
    assert len(steps.marked(marks, "report")) == 2
    assert again.result == first.result
    explained = {e["step"]: e for e in fm.pipelines.explain(again.id)}
    assert explained["load"]["decision"] == "cached"
    assert explained["load"]["source"]["run"] == first.id
    assert explained["report"]["decision"] == "ran"
    assert "cache=False" in explained["report"]["reason"]

    changed = steps.tables(marks, n=6)
    explained = {e["step"]: e for e in fm.pipelines.explain(changed.id)}
    assert explained["load"]["decision"] == "ran"
    assert "input 'n' changed: 5 -> 6" in explained["load"]["reason"]
    assert explained["double"]["decision"] == "ran"
    assert "input 'frame' changed" in explained["double"]["reason"]
    assert len(steps.marked(marks, "load")) == 2


def test_outputs_unpack_and_sub_pipelines_inline_their_steps(executor: str, marks: str) -> None:
    run = steps.outer(marks)
    assert set(statuses(run)) == {"prepare.load", "prepare.split", "count_all"}
    assert run.result == {"label": "sizes", "counts": [8, 2]}
    test_part = run.output("prepare.split", 1)
    assert test_part["x"].tolist() == [8, 9]


def test_independent_steps_run_at_the_same_time(executor: str, marks: str) -> None:
    assert steps.meeting(marks).result == [True, True], "the two steps never ran together"


def test_one_worker_runs_steps_one_after_another(home: Path, marks: str) -> None:
    fm.pipelines.run_pipeline(steps.parallel, {"marks": marks}, max_workers=1)
    a_start, a_end = map(float, steps.marked(marks, "window-a")[0].split())
    b_start, b_end = map(float, steps.marked(marks, "window-b")[0].split())
    assert a_end <= b_start or b_end <= a_start


# -- failures ------------------------------------------------------------------------------


def test_retries_back_off_and_keep_each_attempts_logs(executor: str, marks: str) -> None:
    started = time.monotonic()
    run = steps.retrying(marks, failures=2)
    assert time.monotonic() - started >= 0.2 + 0.4  # backoff 0.2 s, then 0.4 s
    record = run.step("flaky")
    assert (record.status, record.attempts) == (StepStatus.SUCCEEDED, 3)
    assert run.result == 3
    assert "attempt 1" in fm.pipelines.logs(run.id, "flaky", attempt=1)["stdout.log"]
    assert "failing on purpose, attempt 2" in fm.pipelines.logs(run.id, "flaky", 2)["stderr.log"]
    assert "attempt 3" in fm.pipelines.logs(run.id, "flaky")["stdout.log"]

    with pytest.raises(PipelineError, match=r"step 'flaky' failed: RuntimeError: failing") as info:
        steps.retrying(marks, failures=10)  # 3 more attempts, all failing
    failed = fm.pipelines.get_run(info.value.run_id or "")
    assert failed.status == PipelineStatus.FAILED
    assert failed.step("flaky").attempts == 3


def test_timeout_stops_the_step(executor: str, marks: str) -> None:
    started = time.monotonic()
    with pytest.raises(PipelineError, match="timed out after 3 s") as info:
        steps.sleeping(marks, seconds=60)
    assert time.monotonic() - started < 20
    (pid,) = steps.marked(marks, "sleepy")
    deadline = time.monotonic() + 10
    while _alive(int(pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(int(pid)), "the step's process was left running"
    run = fm.pipelines.get_run(info.value.run_id or "")
    assert run.step("sleepy").status == StepStatus.FAILED


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie has exited: it only waits for its parent to read its status
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return False


def test_failure_skips_dependents_and_resume_reuses_finished_steps(
    executor: str, marks: str
) -> None:
    (Path(marks) / "broken").touch()
    with pytest.raises(PipelineError, match="step 'gate' failed: ValueError") as info:
        steps.branches(marks)
    failed = fm.pipelines.get_run(info.value.run_id or "")
    assert statuses(failed) == {
        "load": "succeeded",
        "gate": "failed",
        "side": "succeeded",
        "join": "skipped",
        "summarize": "succeeded",  # an independent branch still finishes
    }
    with pytest.raises(PipelineError, match="the gate is broken"):
        fm.pipelines.resume(failed.id)  # still broken: fails again, nothing recomputed
    assert len(steps.marked(marks, "load")) == 1 and len(steps.marked(marks, "side")) == 1

    (Path(marks) / "broken").unlink()
    resumed = fm.pipelines.resume(failed.id)
    assert resumed.record.resumed_from == failed.id
    assert statuses(resumed) == {
        "load": "reused",
        "gate": "succeeded",
        "side": "reused",
        "join": "succeeded",
        "summarize": "reused",
    }
    assert resumed.result["joined"] == "42-side"
    assert len(steps.marked(marks, "load")) == 1 and len(steps.marked(marks, "side")) == 1
    assert len(steps.marked(marks, "gate")) == 3
    with pytest.raises(PipelineError, match="nothing to resume"):
        fm.pipelines.resume(resumed.id)


def test_logs_capture_stdout_stderr_and_structured_lines(executor: str, marks: str) -> None:
    run = steps.talking(marks)
    found = fm.pipelines.logs(run.id, "chatty")
    assert "to stdout via print" in found["stdout.log"]
    assert "straight to file descriptor 2" in found["stderr.log"]
    assert "to stderr via sys.stderr" in found["stderr.log"]
    (line,) = [e for e in found["events.jsonl"].splitlines() if "structured line" in e]
    assert '"rows":5' in line and '"level":"INFO"' in line and '"step":"chatty"' in line


# -- the orchestrator dies -----------------------------------------------------------------


def test_killed_orchestrator_leaves_a_failed_run_that_resumes(
    home: Path, marks: str, tmp_path: Path
) -> None:
    script = tmp_path / "launch.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            sys.path.insert(0, {str(Path(__file__).parent)!r})
            import pipeline_steps
            if __name__ == "__main__":
                pipeline_steps.crashable({marks!r})
            """
        )
    )
    process = subprocess.Popen([sys.executable, str(script)], env=os.environ.copy())
    try:
        deadline = time.monotonic() + 60
        while not steps.marked(marks, "waiting") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert steps.marked(marks, "waiting"), "the step never started"
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
    (worker_pid,) = steps.marked(marks, "waiting")
    deadline = time.monotonic() + 10
    while _alive(int(worker_pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(int(worker_pid)), "the worker outlived its orchestrator"

    (run,) = fm.pipelines.list_runs(pipeline="crashable")
    assert run.status == PipelineStatus.FAILED
    assert "stopped before it finished" in (run.error or "")
    crashed = fm.pipelines.get_run(run.id)
    assert crashed.step("wait_for_kill").status == StepStatus.FAILED
    assert crashed.step("summarize").status == StepStatus.SUCCEEDED

    (Path(marks) / "go").touch()
    cli("pipelines", "resume", run.id[:10])
    resumed = fm.pipelines.list_runs(pipeline="crashable")[0]
    assert resumed.status == PipelineStatus.SUCCEEDED and resumed.resumed_from == run.id
    assert fm.pipelines.get_run(resumed.id).result == 12.0
    assert len(steps.marked(marks, "load")) == 1


# -- building the graph --------------------------------------------------------------------


def test_a_step_outside_a_pipeline_is_its_function(home: Path, marks: str) -> None:
    frame = steps.load(marks, 3)
    assert frame["x"].tolist() == [0, 1, 2]
    assert fm.pipelines.list_runs() == []


def test_mistakes_while_building_are_named(home: Path, marks: str) -> None:
    @fm.step
    def inner(value: int) -> int:
        return value

    @fm.pipeline
    def uses_if(marks: str) -> None:
        if steps.load(marks, 2):
            pass

    with pytest.raises(PipelineError, match="cannot be tested with if/while"):
        uses_if(marks)

    @fm.pipeline
    def bad_call(marks: str) -> None:
        steps.load(marks, 2, 3)  # type: ignore[call-arg]

    with pytest.raises(PipelineError, match="step 'load' called with wrong arguments"):
        bad_call(marks)

    @fm.pipeline
    def unpacks_one(marks: str) -> None:
        _a, _b = steps.load(marks, 2)

    with pytest.raises(PipelineError, match="has one output"):
        unpacks_one(marks)

    @fm.pipeline
    def local_step() -> None:
        inner(1)

    with pytest.raises(PipelineError, match="define steps and pipelines at module level"):
        local_step()


def test_cli_runs_lists_explains_and_shows_logs(
    home: Path, marks: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))
    params = ("--param", f"marks={marks}", "--param", "n=4")
    cli("pipelines", "run", "pipeline_steps:tables", *params)
    (run,) = fm.pipelines.list_runs()
    assert run.params == {"marks": marks, "n": 4}
    listed = cli("pipelines", "list").stdout
    assert run.id[:12] in listed and "succeeded" in listed
    shown = cli("pipelines", "show", run.id[:8]).stdout
    assert "summarize" in shown and "table 4 x 2" in shown
    cli("pipelines", "run", "pipeline_steps:tables", *params)
    latest = fm.pipelines.list_runs()[0]
    explained = cli("pipelines", "explain", latest.id).stdout
    assert "cached" in explained and run.id in explained
    assert "4 rows" not in cli("pipelines", "logs", latest.id, "report").stdout
    missing = cli("pipelines", "logs", latest.id, "nope", check=False)
    assert missing.returncode == 2 and "no step 'nope'" in missing.stderr
    failing = cli(
        "pipelines",
        "run",
        "pipeline_steps:retrying",
        "-p",
        f"marks={marks}",
        "-p",
        "failures=5",
        check=False,
    )
    assert failing.returncode == 1 and "failed" in failing.stdout


def test_lineage_links_runs_steps_values_and_the_runs_they_open(home: Path, marks: str) -> None:
    run = steps.training(marks)
    run_id = run.result
    tracked = fm.get_run(run_id)
    assert tracked.tags["pipeline.step"] == f"{run.id}/tracked"
    graph = fm.lineage(("run", run_id))
    upstream = graph.upstream()
    assert ("step_run", f"{run.id}/tracked") in upstream
    assert ("step_run", f"{run.id}/load") in upstream
    assert ("pipeline_run", run.id) in upstream
    digest = run.step("load").outputs[0]["digest"]  # type: ignore[index]
    assert ("artifact", digest) in upstream

    again = steps.training(marks)  # every step from cache: linked to where it came from
    step = ("step_run", f"{again.id}/load")
    cached = fm.lineage(step).upstream("step_run")
    assert ("step_run", f"{run.id}/load") in cached


@pytest.mark.parametrize("devices", ["2", "1", "0"])
def test_gpu_steps_get_devices_of_their_own(
    home: Path, marks: str, monkeypatch: pytest.MonkeyPatch, devices: str
) -> None:
    monkeypatch.setenv("FORGEML_LOCAL_GPUS", devices)
    if devices == "0":
        with pytest.raises(PipelineError, match="asks for 1 GPUs; this machine shows 0"):
            steps.gpu_pair(marks)
        return
    first, second = steps.gpu_pair(marks).result
    a_start, a_end = map(float, steps.marked(marks, "gpu-a")[0].split())
    b_start, b_end = map(float, steps.marked(marks, "gpu-b")[0].split())
    overlap = a_start < b_end and b_start < a_end
    assert first["pid"] != second["pid"]  # a fresh worker per GPU step
    if devices == "2":
        assert {first["devices"], second["devices"]} == {"0", "1"} and overlap
    else:
        assert first["devices"] == second["devices"] == "0" and not overlap
