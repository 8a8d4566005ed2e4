"""The local executor: steps in a pool of worker processes on this machine.

Workers are started once per pipeline run (from a fork server, so a new one costs
milliseconds) and reused for step after step, which keeps a no-op step at about a
millisecond of overhead. At most ``max_workers`` CPUs' worth of steps run at once. A
step past its timeout is stopped by killing its worker, which is then replaced: a
timeout always ends the step, whatever the step is doing.

A step that asks for GPUs gets whole devices of its own: a fresh worker that sees only
them (``CUDA_VISIBLE_DEVICES``), retired after the step, so no CUDA state outlives it.
The devices are those ``FORGEML_LOCAL_GPUS`` names (a count or a list of ids), else
``CUDA_VISIBLE_DEVICES``, else what ``nvidia-smi -L`` lists.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from forgeml.errors import PipelineError
from forgeml.pipelines.dsl import Resources
from forgeml.pipelines.worker import Task, TaskResult, serve, store_logs

_START_SECONDS = 60.0  # how long a new worker process may take to be ready


@dataclass
class _Worker:
    process: Any  # multiprocessing.Process
    connection: Connection
    task: Task | None = None
    deadline: float | None = None
    timeout: float | None = None
    cpus: float = 0.0
    started: bool = False  # has it finished a task (so it did start)?
    gpus: list[str] = field(default_factory=list)  # devices held; such a worker is retired


def _context() -> Any:
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" in methods:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["forgeml.pipelines.worker", "forgeml.pipelines.values"])
        return context
    return multiprocessing.get_context("spawn")


class LocalExecutor:
    name = "local"

    def __init__(self, max_workers: int | None = None) -> None:
        self.capacity = float(max_workers or os.cpu_count() or 1)
        self.context = _context()
        self.workers: list[_Worker] = []
        self.devices = local_gpus()

    @property
    def used(self) -> float:
        return sum(w.cpus for w in self.workers if w.task is not None)

    @property
    def running(self) -> int:
        return sum(1 for w in self.workers if w.task is not None)

    def can_start(self, resources: Resources) -> bool:
        """Whether a step needing ``resources`` fits now (a big step runs alone)."""
        wanted = math.ceil(resources.gpus)
        if wanted > len(self.devices):
            raise PipelineError(
                f"a step asks for {resources.gpus:g} GPUs; this machine shows "
                f"{len(self.devices)} (FORGEML_LOCAL_GPUS, CUDA_VISIBLE_DEVICES or nvidia-smi)"
            )
        if wanted > len(self._free_devices()):
            return False
        if self.running == 0:
            return True
        return self.used + resources.cpus <= self.capacity

    def _free_devices(self) -> list[str]:
        held = {d for w in self.workers for d in w.gpus}
        return [d for d in self.devices if d not in held]

    def submit(self, task: Task, resources: Resources, timeout: float | None) -> None:
        wanted = math.ceil(resources.gpus)
        if wanted:
            devices = self._free_devices()[:wanted]
            task = replace(task, env={**task.env, "CUDA_VISIBLE_DEVICES": ",".join(devices)})
            worker = self._start()
            worker.gpus = devices
        else:
            idle = next((w for w in self.workers if w.task is None and not w.gpus), None)
            worker = idle or self._start()
        worker.task = task
        worker.cpus = resources.cpus
        worker.timeout = timeout
        worker.deadline = time.monotonic() + timeout if timeout is not None else None
        worker.connection.send(task)

    def wait(self, timeout: float) -> list[TaskResult]:
        """Results of attempts that ended (or were stopped) within ``timeout`` seconds."""
        busy = [w for w in self.workers if w.task is not None]
        if not busy:
            time.sleep(timeout)
            return []
        deadlines = [w.deadline for w in busy if w.deadline is not None]
        if deadlines:
            timeout = max(0.0, min(timeout, min(deadlines) - time.monotonic()))
        handles: dict[Any, _Worker] = {}
        for worker in busy:
            handles[worker.connection] = worker
            handles[worker.process.sentinel] = worker
        ready = wait(list(handles), timeout)
        results: list[TaskResult] = []
        done: set[int] = set()
        for handle in ready:
            worker = handles[handle]
            if id(worker) in done:
                continue
            done.add(id(worker))
            results.append(self._collect(worker))
        now = time.monotonic()
        for worker in busy:
            if id(worker) not in done and worker.deadline is not None and worker.deadline <= now:
                limit = worker.timeout or 0.0
                results.append(self._stop(worker, f"timed out after {limit:g} s and was stopped"))
        return results

    def _collect(self, worker: _Worker) -> TaskResult:
        task = worker.task
        assert task is not None
        try:
            if worker.connection.poll():
                result: TaskResult = worker.connection.recv()
                worker.started = True
                if worker.gpus:  # its CUDA state goes with it
                    self._retire(worker)
                else:
                    self._free(worker)
                return result
        except (EOFError, OSError):
            pass
        worker.process.join(1)
        code = worker.process.exitcode
        if not worker.started:
            return self._stop(
                worker,
                f"could not start: its worker process exited with code {code} before running "
                "anything. Worker processes import the script that started the pipeline again: "
                'a script must start it under `if __name__ == "__main__":`',
            )
        return self._stop(worker, f"its worker process died (exit code {code})")

    def _stop(self, worker: _Worker, why: str) -> TaskResult:
        """End the attempt on ``worker`` by killing the process; it is replaced later."""
        task = worker.task
        assert task is not None
        started = time.time()
        self._kill(worker)
        self.workers.remove(worker)
        return TaskResult(
            task.step,
            task.attempt,
            False,
            error=f"step {task.step!r} attempt {task.attempt} {why}",
            started_at=started,
            ended_at=time.time(),
            logs=store_logs(Path(task.log_dir)),
        )

    def _retire(self, worker: _Worker) -> None:
        try:
            worker.connection.send(None)
        except (OSError, BrokenPipeError):
            pass
        worker.process.join(5)
        self._kill(worker)
        self.workers.remove(worker)

    def _free(self, worker: _Worker) -> None:
        worker.task = None
        worker.deadline = None
        worker.cpus = 0.0

    def _start(self) -> _Worker:
        parent, child = self.context.Pipe()
        process = self.context.Process(
            target=serve, args=(child, os.getpid()), name="forgeml-step-worker"
        )
        process.start()
        child.close()
        worker = _Worker(process, parent)
        self.workers.append(worker)
        # A step's timeout counts from when a worker can take it, not from process start.
        if parent.poll(_START_SECONDS):
            try:
                parent.recv()
            except (EOFError, OSError):
                pass
        return worker

    @staticmethod
    def _kill(worker: _Worker) -> None:
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join(5)
        worker.connection.close()

    def shutdown(self) -> None:
        """Stop every worker: idle ones are asked to exit, busy ones are killed."""
        for worker in self.workers:
            if worker.task is None:
                try:
                    worker.connection.send(None)
                except (OSError, BrokenPipeError):
                    pass
        deadline = time.monotonic() + 5
        for worker in self.workers:
            if worker.task is None:
                worker.process.join(max(0.0, deadline - time.monotonic()))
            self._kill(worker)
        self.workers = []


def local_gpus() -> list[str]:
    """The GPU ids steps on this machine may be given (see the module docstring)."""
    named = os.environ.get("FORGEML_LOCAL_GPUS")
    if named is not None:
        named = named.strip()
        return [str(i) for i in range(int(named))] if named.isdigit() else _ids(named)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return _ids(visible)
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        listed = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(listed.splitlines()) if line.startswith("GPU ")]


def _ids(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip() and part.strip() != "-1"]
