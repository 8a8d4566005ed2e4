"""One attempt of one step, in whatever process runs it (a local worker or a Ray task).

The attempt reads its inputs from the artifact store, runs the function with its
stdout, stderr and log records captured to files, stores its outputs, and sends back
small records only. Output written straight to file descriptors 1 and 2 (C libraries,
subprocesses) is captured too.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import pickle
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

REF = "__fm_ref__"  # {"__fm_ref__": stored record}: a value another step produced
TUPLE = "__fm_tuple__"  # {"__fm_tuple__": [...]}: a tuple, which JSON would make a list
LOG_FILES = ("stdout.log", "stderr.log", "events.jsonl")
STEP_ENV = "FORGEML_PIPELINE_STEP"  # "{pipeline run id}/{step}" while a step runs


@dataclass(frozen=True)
class Task:
    run_id: str
    step: str
    attempt: int
    function: bytes  # the pickled Step (by reference) or, on Ray, the function (cloudpickle)
    arguments: dict[str, Any]  # JSON tree with REF and TUPLE markers
    outputs: int | None  # how many outputs the function's tuple holds; None: one value
    log_dir: str
    env: dict[str, str] = field(default_factory=dict)  # the orchestrator's forgeml settings
    cwd: str | None = None
    python_path: list[str] = field(default_factory=list)  # the orchestrator's sys.path


@dataclass(frozen=True)
class TaskResult:
    step: str
    attempt: int
    ok: bool
    outputs: list[dict[str, Any]] | None = None
    error: str | None = None
    started_at: float = 0.0
    ended_at: float = 0.0
    logs: dict[str, str] = field(default_factory=dict)  # file name -> artifact digest


def execute(task: Task) -> TaskResult:
    """Run one attempt; never raises (a failure is a result with its traceback)."""
    from forgeml.pipelines import values

    started = time.time()
    _settle(task)
    log_dir = Path(task.log_dir)
    outputs: list[dict[str, Any]] | None = None
    error: str | None = None
    try:
        with _captured(log_dir, task):
            try:
                arguments = {k: _resolve(v, {}) for k, v in task.arguments.items()}
                loaded = pickle.loads(task.function)  # after _settle: its module can import
                function = getattr(loaded, "function", loaded)
                # Runs the step opens are tagged with it and linked to it in the lineage.
                os.environ[STEP_ENV] = f"{task.run_id}/{task.step}"
                try:
                    result = function(**arguments)
                finally:
                    os.environ.pop(STEP_ENV, None)
                outputs = [values.store(part) for part in _split(result, task)]
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # the step's own failure (sys.exit too)
                traceback.print_exc()
                error = _error_text(exc)
    except BaseException as exc:  # capturing itself failed
        error = error or _error_text(exc)
    logs = store_logs(log_dir)
    return TaskResult(
        task.step, task.attempt, error is None, outputs, error, started, time.time(), logs
    )


def settings_env() -> dict[str, str]:
    """The orchestrator's resolved settings, for workers started elsewhere or earlier."""
    from forgeml import config

    current = config.settings()
    return {
        "FORGEML_HOME": str(current.home),
        "FORGEML_DB_URL": current.db_url,
        "FORGEML_ARTIFACTS_URL": current.artifacts_url,
        "FORGEML_ONLINE_URL": current.online_url,
        "FORGEML_USER": current.user,
    }


def _settle(task: Task) -> None:
    settle(task.env, task.cwd, task.python_path)


def settle(env: dict[str, str], cwd: str | None, python_path: list[str]) -> None:
    """Take the orchestrator's settings, working directory and import path.

    A worker may be reused across runs, or forked from a server (or started by Ray)
    before the settings changed: stores opened under other settings are closed first.
    """
    from forgeml import backend

    if any(os.environ.get(k) != v for k, v in env.items()):
        os.environ.update(env)
        backend.reset()
    if cwd and Path(cwd).is_dir() and os.getcwd() != cwd:
        os.chdir(cwd)
    for entry in python_path:
        if entry not in sys.path and Path(entry or ".").is_dir():
            sys.path.append(entry)


