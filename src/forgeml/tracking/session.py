"""The tracking client of one process: opens and ends runs, owns the writer and monitor.

"The current run" is a ``ContextVar``, so threads and asyncio tasks each see their own
and a nested ``start_run`` finds its parent without any global state.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from types import TracebackType
from typing import Any

from forgeml import backend, config
from forgeml.errors import ArtifactError, InvalidArgumentError
from forgeml.store.records import ArtifactRecord, Run, RunStatus
from forgeml.store.runs import NewRun
from forgeml.tracking import environment
from forgeml.tracking.active_run import ActiveRun, check_key
from forgeml.tracking.resources import ResourceMonitor
from forgeml.tracking.writer import BufferedWriter

current_run: ContextVar[ActiveRun | None] = ContextVar("forgeml_current_run", default=None)

_WORDS = (
    "amber",
    "brisk",
    "calm",
    "deft",
    "eager",
    "fleet",
    "grand",
    "hardy",
    "keen",
    "lucid",
    "merry",
    "noble",
    "quiet",
    "rapid",
    "sly",
    "swift",
    "tidy",
    "vivid",
)
_NOUNS = (
    "badger",
    "crane",
    "dingo",
    "egret",
    "falcon",
    "gecko",
    "heron",
    "ibis",
    "jackal",
    "koala",
    "lynx",
    "marten",
    "newt",
    "otter",
    "puffin",
    "quail",
    "raven",
    "stoat",
)


def default_run_name(run_id: str) -> str:
    number = int(run_id[:8], 16)
    return f"{_WORDS[number % len(_WORDS)]}-{_NOUNS[(number >> 8) % len(_NOUNS)]}-{run_id[:4]}"


class TrackingSession:
    def __init__(self) -> None:
        settings = config.settings()
        self.writer = BufferedWriter(backend.runs, settings.flush_interval, settings.flush_size)
        self.monitor = ResourceMonitor(settings.monitor_interval)
        self._open: dict[str, ActiveRun] = {}
        self._open_lock = threading.Lock()
        self._failure: str | None = None
        atexit.register(self.close)
        self._previous_hook = sys.excepthook
        sys.excepthook = self._excepthook

    # -- runs ---------------------------------------------------------------------------
    def start_run(
        self,
        experiment: str | None,
        name: str | None,
        tags: Mapping[str, Any] | None,
        parent: ActiveRun | None,
        description: str | None,
    ) -> ActiveRun:
        if experiment is None:
            experiment = parent.experiment if parent is not None else "default"
        check_key("experiment", experiment)
        repo = backend.runs()
        experiment_id = repo.get_or_create_experiment(experiment)
        env = environment.environment()
        repo.ensure_environment(env.digest, env.body)
        code = environment.code_version()
        run_id = uuid.uuid4().hex
        run_name = name or default_run_name(run_id)
        check_key("run", run_name)
        all_tags = {str(k): str(v) for k, v in (tags or {}).items()}
        for key in all_tags:
            check_key("tag", key)
        if description:
            all_tags["description"] = description
        step = os.environ.get("FORGEML_PIPELINE_STEP") if parent is None else None
        if step:
            all_tags.setdefault("pipeline.step", step)
        new_run = NewRun(
            id=run_id,
            experiment_id=experiment_id,
            name=run_name,
            user=config.settings().user,
            start_time=time.time(),
            parent_id=parent.id if parent is not None else None,
            git_sha=code.git_sha,
            git_dirty=code.git_dirty,
            command=environment.command_line(),
            host=environment.hostname(),
            environment_digest=env.digest,
        )
        # The row is written with the run's first batch: a short run costs one transaction.
        self.writer.add_run(new_run, [(run_id, k, v) for k, v in all_tags.items()])
        if step:
            from forgeml.lineage_graph import record

            record(("step_run", step), ("run", run_id), "ran")
        run = ActiveRun(self, run_id, experiment, run_name, parent)
        with self._open_lock:
            self._open[run_id] = run
        self.monitor.start(run_id)
        run._token = current_run.set(run)
        return run

    def finish(self, run: ActiveRun, status: RunStatus, error: str | None) -> None:
        system = self.monitor.stop(run.id)
        self.writer.flush(finish=(run.id, status, time.time(), error, system))
        with self._open_lock:
            self._open.pop(run.id, None)
        token, run._token = run._token, None
        if current_run.get() is run:
            try:
                if token is None:
                    raise ValueError
                current_run.reset(token)
            except ValueError:  # ended from another context than it started in
                current_run.set(run.parent if run.parent and not run.parent.ended else None)

    def get_run(self, run_id: str) -> Run:
        self.writer.flush()
        return backend.runs().get_run(run_id)

    # -- artifacts ----------------------------------------------------------------------
    def log_artifact(
        self, run_id: str, path: Path, artifact_path: str | None
    ) -> list[ArtifactRecord]:
        if not path.exists():
            raise ArtifactError(f"cannot log artifact {path}: no such file or directory")
        store = backend.artifact_store()
        base = _clean_artifact_path(artifact_path) if artifact_path else ""
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        records = []
        for file in files:
            relative = file.relative_to(path).as_posix() if path.is_dir() else file.name
            if path.is_dir():
                relative = f"{path.name}/{relative}"
            target = f"{base}/{relative}" if base else relative
            blob = store.put_file(file)
            records.append(ArtifactRecord(target, blob.digest, blob.size, time.time()))
        self.writer.flush()  # the run's row may still be in the buffer
        backend.runs().add_artifacts(run_id, records)
        return records

    def log_bytes(self, run_id: str, data: bytes, artifact_path: str) -> ArtifactRecord:
        target = _clean_artifact_path(artifact_path)
        blob = backend.artifact_store().put_bytes(data)
        record = ArtifactRecord(target, blob.digest, blob.size, time.time())
        self.writer.flush()
        backend.runs().add_artifacts(run_id, [record])
        return record

    # -- process lifecycle --------------------------------------------------------------
    def _excepthook(
        self, exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
    ) -> None:
        self._failure = "".join(traceback.format_exception(exc_type, exc, tb))
        self._previous_hook(exc_type, exc, tb)

    def close(self) -> None:
        """At exit: end runs left open (FAILED if the program died of an exception)."""
        with self._open_lock:
            still_open = list(self._open.values())
        for run in reversed(still_open):
            try:
                if self._failure is not None:
                    run.end(RunStatus.FAILED, self._failure)
                else:
                    run.end(RunStatus.FINISHED)
            except Exception as exc:
                print(f"forgeml: could not end run {run.id}: {exc}", file=sys.stderr)
        self.writer.close()
        self.monitor.shutdown()
        atexit.unregister(self.close)
        if sys.excepthook == self._excepthook:
            sys.excepthook = self._previous_hook


def _clean_artifact_path(path: str) -> str:
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise InvalidArgumentError(
            f"artifact path {path!r} must be a relative path inside the run (no '..')"
        )
    return "/".join(parts)
