"""Training: fit estimators and networks with everything recorded, evaluate them the same
way, and promote a new version only when it measured better::

    import forgeml as fm

    result = fm.training.fit(model, frame, "label", eval_set=(valid, "label"), register="churn")
    fm.training.promote_if_better("churn", result.model_version.version, metric="valid_roc_auc")

    trainer = fm.training.Trainer(net, epochs=20, early_stopping=fm.training.EarlyStopping())
    trained = trainer.fit((X, y), (X_val, y_val), register="churn-net")

    space = {"C": fm.training.Float(1e-3, 10, log=True)}
    best = fm.tune(objective, space, n_trials=20, parallel=2, register="churn")

Names are imported on first use: ``import forgeml.training`` loads neither PyTorch nor
scikit-learn nor matplotlib, and a missing PyTorch only matters to ``Trainer``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from forgeml._lazy import lazy_exports

_EXPORTS = {
    "evaluate": "forgeml.training.evaluation",
    "Evaluation": "forgeml.training.evaluation",
    "fit": "forgeml.training.estimators",
    "TrainResult": "forgeml.training.estimators",
    "Trainer": "forgeml.training.torch_trainer",
    "TrainedModel": "forgeml.training.torch_trainer",
    "EarlyStopping": "forgeml.training.early_stopping",
    "promote_if_better": "forgeml.training.champion",
    "PromotionDecision": "forgeml.training.champion",
    "tune": "forgeml.training.tune",
    "TuneResult": "forgeml.training.tune",
    "Trial": "forgeml.training.tune",
    "TrialPruned": "forgeml.training.tune",
    "Float": "forgeml.training.search_space",
    "Int": "forgeml.training.search_space",
    "Choice": "forgeml.training.search_space",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports("forgeml.training", _EXPORTS, globals())


if TYPE_CHECKING:
    from forgeml.training.champion import (
        PromotionDecision as PromotionDecision,
        promote_if_better as promote_if_better,
    )
    from forgeml.training.early_stopping import EarlyStopping as EarlyStopping
    from forgeml.training.estimators import TrainResult as TrainResult, fit as fit
    from forgeml.training.evaluation import Evaluation as Evaluation, evaluate as evaluate
    from forgeml.training.search_space import (
        Choice as Choice,
        Float as Float,
        Int as Int,
    )
    from forgeml.training.torch_trainer import (
        TrainedModel as TrainedModel,
        Trainer as Trainer,
    )
    from forgeml.training.tune import (
        Trial as Trial,
        TrialPruned as TrialPruned,
        TuneResult as TuneResult,
        tune as tune,
    )
