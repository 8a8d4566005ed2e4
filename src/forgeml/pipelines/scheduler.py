"""``forgeml scheduler``: fires pipeline schedules on their clocks and on events.

All state lives in the metadata store, so the process can be killed and started again,
and several can run at once. Two guards keep a slot from running twice:

1. a firing is claimed by a compare-and-set update (``next_fire_at`` or the event
   cursor moves on only if it still holds the value this scheduler read), so exactly
   one scheduler wins each slot;
2. the run is launched with a ``dedupe_key`` naming the slot (``schedule:NAME@TIME``) or
   the event (``event:NAME@ID``), unique in ``pipeline_runs``: even a run started twice
   by accident records once, and the second exits with "already exists", which is
   logged as a skip.

Slots missed while no scheduler ran fire once, for the newest of them; the rest are
logged as skipped. Each run is a child process (``forgeml pipelines run``); at most
``max_concurrent`` run at once and a slot that finds no room waits for the next pass.

On SIGTERM or SIGINT the scheduler stops claiming and returns; runs already started
keep going to completion on their own (they are in their own session, record their
own state, and a later scheduler does not start them again).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from forgeml import backend, config
from forgeml.errors import ForgeMLError, InvalidArgumentError
from forgeml.pipelines.cron import latest_due, next_fire
from forgeml.pipelines.schedules_api import clock_of
from forgeml.store.schedules import Event, ScheduleRecord

log = logging.getLogger("forgeml.scheduler")


def log_event(event: str, **fields: Any) -> None:
    """One structured log line: a JSON object with the time, the event and its fields."""
    line = {"ts": round(time.time(), 3), "event": event, **fields}
    log.info(orjson.dumps(line, default=str).decode())


def slot_text(stamp: float) -> str:
    """A slot as ISO 8601 UTC, the form used in dedupe keys."""
    moment = dt.datetime.fromtimestamp(stamp, dt.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class Firing:
    """A run launched by this scheduler."""

    schedule: str
    trigger: str
    dedupe_key: str
    process: subprocess.Popen[bytes]
    output: Path
    started: float = field(default_factory=time.time)


class Scheduler:
    """Fires due schedules; ``tick`` does one pass, ``run_forever`` loops until signalled."""

    def __init__(self, poll_interval: float = 1.0, max_concurrent: int = 2) -> None:
        if poll_interval <= 0:
            raise InvalidArgumentError(f"poll_interval must be positive, got {poll_interval}")
        if max_concurrent < 1:
            raise InvalidArgumentError(f"max_concurrent must be at least 1, got {max_concurrent}")
        self.poll_interval = poll_interval
        self.max_concurrent = max_concurrent
        self.running: list[Firing] = []
        self.stopping = threading.Event()
        self.log_dir = config.settings().home / "scheduler"
        self._takes_event: dict[str, bool] = {}

    # -- the loop ---------------------------------------------------------------------
    def run_forever(self) -> None:
        """Tick every ``poll_interval`` seconds until SIGTERM/SIGINT (or :meth:`stop`)."""
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda signum, _frame: self.stop(signum))
        log_event("scheduler_started", pid=os.getpid(), max_concurrent=self.max_concurrent)
        while not self.stopping.is_set():
            try:
                self.tick()
            except ForgeMLError as exc:  # a bad row or a database hiccup: log, keep serving
                log_event("tick_failed", error=str(exc))
            except Exception as exc:
                if not _is_transient(exc):
                    raise
                log_event("tick_failed", error=f"{type(exc).__name__}: {exc}")
            self.stopping.wait(self.poll_interval)
        self.reap()
        log_event("scheduler_stopped", still_running=len(self.running))

    def stop(self, signum: int | None = None) -> None:
        """Stop after the current pass; started runs carry on by themselves."""
        if signum is not None:
            log_event("signal", signal=signal.Signals(signum).name)
        self.stopping.set()

    def tick(self, now: float | None = None) -> list[Firing]:
        """One pass: reap finished runs, fire due clock slots and pending events."""
        now = time.time() if now is None else now
        self.reap()
        fired: list[Firing] = []
        schedules = backend.schedules().list(enabled_only=True)
        if not schedules:
            return fired
        oldest = min(s.last_event_id or 0 for s in schedules)
        pending = backend.events().since(oldest)
        for record in schedules:
            if self.stopping.is_set():
                break
            if record.next_fire_at is not None and record.next_fire_at <= now:
                firing = self._fire_slot(record, now)
                if firing is not None:
                    fired.append(firing)
            fired.extend(self._fire_events(record, pending))
        return fired

    # -- firing -----------------------------------------------------------------------
    def _fire_slot(self, record: ScheduleRecord, now: float) -> Firing | None:
        clock = clock_of(record)
        due = record.next_fire_at
        if clock is None or due is None or not self._has_room(record.name):
            return None
        slot, skipped = latest_due(clock, due, now)
        following = next_fire(clock, max(slot, now))
        if not backend.schedules().claim_slot(record.name, due, following):
            log_event("slot_taken", schedule=record.name, slot=slot_text(due))
            return None
        if skipped:
            log_event(
                "slots_skipped",
                schedule=record.name,
                skipped=skipped,
                first=slot_text(due),
                firing=slot_text(slot),
            )
        key = f"schedule:{record.name}@{slot_text(slot)}"
        return self._launch(record, f"schedule:{record.name}", key, record.params)

    def _fire_events(self, record: ScheduleRecord, pending: list[Event]) -> list[Firing]:
        fired: list[Firing] = []
        cursor = record.last_event_id
        newer = [e for e in pending if e.id > (cursor or 0)]
        for event in newer:
            if not _matches(record, event):
                continue
            if not self._has_room(record.name):
                return fired
            if not backend.schedules().claim_event(record.name, cursor, event.id):
                log_event("event_taken", schedule=record.name, event_id=event.id)
                return fired
            cursor = event.id
            params = dict(record.params)
            if self._pipeline_takes_event(record.pipeline):
                params["event"] = event.as_param()
            key = f"event:{record.name}@{event.id}"
            firing = self._launch(record, f"{event.kind}:{event.subject}", key, params)
            if firing is not None:
                fired.append(firing)
        if newer and newer[-1].id != cursor:  # nothing for us after the cursor: move past it
            backend.schedules().claim_event(record.name, cursor, newer[-1].id)
        return fired

    def _has_room(self, name: str) -> bool:
        self.reap()
        if len(self.running) < self.max_concurrent:
            return True
        log_event("busy", schedule=name, running=len(self.running))
        return False

    def _pipeline_takes_event(self, ref: str) -> bool:
        """Whether the pipeline function has a parameter named ``event`` (imported once)."""
        if ref not in self._takes_event:
            from forgeml.pipelines.api import load_pipeline

            if str(Path.cwd()) not in sys.path:
                sys.path.insert(0, str(Path.cwd()))
            try:
                takes = "event" in load_pipeline(ref).signature.parameters
            except ForgeMLError as exc:
                log_event("pipeline_unloadable", pipeline=ref, error=str(exc))
                takes = False
            self._takes_event[ref] = takes
        return self._takes_event[ref]

    def _launch(
        self, record: ScheduleRecord, trigger: str, key: str, params: dict[str, Any]
    ) -> Firing | None:
        command = [sys.executable, "-m", "forgeml", "pipelines", "run", record.pipeline]
        for name, value in params.items():
            command += ["--param", f"{name}={orjson.dumps(value).decode()}"]
        command += ["--trigger", trigger, "--dedupe-key", key, "--json"]
        self.log_dir.mkdir(parents=True, exist_ok=True)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in key)
        output = self.log_dir / f"{safe}.log"
        with output.open("ab") as sink:
            try:
                process = subprocess.Popen(
                    command,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,  # a Ctrl-C to the scheduler does not kill runs
                )
            except OSError as exc:
                log_event("launch_failed", schedule=record.name, dedupe_key=key, error=str(exc))
                return None
        firing = Firing(record.name, trigger, key, process, output)
        self.running.append(firing)
        log_event(
            "fired",
            schedule=record.name,
            pipeline=record.pipeline,
            trigger=trigger,
            dedupe_key=key,
            pid=process.pid,
        )
        return firing

    # -- children ---------------------------------------------------------------------
    def reap(self) -> list[Firing]:
        """Collect runs that ended; logs each outcome, and duplicates as skips."""
        done = [f for f in self.running if f.process.poll() is not None]
        for firing in done:
            self.running.remove(firing)
            _report(firing)
        return done

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for every started run; True if none is left."""
        deadline = time.monotonic() + timeout
        while self.running and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.05)
        self.reap()
        return not self.running