def store_logs(log_dir: Path) -> dict[str, str]:
    """Put an attempt's log files in the artifact store: digests by file name."""
    from forgeml import backend

    stored = {}
    for name in LOG_FILES:
        path = log_dir / name
        if path.is_file() and path.stat().st_size > 0:  # a quiet step stores nothing
            stored[name] = backend.artifact_store().put_file(path).digest
    return stored


def _error_text(exc: BaseException) -> str:
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    tail = "".join(lines[-12:])
    return f"{type(exc).__name__}: {exc}\n\n{tail}".strip()


def _split(result: Any, task: Task) -> list[Any]:
    if task.outputs is None:
        return [result]
    if not isinstance(result, tuple | list) or len(result) != task.outputs:
        raise TypeError(
            f"step {task.step!r} declares {task.outputs} outputs but returned "
            f"{type(result).__name__}"
            + (f" of length {len(result)}" if isinstance(result, tuple | list) else "")
        )
    return list(result)


def _resolve(value: Any, loaded: dict[str, Any]) -> Any:
    from forgeml.pipelines import values

    if isinstance(value, dict):
        if REF in value:
            record = value[REF]
            key = record["digest"] + record["kind"]
            if key not in loaded:
                loaded[key] = values.load(record)
            return loaded[key]
        if TUPLE in value:
            return tuple(_resolve(v, loaded) for v in value[TUPLE])
        return {k: _resolve(v, loaded) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, loaded) for v in value]
    return value


# -- capturing output ----------------------------------------------------------------------


class _JsonLines(logging.Handler):
    """Log records as JSON lines: time, level, logger, message, and any extra fields."""

    _standard = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

    def __init__(self, path: Path, task: Task) -> None:
        super().__init__(logging.DEBUG)
        self.handle_file = path.open("ab")
        self.task = task
        self.lock_file = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            entry: dict[str, Any] = {
                "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
                "level": record.levelname,
                "logger": record.name,
                "message": record.getMessage(),
                "step": self.task.step,
                "attempt": self.task.attempt,
            }
            for key, value in record.__dict__.items():
                if key not in self._standard and not key.startswith("_"):
                    entry[key] = value
            if record.exc_info:
                entry["exception"] = "".join(traceback.format_exception(*record.exc_info))
            line = orjson.dumps(entry, default=str) + b"\n"
            with self.lock_file:
                self.handle_file.write(line)
                self.handle_file.flush()
        except Exception:  # a log record must never fail the step
            self.handleError(record)

    def close(self) -> None:
        self.handle_file.close()
        super().close()


@contextlib.contextmanager
def _captured(log_dir: Path, task: Task) -> Iterator[None]:
    """File descriptors 1 and 2 and the root logger, into ``log_dir`` for the attempt."""
    log_dir.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    out = open(log_dir / "stdout.log", "ab")  # noqa: SIM115 - closed below
    err = open(log_dir / "stderr.log", "ab")  # noqa: SIM115
    handler = _JsonLines(log_dir / "events.jsonl", task)
    root = logging.getLogger()
    level = root.level
    os.dup2(out.fileno(), 1)
    os.dup2(err.fileno(), 2)
    root.addHandler(handler)
    root.setLevel(min(level, logging.INFO) if level else logging.INFO)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        root.removeHandler(handler)
        root.setLevel(level)
        handler.close()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        out.close()
        err.close()


# -- a local worker process ----------------------------------------------------------------


def serve(connection: Any, parent: int) -> None:
    """The loop of a local worker process: tasks in, results out, until told to stop."""
    _exit_with_parent(parent)
    connection.send("ready")
    while True:
        try:
            task = connection.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        connection.send(execute(task))


def _exit_with_parent(parent: int) -> None:
    """If the orchestrating process dies, its workers must not outlive it."""

    def watch() -> None:
        while True:
            try:
                os.kill(parent, 0)  # signal 0: is it still there?
            except ProcessLookupError:
                os._exit(3)
            except PermissionError:
                pass
            time.sleep(0.5)

    threading.Thread(target=watch, name="forgeml-parent-watch", daemon=True).start()
