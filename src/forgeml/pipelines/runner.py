"""Running a pipeline graph: which step runs when, from cache, again, or not at all.

The orchestrating process owns the run's state in the metadata store. It starts every
step whose inputs are ready, as long as the executor has room; it takes a step's
results from an earlier run when the step's cache key (code, inputs, parameters) was
seen before; it retries failed attempts with exponential backoff; and when a step
fails for good it skips what depends on it and lets independent branches finish.
A heartbeat shows other processes that the run is alive.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import socket
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson

from forgeml import backend, config
from forgeml.errors import InvalidArgumentError, PipelineError
from forgeml.pipelines import values
from forgeml.pipelines.dsl import Graph, Node, Output, Pipeline, Resources
from forgeml.pipelines.worker import REF, TUPLE, Task, TaskResult, settings_env
from forgeml.store.records import PipelineRunRecord, PipelineStatus, StepRunRecord, StepStatus

_POLL_SECONDS = 0.5


class Executor(Protocol):
    name: str

    def can_start(self, resources: Resources) -> bool: ...

    def submit(self, task: Task, resources: Resources, timeout: float | None) -> None: ...

    def wait(self, timeout: float) -> list[TaskResult]: ...

    def shutdown(self) -> None: ...


@dataclass
class PipelineRun:
    """A pipeline run as recorded: its status, its steps, and a way to read outputs."""

    record: PipelineRunRecord
    steps: list[StepRunRecord]

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def status(self) -> PipelineStatus:
        return self.record.status

    def step(self, name: str) -> StepRunRecord:
        for found in self.steps:
            if found.step == name:
                return found
        names = ", ".join(s.step for s in self.steps)
        raise InvalidArgumentError(f"pipeline run {self.id} has no step {name!r} ({names})")

    def output(self, step: str, index: int = 0) -> Any:
        """What step ``step`` returned (its ``index``-th output for several)."""
        record = self.step(step)
        if not record.outputs:
            raise PipelineError(f"step {step!r} has no outputs ({record.status})", self.id)
        return values.load(record.outputs[index])

    @property
    def result(self) -> Any:
        """What the pipeline function returned, with step outputs loaded."""
        from forgeml.pipelines.worker import _resolve

        return _resolve(self.record.result, {})


def run_pipeline(
    pipeline: Pipeline[Any],
    params: Mapping[str, Any],
    *,
    executor: str | Executor | None = None,
    max_workers: int | None = None,
    progress: bool | None = None,
    trigger: str = "manual",
    dedupe_key: str | None = None,
    resume_from: PipelineRunRecord | None = None,
    check: bool = True,
) -> PipelineRun:
    """Build ``pipeline`` with ``params`` and run it to the end.

    Raises PipelineError naming the failed step when ``check`` and the run failed; the
    run stays recorded either way and can be resumed.
    """
    graph = pipeline.build(**params)
    orchestrator = _Orchestrator(
        pipeline,
        graph,
        dict(params),
        _executor(executor, max_workers),
        progress=_want_progress(progress),
        trigger=trigger,
        dedupe_key=dedupe_key,
        resume_from=resume_from,
    )
    run = orchestrator.run()
    if check and run.status != PipelineStatus.SUCCEEDED:
        raise PipelineError(
            f"pipeline {pipeline.name!r} run {run.id} failed: {run.record.error}", run.id
        )
    return run


def _executor(executor: str | Executor | None, max_workers: int | None) -> Executor:
    if executor is not None and not isinstance(executor, str):
        return executor
    name = executor or config.settings().executor
    if name == "local":
        from forgeml.pipelines.local import LocalExecutor

        return LocalExecutor(max_workers)
    if name == "ray" or name.startswith("ray://"):
        from forgeml.pipelines.ray_executor import RayExecutor

        return RayExecutor(name, max_workers)
    raise InvalidArgumentError(f"unknown executor {name!r} (expected local, ray or ray://...)")


def _want_progress(progress: bool | None) -> bool:
    if progress is not None:
        return progress
    return sys.stderr.isatty()


# -- arguments, cache keys, explanations ---------------------------------------------------


def encode_arguments(value: Any, outputs: Mapping[str, list[values.Stored]]) -> Any:
    """An argument as JSON: step outputs as REF records, other values stored if not JSON."""
    if isinstance(value, Output):
        produced = outputs[value.node]
        return {REF: produced[value.index if value.index is not None else 0]}
    if isinstance(value, tuple) and _holds_output(value):
        return {TUPLE: [encode_arguments(v, outputs) for v in value]}
    if isinstance(value, list) and _holds_output(value):
        return [encode_arguments(v, outputs) for v in value]
    if isinstance(value, dict) and _holds_output(value):
        if not all(isinstance(k, str) for k in value):
            raise PipelineError("a dict holding step outputs must have string keys")
        return {k: encode_arguments(v, outputs) for k, v in value.items()}
    stored = values.store(value)
    if stored["kind"] == "json" and "value" in stored and not isinstance(value, tuple):
        plain = stored["value"]
        if not (isinstance(plain, dict) and (REF in plain or TUPLE in plain)):
            return plain
    return {REF: stored}


def _holds_output(value: Any) -> bool:
    if isinstance(value, Output):
        return True
    if isinstance(value, list | tuple):
        return any(_holds_output(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_output(v) for v in value.values())
    return False


def _fingerprint(tree: Any) -> Any:
    """The tree with stored values reduced to their digests: what a cache key hashes."""
    if isinstance(tree, dict):
        if REF in tree:
            return {"digest": tree[REF]["digest"]}
        return {k: _fingerprint(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_fingerprint(v) for v in tree]
    return tree


def cache_key(node: Node, arguments: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The step's cache key and the parts it hashes (kept for ``explain``)."""
    parts = {
        "code": node.step.code_hash,
        "inputs": {name: _fingerprint(v) for name, v in arguments.items()},
        "outputs": list(node.step.outputs) if node.step.outputs is not None else None,
    }
    key = hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return key, parts