def _matches(record: ScheduleRecord, event: Event) -> bool:
    if event.kind == "manual":
        return event.subject == record.name
    if event.kind != record.event_kind:
        return False
    return record.event_subject in ("*", event.subject)


def _report(firing: Firing) -> None:
    code = firing.process.returncode
    text = _tail(firing.output)
    fields: dict[str, Any] = {
        "schedule": firing.schedule,
        "dedupe_key": firing.dedupe_key,
        "seconds": round(time.time() - firing.started, 3),
    }
    if code == 2 and "already exists" in text:
        log_event("skipped_duplicate", **fields)
        return
    run_id = _run_id(firing.output)
    if run_id is not None:
        fields["run_id"] = run_id
        try:
            backend.schedules().set_last_run(firing.schedule, run_id)
        except ForgeMLError:
            pass  # the schedule was removed while its run ran
    if code == 0:
        log_event("run_succeeded", **fields)
    else:
        last = text.strip().splitlines()[-1] if text.strip() else ""
        log_event("run_failed", exit_code=code, error=last[-500:], **fields)


def _tail(path: Path, size: int = 4096) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - size))
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


def _run_id(path: Path) -> str | None:
    """The run id from ``forgeml pipelines run --json`` output (its first JSON object)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    start = text.find("{")
    if start < 0:
        return None
    end = text.find("\n}", start)
    try:
        found = orjson.loads(text[start : end + 2])
    except orjson.JSONDecodeError:
        return None
    value = found.get("id") if isinstance(found, dict) else None
    return value if isinstance(value, str) else None


def _is_transient(exc: Exception) -> bool:
    """A database that is briefly unreachable should not end a long-running scheduler."""
    sqlalchemy_exc = sys.modules.get("sqlalchemy.exc")
    return sqlalchemy_exc is not None and isinstance(exc, sqlalchemy_exc.OperationalError)


def configure_logging(stream: IO[str] | None = None) -> None:
    """Send the scheduler's JSON lines to ``stream`` (stderr by default), one per line."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False


__all__ = ["Firing", "Scheduler", "configure_logging", "log_event", "slot_text"]
