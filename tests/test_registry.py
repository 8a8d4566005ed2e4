"""The model registry: flavors round-trip, signatures, aliases, verification before load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import forgeml as fm
from forgeml import backend, config
from forgeml.errors import (
    ArtifactCorruptedError,
    InvalidArgumentError,
    ModelFlavorError,
    NotFoundError,
)
from forgeml.registry import api


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray]:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return X.iloc[:, :8], y.to_numpy()


def test_sklearn_round_trip_with_signature_and_lineage(any_backend: str, data: Any) -> None:
    X, y = data
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    with fm.start_run(experiment="cancer", name="lr") as run:
        version = fm.log_model(model, name="cancer", example=X[:5], description="baseline")
    assert (version.model, version.version, version.flavor, version.run_id) == (
        "cancer",
        1,
        "sklearn",
        run.id,
    )
    inputs = version.signature["inputs"]  # type: ignore[index]
    assert inputs["type"] == "columns"
    assert [c["name"] for c in inputs["columns"]] == list(X.columns)
    assert {c["type"] for c in inputs["columns"]} == {"float64"}
    assert version.signature["outputs"] == {"type": "tensor", "dtype": "int64", "shape": [-1]}  # type: ignore[index]
    loaded = fm.load_model("models:/cancer/1")
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    manifest = api.model_manifest(version)
    assert set(manifest["files"]) == {"model.skops"}
    assert manifest["requirements"]["scikit-learn"]
    graph = fm.lineage(version)
    assert graph.upstream() == [("run", run.id)]
    assert fm.lineage(run).downstream() == [("model_version", "cancer/1")]


def test_versions_aliases_and_uris(home: Path, data: Any) -> None:
    X, y = data
    first = fm.log_model(LogisticRegression(max_iter=300).fit(X, y), name="churn")
    second = fm.log_model(GradientBoostingClassifier(n_estimators=5).fit(X, y), name="churn")
    assert first.run_id is None  # no run open: a version without a run is allowed
    fm.set_alias("churn", "champion", 1)
    fm.set_alias("churn", "challenger", 2, reason="shadow test")
    assert fm.get_model_version("models:/churn@champion").version == 1
    assert fm.get_model_version("models:/churn").version == 2
    assert fm.get_model_version("churn", alias="challenger").id == second.id
    assert type(fm.load_model("models:/churn@challenger")).__name__ == "GradientBoostingClassifier"
    fm.set_alias("churn", "champion", 2)
    fm.delete_alias("churn", "challenger")
    history = [
        (e.alias, e.from_version, e.to_version, e.actor, e.reason)
        for e in fm.alias_history("churn")
    ]
    assert history == [
        ("champion", None, 1, "tester", None),
        ("challenger", None, 2, "tester", "shadow test"),
        ("champion", 1, 2, "tester", None),
        ("challenger", 2, None, "tester", None),
    ]
    assert [m.name for m in fm.list_models()] == ["churn"]


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: fm.load_model("models:/nope/1"),
            NotFoundError,
            "no registered model named 'nope'",
        ),
        (lambda: fm.load_model("models:/churn/9"), NotFoundError, "has no version 9"),
        (lambda: fm.load_model("models:/churn@gone"), NotFoundError, "has no alias 'gone'"),
        (lambda: fm.load_model("runs:/abc/model"), InvalidArgumentError, "is not a model URI"),
        (lambda: fm.set_alias("churn", "1st", 1), InvalidArgumentError, "alias '1st' is not valid"),
        (lambda: fm.set_alias("churn", "latest", 1), InvalidArgumentError, "reserved"),
        (lambda: fm.set_alias("churn", "champion", 9), NotFoundError, "has no version 9"),
        (lambda: fm.log_model(object(), name="x"), ModelFlavorError, "no flavor can save"),
        (
            lambda: fm.log_model(LogisticRegression(), name="bad name!"),
            InvalidArgumentError,
            "model name",
        ),
    ],
)
def test_bad_references_get_clear_errors(
    home: Path, data: Any, call: Any, error: type, message: str
) -> None:
    X, y = data
    fm.log_model(LogisticRegression(max_iter=300).fit(X, y), name="churn")
    with pytest.raises(error, match=message):
        call()


def _stored_file(digest: str) -> Path:
    return Path(backend.artifact_store().location(digest))


def test_a_tampered_bundle_is_refused_before_anything_is_loaded(home: Path, data: Any) -> None:
    X, y = data
    version = fm.log_model(LogisticRegression(max_iter=300).fit(X, y), name="churn")
    model_digest = api.model_manifest(version)["files"]["model.skops"]["digest"]
    path = _stored_file(model_digest)
    path.chmod(0o644)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ArtifactCorruptedError, match="is corrupted"):
        fm.load_model("models:/churn/1")
    manifest_path = _stored_file(version.manifest_digest)
    manifest_path.chmod(0o644)
    manifest_path.write_bytes(manifest_path.read_bytes().replace(b"sklearn", b"xgboost", 1))
    with pytest.raises(ArtifactCorruptedError):
        fm.load_model("models:/churn/1")


def test_a_changed_cached_copy_is_fetched_again(home: Path, data: Any) -> None:
    X, y = data
    version = fm.log_model(LogisticRegression(max_iter=300).fit(X, y), name="churn")
    fm.load_model(version)
    cached = config.settings().cache_dir / "models" / version.manifest_digest / "model.skops"
    assert cached.is_file()
    cached.write_bytes(b"not a model")
    loaded = fm.load_model(version)
    np.testing.assert_array_equal(loaded.predict(X), fm.load_model(version).predict(X))
    assert cached.read_bytes() != b"not a model"


def test_skops_refuses_types_not_declared_at_save(home: Path, data: Any) -> None:
    from forgeml.registry.flavors import sklearn_flavor

    X, y = data
    model = GradientBoostingClassifier(n_estimators=3).fit(X, y)
    directory = Path(home) / "bundle"
    directory.mkdir(parents=True)
    options = sklearn_flavor.save(model, directory, {})
    assert "sklearn.tree._tree.Tree" in options["trusted_types"]
    with pytest.raises(ModelFlavorError, match="did not declare"):
        sklearn_flavor.load(directory, {**options, "trusted_types": []})


def test_xgboost_booster_and_wrapper(home: Path, data: Any) -> None:
    import xgboost as xgb

    X, y = data
    wrapper = xgb.XGBClassifier(n_estimators=10, max_depth=3).fit(X, y)
    booster = xgb.train({"max_depth": 3}, xgb.DMatrix(X, label=y), num_boost_round=5)
    v1 = fm.log_model(wrapper, name="xgb", example=X[:3])
    v2 = fm.log_model(booster, name="xgb", example=X[:3])
    assert (v1.flavor, v2.flavor) == ("xgboost", "xgboost")
    assert set(api.model_manifest(v1)["files"]) == {"model.ubj"}
    loaded = fm.load_model("models:/xgb/1")
    np.testing.assert_allclose(loaded.predict_proba(X), wrapper.predict_proba(X))
    loaded_booster = fm.load_model("models:/xgb/2")
    np.testing.assert_allclose(
        loaded_booster.predict(xgb.DMatrix(X)), booster.predict(xgb.DMatrix(X))
    )
    assert v2.signature["outputs"]["dtype"] == "float32"  # type: ignore[index]


def test_lightgbm_booster_and_wrapper(home: Path, data: Any) -> None:
    import lightgbm as lgb

    X, y = data
    labels = np.where(y == 1, "benign", "malignant")
    wrapper = lgb.LGBMClassifier(n_estimators=10, verbose=-1).fit(X, labels)
    booster = lgb.train(
        {"objective": "binary", "verbose": -1}, lgb.Dataset(X, y), num_boost_round=5
    )
    v1 = fm.log_model(wrapper, name="lgb", example=X[:3])
    v2 = fm.log_model(booster, name="lgb")
    manifest = api.model_manifest(v1)
    assert set(manifest["files"]) == {"model.txt", "wrapper.skops"}
    loaded = fm.load_model(v1)
    np.testing.assert_array_equal(loaded.predict(X), wrapper.predict(X))
    np.testing.assert_allclose(loaded.predict_proba(X), wrapper.predict_proba(X))
    assert v1.signature["outputs"]["type"] == "tensor"  # type: ignore[index]
    np.testing.assert_allclose(fm.load_model(v2).predict(X), booster.predict(X))
    text = _stored_file(manifest["files"]["model.txt"]["digest"]).read_text()
    assert text.startswith("tree")  # LightGBM's own text format


def test_pytorch_state_dict_with_code_reference(home: Path) -> None:
    import torch

    from model_zoo import TinyNet

    torch.manual_seed(0)
    net = TinyNet(n_features=4, hidden=16)
    example = np.random.default_rng(0).normal(size=(3, 4)).astype("float32")
    version = fm.log_model(
        net, name="net", example=example, init_kwargs={"n_features": 4, "hidden": 16}
    )
    manifest = api.model_manifest(version)
    assert manifest["flavor_options"]["format"] == "state_dict"
    assert manifest["flavor_options"]["code"] == "model_zoo:TinyNet"
    assert version.signature == {
        "inputs": {"type": "tensor", "dtype": "float32", "shape": [-1, 4]},
        "outputs": {"type": "tensor", "dtype": "float32", "shape": [-1, 2]},
    }
    loaded = fm.load_model(version)
    assert isinstance(loaded, TinyNet)
    x = torch.as_tensor(example)
    torch.testing.assert_close(loaded(x), net.eval()(x))


def test_pytorch_torchscript_for_classes_defined_in_scripts(home: Path) -> None:
    import torch

    class ScriptNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(3, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(self.linear(x))

    net = ScriptNet()
    example = torch.randn(2, 3)
    version = fm.log_model(net, name="scripted", example=example)
    assert api.model_manifest(version)["flavor_options"]["format"] == "torchscript"
    loaded = fm.load_model(version)
    torch.testing.assert_close(loaded(example), net(example))
    with pytest.raises(ModelFlavorError, match="defined in a script"):
        fm.log_model(net, name="scripted", format="state_dict")


def test_pytorch_containers_default_to_torchscript_and_load_back(home: Path) -> None:
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    version = fm.log_model(net, name="sequential")
    assert api.model_manifest(version)["flavor_options"]["format"] == "torchscript"
    x = torch.randn(5, 3)
    torch.testing.assert_close(fm.load_model(version)(x), net.eval()(x))


def test_pytorch_state_dict_needs_importable_code(home: Path) -> None:
    from forgeml.registry.flavors import pytorch_flavor

    with pytest.raises(ModelFlavorError, match="cannot import the model class"):
        pytorch_flavor.load(
            Path(home), {"format": "state_dict", "file": "x", "code": "no_such_mod:Net"}
        )
    with pytest.raises(ModelFlavorError, match=r"is not a torch\.nn\.Module class"):
        pytorch_flavor.load(
            Path(home), {"format": "state_dict", "file": "x", "code": "model_zoo:NotAModule"}
        )


def test_signature_inference_shapes() -> None:
    from forgeml.registry.signature import infer_schema

    frame = pd.DataFrame(
        {
            "a": [1, 2],
            "b": [0.5, None],
            "c": ["x", "y"],
            "d": pd.to_datetime(["2024-01-01", "2024-01-02"]),
            "e": pd.Categorical(["u", "v"]),
            "f": [True, False],
        }
    )
    columns = {c["name"]: (c["type"], c["nullable"]) for c in infer_schema(frame)["columns"]}
    assert columns == {
        "a": ("int64", False),
        "b": ("float64", True),
        "c": ("string", False),
        "d": ("datetime", False),
        "e": ("category", False),
        "f": ("bool", False),
    }
    assert infer_schema(np.zeros((5, 3, 2), dtype="float32")) == {
        "type": "tensor",
        "dtype": "float32",
        "shape": [-1, 3, 2],
    }
    assert infer_schema([{"x": 1}, {"x": 2}])["columns"][0]["name"] == "x"
    import pyarrow as pa

    assert infer_schema(pa.table({"z": [1.0]}))["columns"][0]["type"] == "float64"
    with pytest.raises(InvalidArgumentError, match="cannot infer a schema"):
        infer_schema(object())


def test_concurrent_loads_share_one_verified_cache(home: Path, data: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    X, y = data
    version = fm.log_model(LogisticRegression(max_iter=300).fit(X, y), name="churn")
    with ThreadPoolExecutor(4) as pool:
        models = list(pool.map(lambda _: fm.load_model(version), range(8)))
    assert all((m.predict(X) == models[0].predict(X)).all() for m in models)
    cache = config.settings().cache_dir / "models"
    assert sorted(p.name for p in cache.iterdir() if not p.name.startswith(".")) == [
        version.manifest_digest
    ]
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]
    assert any((cache / version.manifest_digest).iterdir())
