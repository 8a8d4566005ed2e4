"""Pipelines: steps with caching, retries and timeouts, run locally or on Ray.

import forgeml as fm

@fm.step(retries=2, timeout=600)
def load(month: int) -> pd.DataFrame: ...

@fm.step
def train(frame: pd.DataFrame) -> dict[str, float]: ...

@fm.pipeline
def flights(month: int = 1):
    return train(load(month))

run = flights(month=3)           # runs it; finished steps are cached by content
fm.pipelines.explain(run.id)     # why each step ran or came from cache
fm.pipelines.resume(run.id)      # after a failure: the finished steps are reused
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from forgeml._lazy import lazy_exports

_EXPORTS = {
    "step": "forgeml.pipelines.dsl",
    "pipeline": "forgeml.pipelines.dsl",
    "resources": "forgeml.pipelines.dsl",
    "Resources": "forgeml.pipelines.dsl",
    "Step": "forgeml.pipelines.dsl",
    "Pipeline": "forgeml.pipelines.dsl",
    "Output": "forgeml.pipelines.dsl",
    "PipelineRun": "forgeml.pipelines.runner",
    "run_pipeline": "forgeml.pipelines.runner",
    "get_run": "forgeml.pipelines.api",
    "list_runs": "forgeml.pipelines.api",
    "explain": "forgeml.pipelines.api",
    "logs": "forgeml.pipelines.api",
    "resume": "forgeml.pipelines.api",
    "load_pipeline": "forgeml.pipelines.api",
    "schedule": "forgeml.pipelines.schedules_api",
    "list_schedules": "forgeml.pipelines.schedules_api",
    "get_schedule": "forgeml.pipelines.schedules_api",
    "remove_schedule": "forgeml.pipelines.schedules_api",
    "pause_schedule": "forgeml.pipelines.schedules_api",
    "resume_schedule": "forgeml.pipelines.schedules_api",
    "trigger": "forgeml.pipelines.schedules_api",
    "Scheduler": "forgeml.pipelines.scheduler",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports("forgeml.pipelines", _EXPORTS, globals())


if TYPE_CHECKING:
    from forgeml.pipelines.api import (
        explain as explain,
        get_run as get_run,
        list_runs as list_runs,
        load_pipeline as load_pipeline,
        logs as logs,
        resume as resume,
    )
    from forgeml.pipelines.dsl import (
        Output as Output,
        Pipeline as Pipeline,
        Resources as Resources,
        Step as Step,
        pipeline as pipeline,
        resources as resources,
        step as step,
    )
    from forgeml.pipelines.runner import PipelineRun as PipelineRun, run_pipeline as run_pipeline
    from forgeml.pipelines.scheduler import Scheduler as Scheduler
    from forgeml.pipelines.schedules_api import (
        get_schedule as get_schedule,
        list_schedules as list_schedules,
        pause_schedule as pause_schedule,
        remove_schedule as remove_schedule,
        resume_schedule as resume_schedule,
        schedule as schedule,
        trigger as trigger,
    )
