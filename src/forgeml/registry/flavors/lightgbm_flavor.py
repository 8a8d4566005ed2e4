"""LightGBM boosters in LightGBM's native text format.

A scikit-learn wrapper (``LGBMClassifier`` ...) keeps its booster in the native file and
the rest of its fitted state (label encoder, parameters) in a skops file that does not
contain the booster; loading joins them again.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from forgeml.errors import ModelFlavorError

NAME = "lightgbm"
PACKAGES = ("lightgbm", "numpy", "scikit-learn", "skops")
FILE = "model.txt"
WRAPPER_FILE = "wrapper.skops"
_WRAPPERS = ("LGBMClassifier", "LGBMRegressor", "LGBMRanker", "LGBMModel")


def matches(model: Any) -> bool:
    import lightgbm

    return isinstance(model, lightgbm.Booster | lightgbm.LGBMModel)


def save(model: Any, directory: Path, options: dict[str, Any]) -> dict[str, Any]:
    import lightgbm
    import skops.io

    if isinstance(model, lightgbm.Booster):
        model.save_model(str(directory / FILE))
        return {"file": FILE, "class": "Booster"}
    if type(model).__name__ not in _WRAPPERS:
        raise ModelFlavorError(f"LightGBM class {type(model).__name__} is not supported")
    if not getattr(model, "fitted_", False):
        raise ModelFlavorError(f"{type(model).__name__} is not fitted: call fit() first")
    model.booster_.save_model(str(directory / FILE))
    shell = copy.copy(model)
    shell._Booster = None
    wrapper = directory / WRAPPER_FILE
    skops.io.dump(shell, wrapper)
    return {
        "file": FILE,
        "class": type(model).__name__,
        "wrapper_file": WRAPPER_FILE,
        "trusted_types": sorted(skops.io.get_untrusted_types(file=wrapper)),
    }


def load(directory: Path, options: dict[str, Any]) -> Any:
    import lightgbm

    booster = lightgbm.Booster(model_file=str(directory / options.get("file", FILE)))
    kind = options.get("class", "Booster")
    if kind == "Booster":
        return booster
    if kind not in _WRAPPERS:
        raise ModelFlavorError(f"LightGBM class {kind!r} is not one forgeml loads")
    from forgeml.registry.flavors import sklearn_flavor

    wrapper = sklearn_flavor.load(
        directory, {"file": options["wrapper_file"], "trusted_types": options["trusted_types"]}
    )
    if type(wrapper).__name__ != kind:
        raise ModelFlavorError(
            f"{options['wrapper_file']} holds a {type(wrapper).__name__}, not {kind}"
        )
    wrapper._Booster = booster
    return wrapper


def predict(model: Any, example: Any) -> Any:
    return model.predict(example)
