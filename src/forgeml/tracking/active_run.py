"""A run in progress: what ``fm.start_run`` returns and what ``fm.log_*`` write to.

Values are validated here, at the call, so a mistake surfaces on the line that made it;
writing is left to the process's buffered writer.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Mapping
from contextvars import Token
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from forgeml.errors import InvalidArgumentError
from forgeml.store.records import ArtifactRecord, Run, RunStatus

if TYPE_CHECKING:
    from forgeml.tracking.session import TrackingSession

_MAX_KEY = 256


def check_key(kind: str, key: Any) -> str:
    if not isinstance(key, str) or not key.strip():
        raise InvalidArgumentError(f"{kind} name must be a non-empty string, got {key!r}")
    if len(key) > _MAX_KEY:
        raise InvalidArgumentError(
            f"{kind} name {key[:40]!r}... is {len(key)} characters long (the limit is {_MAX_KEY})"
        )
    return key


def metric_value(key: str, value: Any) -> float:
    if isinstance(value, float):
        return value
    if isinstance(value, (str, bytes)) or value is None:
        raise InvalidArgumentError(f"metric {key!r} must be a number, got {value!r}")
    try:
        return float(value)  # ints, numpy scalars, 0-d arrays, one-element tensors
    except (TypeError, ValueError):
        raise InvalidArgumentError(
            f"metric {key!r} must be a number, got {type(value).__name__} {value!r:.60}"
        ) from None


def param_text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


class ActiveRun:
    """A run that is open in this process. Use it as a context manager, or call :meth:`end`."""

    def __init__(
        self,
        session: TrackingSession,
        run_id: str,
        experiment: str,
        name: str,
        parent: ActiveRun | None,
    ) -> None:
        self._session = session
        self.id = run_id
        self.experiment = experiment
        self.name = name
        self.parent = parent
        self._params: dict[str, str] = {}
        self._steps: dict[str, int] = {}
        self._token: Token[ActiveRun | None] | None = None
        self.status: RunStatus = RunStatus.RUNNING

    def __repr__(self) -> str:
        return f"<ActiveRun {self.id[:8]} {self.experiment}/{self.name} {self.status.value}>"

    @property
    def ended(self) -> bool:
        return self.status is not RunStatus.RUNNING

    # -- logging ------------------------------------------------------------------------
    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record hyperparameters; a param is set once per run (same value again is fine)."""
        self._check_open()
        rows = []
        for key, value in params.items():
            check_key("param", key)
            text = param_text(value)
            known = self._params.get(key)
            if known is not None and known != text:
                raise InvalidArgumentError(
                    f"param {key!r} of run {self.id[:8]} is already {known!r}; params cannot "
                    f"change within a run (got {text!r})"
                )
            if known is None:
                self._params[key] = text
                rows.append((self.id, key, text))
        if rows:
            self._session.writer.add_params(rows)

    def log_metric(self, key: str, value: Any, step: int | None = None) -> None:
        """Record one value of a metric; without ``step`` it counts 0, 1, 2... per key."""
        if self.status is not RunStatus.RUNNING:
            self._check_open()
        if key not in self._steps:
            check_key("metric", key)
        number = value if type(value) is float else metric_value(key, value)
        if step is None:
            step = self._steps.get(key, 0)
        elif type(step) is not int:
            step = self._check_step(key, step)
        self._steps[key] = step + 1
        self._session.writer.add_metric((self.id, key, number, step, time.time()))

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        self._check_open()
        now = time.time()
        rows = []
        for key, value in metrics.items():
            check_key("metric", key)
            number = metric_value(key, value)
            at = self._steps.get(key, 0) if step is None else self._check_step(key, step)
            self._steps[key] = at + 1
            rows.append((self.id, key, number, at, now))
        self._session.writer.add_metrics(rows)

    @staticmethod
    def _check_step(key: str, step: Any) -> int:
        if isinstance(step, bool) or not isinstance(step, int):
            try:
                as_int = int(step)
            except (TypeError, ValueError):
                as_int = None
            if as_int is None or as_int != step:
                raise InvalidArgumentError(
                    f"step of metric {key!r} must be a whole number, got {step!r}"
                )
            step = as_int
        return int(step)

    def set_tag(self, key: str, value: Any) -> None:
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Tags label a run and, unlike params, may be changed later."""
        self._check_open()
        rows = [(self.id, check_key("tag", k), str(v)) for k, v in tags.items()]
        self._session.writer.add_tags(rows)

    def log_artifact(
        self, path: str | os.PathLike[str], artifact_path: str | None = None
    ) -> list[ArtifactRecord]:
        """Store a file, or a directory recursively, as artifacts of this run."""
        return self._session.log_artifact(self.id, Path(path), artifact_path)

    def log_text(self, text: str, artifact_path: str) -> ArtifactRecord:
        return self._session.log_bytes(self.id, text.encode(), artifact_path)

    def log_dict(self, data: Mapping[str, Any], artifact_path: str) -> ArtifactRecord:
        import orjson

        body = orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
        return self._session.log_bytes(self.id, body, artifact_path)

    def log_model(self, model: Any, name: str, **options: Any) -> Any:
        """Register ``model`` as a new version of ``name``, produced by this run."""
        from forgeml.registry import api

        return api.log_model(model, name, run_id=self.id, **options)

    # -- lifecycle ----------------------------------------------------------------------
    def _check_open(self) -> None:
        if self.status is not RunStatus.RUNNING:
            raise InvalidArgumentError(
                f"run {self.id[:8]} ({self.name}) has ended ({self.status.value}); "
                "start a new run to log more"
            )

    def end(self, status: RunStatus | str = RunStatus.FINISHED, error: str | None = None) -> None:
        """Flush what is buffered and record the outcome; ending twice is a no-op."""
        if self.status is not RunStatus.RUNNING:
            return
        self.status = RunStatus(status)
        self._session.finish(self, self.status, error)

    def info(self) -> Run:
        """The stored run as it is now (buffered values are written first)."""
        return self._session.get_run(self.id)

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.end(RunStatus.FINISHED)
        elif issubclass(exc_type, KeyboardInterrupt):
            self.end(RunStatus.KILLED, "interrupted (KeyboardInterrupt)")
        else:
            self.end(RunStatus.FAILED, "".join(traceback.format_exception(exc_type, exc, tb)))
