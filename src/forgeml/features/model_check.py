"""Which feature-view versions a model was trained on, and whether serving can supply them.

A training frame built inside a run records the view versions it read as inputs of
that run; the model versions the run logged inherit them through lineage. A server
asks :func:`check_model_features` before it loads a model, so a model never sees
features computed by a different definition than the one it learned from.
"""

from __future__ import annotations

from typing import Any

from forgeml.errors import ForgeMLError, NotFoundError


class FeatureViewUnavailableError(ForgeMLError):
    """A model needs a feature-view version that the online store does not hold."""


def model_feature_views(model: Any) -> list[tuple[str, int]]:
    """(view, version) pairs a model version was trained on, from its lineage."""
    from forgeml.lineage_graph import lineage

    graph = lineage(model, "up")
    found: list[tuple[str, int]] = []
    for _kind, ref in graph.upstream("feature_view_version"):
        name, _, version = ref.rpartition("/")
        pair = (name, int(version))
        if pair not in found:
            found.append(pair)
    return sorted(found)


def check_model_features(model: Any, online_store: str | None = None) -> list[tuple[str, int]]:
    """Raise unless the online store holds every view version ``model`` was trained on."""
    from forgeml import backend
    from forgeml.features.online_store import open_store

    store = open_store(online_store)
    needed = model_feature_views(model)
    problems: list[str] = []
    for name, version in needed:
        if backend.features().get_version(name, version).kind == "on_demand":
            continue  # computed at request time from its registered code
        meta = store.get_meta(name)
        if meta is None:
            problems.append(f"{name} v{version} (not materialized)")
        elif int(meta["version"]) != version:
            problems.append(f"{name} v{version} (the online store holds v{meta['version']})")
    if problems:
        raise FeatureViewUnavailableError(
            f"{_label(model)} was trained on feature views the online store {store.url} cannot "
            f"serve: {'; '.join(problems)}. Materialize those versions "
            "(`forgeml features materialize`) or retrain on the current ones"
        )
    return needed


def _label(model: Any) -> str:
    try:
        from forgeml.lineage_graph import node_of

        return f"model {node_of(model)[1]}"
    except (ForgeMLError, NotFoundError):
        return f"model {model!r}"
