"""Verbs on recorded pipeline runs: find them, explain them, read their logs, resume them."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from forgeml import backend
from forgeml.errors import NotFoundError, PipelineError
from forgeml.pipelines.dsl import LOADED_MAIN as _LOADED_MAIN, Pipeline, load_module_file
from forgeml.pipelines.runner import PipelineRun, reap, run_pipeline
from forgeml.pipelines.worker import LOG_FILES, _resolve
from forgeml.store.records import PipelineRunRecord, PipelineStatus, StepRunRecord


def get_run(run_id: str) -> PipelineRun:
    """A recorded run (a unique prefix of its id will do)."""
    reap()
    repo = backend.pipelines()
    record = repo.get_run(run_id)
    return PipelineRun(record, repo.steps(record.id))


def list_runs(
    pipeline: str | None = None, status: str | None = None, limit: int = 50
) -> list[PipelineRunRecord]:
    """Newest first; runs whose orchestrating process died are marked failed first."""
    reap()
    return backend.pipelines().list_runs(pipeline, status, limit)


def explain(run_id: str) -> list[dict[str, Any]]:
    """Per step: what happened (ran, cached, reused, failed, skipped) and why."""
    run = get_run(run_id)
    explained = []
    for step in run.steps:
        info = dict(step.explain or {})
        explained.append(
            {
                "step": step.step,
                "status": step.status.value,
                "decision": info.get("decision", step.status.value),
                "reason": info.get("reason") or step.error or "",
                "cache_key": step.cache_key,
                "source": info.get("source"),
                "code_hash": step.code_hash,
                "inputs": info.get("inputs", {}),
                "attempts": step.attempts,
            }
        )
    return explained


def logs(run_id: str, step: str, attempt: int | None = None) -> dict[str, str]:
    """An attempt's stdout, stderr and structured log lines (the last attempt by default).

    While a step runs its logs are read from the files it is writing; once it ended,
    from the artifact store, which has them whichever machine ran it.
    """
    run = get_run(run_id)
    record = backend.pipelines().get_step(run.id, step)
    attempts = record.logs or {}
    if attempt is None:
        attempt = record.attempts
    if attempt < 1:
        raise NotFoundError(f"step {step!r} of run {run.id} has not run ({record.status})")
    entry = attempts.get(str(attempt))
    directory = Path(entry["dir"]) if entry else _log_dir(run.record, step, attempt)
    found: dict[str, str] = {}
    for name in LOG_FILES:
        digest = (entry or {}).get("files", {}).get(name)
        if digest is not None:
            found[name] = backend.artifact_store().read_bytes(digest).decode(errors="replace")
        elif (directory / name).is_file():
            found[name] = (directory / name).read_text(errors="replace")
        else:
            found[name] = ""
    return found


def _log_dir(run: PipelineRunRecord, step: str, attempt: int) -> Path:
    from forgeml import config

    return config.settings().home / "pipelines" / run.id / step / f"attempt-{attempt}"


def resume(
    run_id: str, *, executor: str | None = None, progress: bool | None = None
) -> PipelineRun:
    """Run a failed run again as a new run: finished steps are reused, not recomputed.

    A finished step is reused when its code and inputs are unchanged; the failed step
    and everything after it run. The new run records which run it resumes.
    """
    previous = get_run(run_id).record
    if previous.status == PipelineStatus.RUNNING:
        raise PipelineError(
            f"pipeline run {previous.id} is still running (pid {previous.pid} on {previous.host})",
            previous.id,
        )
    if previous.status == PipelineStatus.SUCCEEDED:
        raise PipelineError(f"pipeline run {previous.id} succeeded: nothing to resume", previous.id)
    pipeline = load_pipeline(previous.ref, previous.source_file)
    params = _resolve(previous.params, {})
    return run_pipeline(
        pipeline,
        params,
        executor=executor,
        progress=progress,
        trigger=f"resume:{previous.id}",
        resume_from=previous,
    )


def load_pipeline(ref: str, source_file: str | None = None) -> Pipeline[Any]:
    """The pipeline ``module:qualname`` (or ``path/to/file.py:name``), imported."""
    module_name, _, qualname = ref.partition(":")
    if not qualname:
        raise PipelineError(f"{ref!r}: expected module:function or path/to/file.py:function")
    if module_name in ("__main__", _LOADED_MAIN):
        if source_file is None:
            raise PipelineError(f"{ref!r}: the run did not record the file of its script")
        module = load_module_file(Path(source_file))
    elif module_name.endswith(".py"):
        module = load_module_file(Path(module_name))
    else:
        _add_import_root(module_name, source_file)
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise PipelineError(
                f"cannot import {module_name!r} for pipeline {ref!r}: {exc}"
            ) from exc
    target: Any = module
    for part in qualname.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise PipelineError(f"{ref!r}: {module_name} has no {qualname!r}")
    if not isinstance(target, Pipeline):
        raise PipelineError(f"{ref!r} is not a pipeline (decorate it with @fm.pipeline)")
    return target


def _add_import_root(module_name: str, source_file: str | None) -> None:
    """Make ``module_name`` importable from where its file was when the run was recorded.

    ``pkg.flows`` recorded at ``/src/pkg/flows.py`` is imported with ``/src`` on the
    path: a run can be resumed from any directory, as its worker processes were started.
    """
    import sys

    if source_file is None:
        return
    root = Path(source_file).parent
    for _ in range(module_name.count(".")):
        root = root.parent
    if root.is_dir() and str(root) not in sys.path:
        sys.path.append(str(root))


__all__ = ["StepRunRecord", "explain", "get_run", "list_runs", "load_pipeline", "logs", "resume"]