def _changes(previous: StepRunRecord, parts: dict[str, Any]) -> list[str]:
    """What differs between an earlier execution of a step and this one."""
    found = []
    if previous.code_hash != parts["code"]:
        found.append("its code changed")
    old = (previous.explain or {}).get("inputs", {})
    new = parts["inputs"]
    for name in sorted(set(old) | set(new)):
        if name not in old:
            found.append(f"new input {name!r}")
        elif name not in new:
            found.append(f"input {name!r} is gone")
        elif old[name] != new[name]:
            found.append(f"input {name!r} changed: {_short(old[name])} -> {_short(new[name])}")
    return found


def _short(value: Any) -> str:
    if isinstance(value, dict) and set(value) == {"digest"}:
        return f"<{value['digest'][:12]}>"
    text = orjson.dumps(value, default=str).decode()
    return text if len(text) <= 60 else text[:57] + "..."


def _stored_records(tree: Any) -> list[values.Stored]:
    """The stored values (REF records) inside an argument tree."""
    found: list[values.Stored] = []
    if isinstance(tree, dict):
        if REF in tree:
            return [tree[REF]]
        for value in tree.values():
            found.extend(_stored_records(value))
    elif isinstance(tree, list):
        for value in tree:
            found.extend(_stored_records(value))
    return found


def _value_node(record: values.Stored) -> tuple[str, str]:
    """A stored value's lineage node: the dataset version it is, or its artifact."""
    if record["kind"] == "dataset":
        return ("dataset_version", f"{record['name']}/{record['version']}")
    return ("artifact", record["digest"])


# -- liveness ------------------------------------------------------------------------------


def _process_started(pid: int) -> float:
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return 0.0


def is_alive(run: PipelineRunRecord) -> bool:
    """Whether the process orchestrating ``run`` is still there.

    On this host: the process with that id exists and started when the run's did (so
    a reused id is not mistaken for it). Elsewhere: its heartbeat is recent.
    """
    if run.host == socket.gethostname():
        started = _process_started(run.pid)
        return started > 0 and abs(started - run.pid_started) < 1.0
    stale = 6 * config.settings().heartbeat_interval
    return time.time() - run.heartbeat_at < stale


def reap() -> list[str]:
    """Mark failed every run whose orchestrator has gone; returns their ids."""
    return backend.pipelines().reap(is_alive)


# -- the orchestrator ----------------------------------------------------------------------


@dataclass
class _State:
    status: StepStatus = StepStatus.PENDING
    attempts: int = 0
    retry_at: float = 0.0
    outputs: list[values.Stored] | None = None
    logs: dict[str, Any] = field(default_factory=dict)
    started_at: float | None = None
    explain: dict[str, Any] | None = None
    error: str | None = None
    arguments: dict[str, Any] | None = None  # encoded once its inputs are ready


