"""The benchmark's model as a BentoML service, with BentoML's default settings.

The model is the scikit-learn estimator the benchmark trained, saved with
``bentoml.sklearn.save_model("bench_gbm", model)`` into ``$BENTOML_HOME`` and loaded
here from the model store. The API takes the same body as forgeml's ``/v1`` predict
route: ``{"inputs": {...}}`` (one record) or ``{"inputs": [{...}, ...]}`` (records),
and answers ``{"outputs": [...]}``.

    BENTOML_HOME=... bentoml serve bentoml_service:GradientBoosting --working-dir DIR
"""

from __future__ import annotations

import bentoml
import numpy as np
import pandas as pd


@bentoml.service
class GradientBoosting:
    model_ref = bentoml.models.BentoModel("bench_gbm:latest")

    def __init__(self) -> None:
        self.model = bentoml.sklearn.load_model(self.model_ref)
        self.columns = list(self.model.feature_names_in_)

    @bentoml.api
    def predict(self, inputs: dict[str, float] | list[dict[str, float]]) -> dict[str, list[int]]:
        records = [inputs] if isinstance(inputs, dict) else inputs
        matrix = np.array([[record[name] for name in self.columns] for record in records])
        frame = pd.DataFrame(matrix, columns=self.columns, copy=False)
        return {"outputs": self.model.predict(frame).tolist()}
