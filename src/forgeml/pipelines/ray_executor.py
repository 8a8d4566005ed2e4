"""The Ray executor: each step attempt is a Ray task with the step's resources.

``FORGEML_EXECUTOR=ray`` joins the Ray runtime already running on this machine (``ray
start``) or starts one; ``ray://HOST:PORT`` connects to a cluster through Ray Client.
Ray places the tasks; forgeml keeps what Ray does not do the way a pipeline needs:
its own retries with backoff (so each attempt is recorded), timeouts (a task past its
time is cancelled with force, which kills its worker), caching and resumption.
"""

from __future__ import annotations

import logging
import pickle
import time
from dataclasses import dataclass, replace
from typing import Any

from forgeml.errors import ConfigError
from forgeml.pipelines.dsl import Resources
from forgeml.pipelines.worker import Task, TaskResult, execute


@dataclass
class _Pending:
    task: Task
    deadline: float | None
    timeout: float | None
    cpus: float
    submitted: float


def _run_attempt(task: Task) -> TaskResult:
    return execute(task)


def connect_ray(address: str, needed_by: str) -> Any:
    """The ``ray`` module, connected to ``address`` (``ray`` starts a local runtime).

    Every part of forgeml that runs on Ray (pipeline steps, tuning trials, batch
    scoring) joins the runtime already started in the process, if any.
    """
    try:
        import ray as ray_module
    except ImportError as exc:
        raise ConfigError(f"{needed_by} needs Ray: pip install 'forgeml[ray]'") from exc
    ray: Any = ray_module
    if not ray.is_initialized():
        if address.startswith("ray://"):
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        else:
            ray.init(logging_level=logging.WARNING, log_to_driver=False)
    return ray


class RayExecutor:
    name = "ray"

    def __init__(self, address: str, max_workers: int | None = None) -> None:
        ray = connect_ray(address, "FORGEML_EXECUTOR=ray")
        self.ray = ray
        self.name = "ray" if address == "ray" else address
        total = float(ray.cluster_resources().get("CPU", 1.0))
        self.capacity = float(max_workers) if max_workers else total
        self.remote = ray.remote(_run_attempt)
        self.pending: dict[Any, _Pending] = {}

    def can_start(self, resources: Resources) -> bool:
        if not self.pending:
            return True
        used = sum(p.cpus for p in self.pending.values())
        return used + resources.cpus <= self.capacity

    def submit(self, task: Task, resources: Resources, timeout: float | None) -> None:
        # The function itself travels, pickled by Ray's cloudpickle: by reference when its
        # module is importable, by value when it lives in a script.
        step = pickle.loads(task.function)
        function = self.ray.cloudpickle.dumps(getattr(step, "function", step))
        options: dict[str, Any] = {
            "num_cpus": resources.cpus,
            "num_gpus": resources.gpus,
            "max_retries": 0,
            "name": f"{task.step}#{task.attempt}",
        }
        if resources.memory is not None:
            options["memory"] = resources.memory
        ref = self.remote.options(**options).remote(replace(task, function=function))
        deadline = time.monotonic() + timeout if timeout is not None else None
        self.pending[ref] = _Pending(task, deadline, timeout, resources.cpus, time.time())

    def wait(self, timeout: float) -> list[TaskResult]:
        if not self.pending:
            time.sleep(timeout)
            return []
        deadlines = [p.deadline for p in self.pending.values() if p.deadline is not None]
        if deadlines:
            timeout = max(0.0, min(timeout, min(deadlines) - time.monotonic()))
        ready, _ = self.ray.wait(list(self.pending), num_returns=len(self.pending), timeout=timeout)
        results = [self._collect(ref) for ref in ready]
        now = time.monotonic()
        for ref, pending in list(self.pending.items()):
            if pending.deadline is not None and pending.deadline <= now:
                self.ray.cancel(ref, force=True)
                del self.pending[ref]
                results.append(
                    TaskResult(
                        pending.task.step,
                        pending.task.attempt,
                        False,
                        error=(
                            f"step {pending.task.step!r} attempt {pending.task.attempt} timed "
                            f"out after {pending.timeout:g} s and was cancelled"
                        ),
                        started_at=pending.submitted,
                        ended_at=time.time(),
                    )
                )
        return results

    def _collect(self, ref: Any) -> TaskResult:
        pending = self.pending.pop(ref)
        try:
            result: TaskResult = self.ray.get(ref)
            return result
        except Exception as exc:  # the worker died, or Ray could not run the task
            return TaskResult(
                pending.task.step,
                pending.task.attempt,
                False,
                error=f"Ray could not run step {pending.task.step!r}: {type(exc).__name__}: {exc}",
                started_at=pending.submitted,
                ended_at=time.time(),
            )

    def shutdown(self) -> None:
        """Cancel what is still running; the Ray runtime itself stays up for the next run."""
        for ref in list(self.pending):
            self.ray.cancel(ref, force=True)
        self.pending.clear()
