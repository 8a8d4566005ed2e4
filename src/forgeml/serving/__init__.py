"""Serving: the model server, deployments and their traffic policies, the prediction log.

import forgeml as fm
fm.serving.deploy("delay", "models:/flight-delay@champion",
                  policy="canary", challenger="models:/flight-delay/4", weight=10)
fm.serving.serve(["delay"], port=8080)          # or: forgeml serve delay
fm.serving.predictions("delay", since=time.time() - 3600)   # an Arrow table
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from forgeml._lazy import lazy_exports

_EXPORTS = {
    "DeploymentSpec": "forgeml.serving.spec",
    "BreakerSpec": "forgeml.serving.spec",
    "deploy": "forgeml.serving.deployments_api",
    "update": "forgeml.serving.deployments_api",
    "apply_file": "forgeml.serving.deployments_api",
    "get_deployment": "forgeml.serving.deployments_api",
    "list_deployments": "forgeml.serving.deployments_api",
    "remove_deployment": "forgeml.serving.deployments_api",
    "history": "forgeml.serving.deployments_api",
    "serve": "forgeml.serving.launch",
    "predictions": "forgeml.serving.prediction_log",
    "predict_batch": "forgeml.serving.batch",
    "BatchPrediction": "forgeml.serving.batch",
    "score_stream": "forgeml.serving.stream",
    "StreamScorer": "forgeml.serving.stream",
    "StreamStats": "forgeml.serving.stream",
    "MemoryStreams": "forgeml.serving.stream_memory",
    "RolloutPlan": "forgeml.serving.rollouts",
    "rollout": "forgeml.serving.rollouts",
    "rollback": "forgeml.serving.rollouts",
    "rollout_status": "forgeml.serving.rollouts",
}
__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports("forgeml.serving", _EXPORTS, globals())


if TYPE_CHECKING:  # pragma: no cover
    from forgeml.serving.batch import (
        BatchPrediction as BatchPrediction,
        predict_batch as predict_batch,
    )
    from forgeml.serving.deployments_api import (
        apply_file as apply_file,
        deploy as deploy,
        get_deployment as get_deployment,
        history as history,
        list_deployments as list_deployments,
        remove_deployment as remove_deployment,
        update as update,
    )
    from forgeml.serving.launch import serve as serve
    from forgeml.serving.prediction_log import predictions as predictions
    from forgeml.serving.rollouts import (
        RolloutPlan as RolloutPlan,
        rollback as rollback,
        rollout as rollout,
        rollout_status as rollout_status,
    )
    from forgeml.serving.spec import BreakerSpec as BreakerSpec, DeploymentSpec as DeploymentSpec
    from forgeml.serving.stream import (
        StreamScorer as StreamScorer,
        StreamStats as StreamStats,
        score_stream as score_stream,
    )
    from forgeml.serving.stream_memory import MemoryStreams as MemoryStreams