class _Orchestrator:
    def __init__(
        self,
        pipeline: Pipeline[Any],
        graph: Graph,
        params: dict[str, Any],
        executor: Executor,
        *,
        progress: bool,
        trigger: str,
        dedupe_key: str | None,
        resume_from: PipelineRunRecord | None,
    ) -> None:
        self.pipeline = pipeline
        self.graph = graph
        self.params = params
        self.executor = executor
        self.progress = progress
        self.trigger = trigger
        self.dedupe_key = dedupe_key
        self.resume_from = resume_from
        self.repo = backend.pipelines()
        self.run_id = uuid.uuid4().hex
        self.state = {name: _State() for name in graph.nodes}
        self.previous: dict[str, StepRunRecord] = {}
        if resume_from is not None:
            self.previous = {s.step: s for s in self.repo.steps(resume_from.id)}
        self.log_root = config.settings().home / "pipelines" / self.run_id
        self.env = settings_env()

    # -- lifecycle --------------------------------------------------------------------
    def run(self) -> PipelineRun:
        self._create()
        stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(stop,), daemon=True)
        beat.start()
        bar = _Progress(len(self.graph.nodes), self.pipeline.name) if self.progress else None
        error: str | None = None
        try:
            self._loop(bar)
        except BaseException as exc:
            error = f"interrupted: {type(exc).__name__}: {exc}".rstrip(": ")
            self._abandon(error)
            raise
        finally:
            stop.set()
            self.executor.shutdown()
            if bar is not None:
                bar.close()
            status, summary = self._outcome()
            result = self._result_tree() if status == PipelineStatus.SUCCEEDED else None
            self.repo.finish_run(self.run_id, status, error or summary, result)
        record = self.repo.get_run(self.run_id)
        return PipelineRun(record, self.repo.steps(self.run_id))

    def _create(self) -> None:
        import inspect

        source = inspect.getsourcefile(self.pipeline.function)
        pid = os.getpid()
        now = time.time()
        self.repo.create_run(
            {
                "id": self.run_id,
                "pipeline": self.pipeline.name,
                "ref": self.pipeline.ref,
                "source_file": str(Path(source).resolve()) if source else None,
                "status": PipelineStatus.RUNNING.value,
                "params": encode_arguments(self.params, {}),
                "executor": self.executor.name,
                "trigger": self.trigger,
                "resumed_from": self.resume_from.id if self.resume_from else None,
                "dedupe_key": self.dedupe_key,
                "host": socket.gethostname(),
                "pid": pid,
                "pid_started": _process_started(pid),
                "heartbeat_at": now,
                "created_at": now,
                "created_by": config.settings().user,
            },
            [
                {
                    "step": node.name,
                    "function": node.step.ref,
                    "status": StepStatus.PENDING.value,
                    "attempts": 0,
                    "code_hash": node.step.code_hash,
                    "inputs": {},
                }
                for node in self.graph.nodes.values()
            ],
        )

    def _heartbeat(self, stop: threading.Event) -> None:
        interval = config.settings().heartbeat_interval
        while not stop.wait(interval):
            try:
                self.repo.heartbeat(self.run_id)
            except Exception:  # a missed beat is not worth failing the run for
                continue

    def _loop(self, bar: _Progress | None) -> None:
        while True:
            self._start_ready(bar)
            running = [n for n, s in self.state.items() if s.status == StepStatus.RUNNING]
            waiting = [n for n, s in self.state.items() if s.status == StepStatus.PENDING]
            if not running and not waiting:
                return
            if not running:  # only retries waiting for their backoff
                next_retry = min(self.state[n].retry_at for n in waiting)
                time.sleep(max(0.0, min(_POLL_SECONDS, next_retry - time.time())))
                continue
            if bar is not None:
                bar.show(running)
            for result in self.executor.wait(_POLL_SECONDS):
                self._finish(result, bar)

    # -- starting steps ---------------------------------------------------------------
    def _start_ready(self, bar: _Progress | None) -> None:
        now = time.time()
        for name, node in self.graph.nodes.items():
            state = self.state[name]
            if state.status != StepStatus.PENDING or state.retry_at > now:
                continue
            upstream = [self.state[u].status for u in node.upstream]
            if any(s in (StepStatus.FAILED, StepStatus.SKIPPED) for s in upstream):
                self._set(name, StepStatus.SKIPPED, error="an upstream step failed")
                if bar is not None:
                    bar.advance()
                continue
            if not all(s.done for s in upstream):
                continue
            if state.attempts == 0 and state.explain is None and self._take_existing(node, bar):
                continue
            if not self.executor.can_start(node.step.resources):
                return  # keep graph order: later steps wait for room too
            self._submit(node)

    def _arguments(self, node: Node) -> dict[str, Any]:
        """The step's arguments as stored records, encoded once (constants stored once).

        Called only once the step's inputs are ready, after which they never change:
        the cache check, every attempt and the lineage all read the same encoding.
        """
        state = self.state[node.name]
        if state.arguments is None:
            outputs = {n: s.outputs for n, s in self.state.items() if s.outputs is not None}
            state.arguments = {k: encode_arguments(v, outputs) for k, v in node.arguments.items()}
        return state.arguments

    def _take_existing(self, node: Node, bar: _Progress | None) -> bool:
        """Reuse the resumed run's results, or cached ones; False when the step must run."""
        arguments = self._arguments(node)
        key, parts = cache_key(node, arguments)
        explain: dict[str, Any] = {"cache_key": key, **parts}
        state = self.state[node.name]
        old = self.previous.get(node.name)
        if (
            old is not None
            and old.status.done
            and old.cache_key == key
            and old.outputs is not None
            and all(values.available(o) for o in old.outputs)
        ):
            explain |= {
                "decision": "reused",
                "reason": f"finished in run {self.resume_from.id if self.resume_from else '?'}",
                "source": {"run": old.source_run_id or old.pipeline_run_id, "step": old.step},
            }
            return self._done_from(node, StepStatus.REUSED, old, arguments, explain, bar)
        if node.step.cache:
            hit = self.repo.find_cached(key)
            if hit is not None and hit.outputs is not None:
                if all(values.available(o) for o in hit.outputs):
                    explain |= {
                        "decision": "cached",
                        "reason": (
                            f"same code and inputs as step {hit.step!r} of run "
                            f"{hit.pipeline_run_id}"
                        ),
                        "source": {"run": hit.pipeline_run_id, "step": hit.step},
                    }
                    return self._done_from(node, StepStatus.CACHED, hit, arguments, explain, bar)
                explain["reason"] = (
                    f"run {hit.pipeline_run_id} has a result with this key, "
                    "but its stored outputs are gone"
                )
            else:
                explain["reason"] = self._why_not_cached(node, parts)
        else:
            explain["reason"] = "caching is off for this step (cache=False)"
        explain["decision"] = "ran"
        state.explain = explain
        return False

    def _why_not_cached(self, node: Node, parts: dict[str, Any]) -> str:
        previous = self.repo.previous_step(self.pipeline.name, node.name, self.run_id)
        if previous is None:
            return "no earlier run of this step has finished"
        changes = _changes(previous, parts)
        if not changes:
            return f"its result in run {previous.pipeline_run_id} was not cached"
        return f"since run {previous.pipeline_run_id}: " + "; ".join(changes)

    def _done_from(
        self,
        node: Node,
        status: StepStatus,
        source: StepRunRecord,
        arguments: dict[str, Any],
        explain: dict[str, Any],
        bar: _Progress | None,
    ) -> bool:
        state = self.state[node.name]
        state.outputs = source.outputs
        now = time.time()
        self._set(
            node.name,
            status,
            outputs=source.outputs,
            inputs=arguments,
            cache_key=explain["cache_key"],
            explain=explain,
            source_run_id=source.source_run_id or source.pipeline_run_id,
            started_at=now,
            ended_at=now,
        )
        self._record_lineage(node, source.outputs or [], (status, source))
        if bar is not None:
            bar.advance()
        return True

    def _record_lineage(
        self,
        node: Node,
        outputs: list[values.Stored],
        taken: tuple[StepStatus, StepRunRecord] | None,
    ) -> None:
        """Edges: run contains step; inputs fed the step; the step produced its outputs."""
        from forgeml.store.records import LineageEdge

        now = time.time()
        step_node = ("step_run", f"{self.run_id}/{node.name}")
        edges = [LineageEdge("pipeline_run", self.run_id, *step_node, "contains", now)]
        for record in _stored_records(self._arguments(node)):
            edges.append(LineageEdge(*_value_node(record), *step_node, "input", now))
        for index, record in enumerate(outputs):
            kind, ident = _value_node(record)
            edges.append(LineageEdge(*step_node, kind, ident, "produced", now, {"output": index}))
        if taken is not None:
            status, source = taken
            relation = "cached_from" if status == StepStatus.CACHED else "reused_from"
            origin = ("step_run", f"{source.source_run_id or source.pipeline_run_id}/{source.step}")
            edges.append(LineageEdge(*origin, *step_node, relation, now))
        backend.lineage().add_edges(edges)

    def _submit(self, node: Node) -> None:
        state = self.state[node.name]
        state.attempts += 1
        state.started_at = state.started_at or time.time()
        arguments = self._arguments(node)
        explain = state.explain or {}
        key = explain.get("cache_key") or cache_key(node, arguments)[0]
        task = Task(
            run_id=self.run_id,
            step=node.name,
            attempt=state.attempts,
            function=pickle.dumps(node.step),
            arguments=arguments,
            outputs=len(node.step.outputs) if node.step.outputs is not None else None,
            log_dir=str(self.log_root / node.name / f"attempt-{state.attempts}"),
            env=self.env,
            cwd=os.getcwd(),
            python_path=list(sys.path),
        )
        self.executor.submit(task, node.step.resources, node.step.timeout)
        self._set(
            node.name,
            StepStatus.RUNNING,
            attempts=state.attempts,
            inputs=arguments,
            cache_key=key if node.step.cache else None,
            explain=explain,
            started_at=state.started_at,
        )

    # -- finishing steps --------------------------------------------------------------
    def _finish(self, result: TaskResult, bar: _Progress | None) -> None:
        node = self.graph.nodes[result.step]
        state = self.state[result.step]
        state.logs[str(result.attempt)] = {
            "files": result.logs,
            "dir": str(self.log_root / node.name / f"attempt-{result.attempt}"),
            "ok": result.ok,
            "seconds": round(result.ended_at - result.started_at, 6),
        }
        if result.ok:
            state.outputs = result.outputs
            self._set(
                result.step,
                StepStatus.SUCCEEDED,
                outputs=result.outputs,
                logs=state.logs,
                ended_at=result.ended_at,
                error=None,
            )
            self._record_lineage(node, result.outputs or [], None)
        elif state.attempts <= node.step.retries:
            delay = node.step.retry_backoff * (2 ** (state.attempts - 1))
            state.retry_at = time.time() + delay
            self._set(result.step, StepStatus.PENDING, logs=state.logs, error=result.error)
            return
        else:
            self._set(
                result.step,
                StepStatus.FAILED,
                logs=state.logs,
                ended_at=result.ended_at,
                error=result.error,
            )
        if bar is not None:
            bar.advance()

    def _set(self, step: str, status: StepStatus, **fields: Any) -> None:
        state = self.state[step]
        state.status = status
        if "error" in fields:
            state.error = fields["error"]
        self.repo.update_step(self.run_id, step, status=status, **fields)

    def _abandon(self, error: str) -> None:
        """Record what an interruption left: running steps failed, pending ones skipped."""
        for name, state in self.state.items():
            if state.status == StepStatus.RUNNING:
                self._set(name, StepStatus.FAILED, error=error, ended_at=time.time())
            elif state.status == StepStatus.PENDING:
                self._set(name, StepStatus.SKIPPED, error=error)

    def _outcome(self) -> tuple[PipelineStatus, str | None]:
        failed = [n for n, s in self.state.items() if s.status == StepStatus.FAILED]
        if not failed and all(s.status.done for s in self.state.values()):
            return PipelineStatus.SUCCEEDED, None
        if not failed:
            return PipelineStatus.FAILED, "the run stopped before every step finished"
        first = self.state[failed[0]].error or "no error recorded"
        more = f" (and {len(failed) - 1} more failed steps)" if len(failed) > 1 else ""
        return PipelineStatus.FAILED, f"step {failed[0]!r} failed{more}: {first.splitlines()[0]}"

    def _result_tree(self) -> Any:
        outputs = {n: s.outputs or [] for n, s in self.state.items()}

        def convert(value: Any) -> Any:
            if isinstance(value, Output):
                return {REF: outputs[value.node][value.index or 0]}
            if isinstance(value, list | tuple):
                return [convert(v) for v in value]
            if isinstance(value, dict):
                return {k: convert(v) for k, v in value.items()}
            return value

        return convert(self.graph.result)


class _Progress:
    """A rich progress bar: steps finished of all, and which are running."""

    def __init__(self, total: int, name: str) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.bar = Progress(
            TextColumn("[bold]{task.fields[name]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            transient=False,
        )
        self.task = self.bar.add_task("", total=total, name=name)
        self.bar.start()

    def show(self, running: list[str]) -> None:
        text = ", ".join(running[:3]) + (f" +{len(running) - 3}" if len(running) > 3 else "")
        self.bar.update(self.task, description=f"running {text}")

    def advance(self) -> None:
        self.bar.advance(self.task)

    def close(self) -> None:
        self.bar.update(self.task, description="done")
        self.bar.stop()
