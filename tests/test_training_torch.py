"""The PyTorch trainer: per-epoch records, checkpoints, resume, early stopping, registry."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.preprocessing import StandardScaler
from torch import nn

import forgeml as fm
from forgeml.errors import InvalidArgumentError
from forgeml.training import EarlyStopping, Trainer, evaluate


class Net(nn.Module):
    """Importable from this module, so the registry can rebuild it from a state_dict."""

    def __init__(self, n_in: int = 30, hidden: int = 16, n_out: int = 2) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(n_in, hidden), nn.ReLU(), nn.Dropout(0.2), nn.Linear(hidden, n_out)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)  # type: ignore[no-any-return]


Split = tuple[np.ndarray, np.ndarray]


@pytest.fixture(scope="module")
def cancer() -> tuple[Split, Split]:
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    return (X[:300], y[:300]), (X[300:400], y[300:400])


def net(seed: int = 0) -> Net:
    torch.manual_seed(seed)
    return Net()


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_classifier_records_epochs_checkpoints_and_registers(home: Path, cancer: Any) -> None:
    train, val = cancer
    trainer = Trainer(net(), lr=1e-2, epochs=3, batch_size=64, seed=0, progress=False)
    with fm.start_run(experiment="cancer", name="mlp") as run:
        result = trainer.fit(train, val, register="cancer-net")
    assert (result.run_id, result.device, result.precision) == (run.id, "cpu", "fp32")
    assert [r["epoch"] for r in result.history] == [1, 2, 3]
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.history[-1]["val_accuracy"] > 0.85
    assert not result.stopped_early and result.monitor == "val_loss"
    best = min(result.history, key=lambda r: r["val_loss"])
    assert (result.best_epoch, result.best_value) == (best["epoch"], best["val_loss"])

    stored = fm.get_run(run.id)
    assert {k: stored.params[k] for k in ("optimizer", "lr", "batch_size", "epochs")} == {
        "optimizer": "adamw",
        "lr": "0.01",
        "batch_size": "64",
        "epochs": "3",
    }
    assert (stored.params["device"], stored.params["precision"]) == ("cpu", "fp32")
    assert stored.params["parameters"] == str(sum(p.numel() for p in result.model.parameters()))
    for key in ("train_loss", "val_loss", "val_accuracy", "lr", "epoch_seconds"):
        points = fm.get_metric_history(run.id, key)
        assert [p.step for p in points] == [1, 2, 3], key
        assert [p.value for p in points] == pytest.approx([r[key] for r in result.history])
    assert fm.get_metric_history(run.id, "samples_per_second")[0].value > 0

    artifacts = {a.path for a in fm.list_artifacts(run.id)}
    assert {"checkpoints/last.pt", "checkpoints/best.pt"} <= artifacts
    assert result.checkpoint is not None and result.checkpoint.name == "last.pt"
    assert result.checkpoint.is_relative_to(home / "cache" / "checkpoints" / run.id)
    assert not list(result.checkpoint.parent.glob(".*.tmp"))  # atomic writes leave no debris

    version = result.model_version
    assert version is not None and version.run_id == run.id and version.flavor == "pytorch"
    assert version.signature["inputs"] == {  # type: ignore[index]
        "type": "tensor",
        "dtype": "float32",
        "shape": [-1, 30],
    }
    loaded = fm.load_model(version.uri)
    x = torch.as_tensor(val[0], dtype=torch.float32)
    assert not result.model.training  # returned ready for inference
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), result.model(x))
    score = evaluate(result.model, val[0], val[1], plots=False, log=False)
    assert score.metrics["accuracy"] == pytest.approx(result.history[-1]["val_accuracy"])


def test_resume_from_a_logged_checkpoint_matches_an_uninterrupted_run(
    home: Path, cancer: Any, tmp_path: Path
) -> None:
    train, val = cancer

    def trainer(epochs: int, model: nn.Module) -> Trainer:
        return Trainer(
            model,
            lr=5e-3,
            epochs=epochs,
            batch_size=32,
            seed=7,
            progress=False,
            scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7),
        )

    whole = trainer(4, net(1)).fit(train, val)
    first_half = trainer(2, net(1)).fit(train, val)
    saved = fm.download_artifact(first_half.run_id, "checkpoints/last.pt", tmp_path)
    resumed = trainer(4, net(99)).fit(train, val, resume_from=saved)

    assert_same_weights(weights(resumed.model), weights(whole.model))
    for key in ("train_loss", "val_loss", "val_accuracy", "lr"):
        assert [r[key] for r in resumed.history] == [r[key] for r in whole.history], key
    run = fm.get_run(resumed.run_id)
    assert run.params["resumed_from_epoch"] == "2"
    assert [p.step for p in fm.get_metric_history(run.id, "train_loss")] == [3, 4]
    assert (resumed.best_epoch, resumed.best_value) == (whole.best_epoch, whole.best_value)


def test_early_stopping_stops_and_restores_the_best_weights(home: Path, cancer: Any) -> None:
    train, val = cancer

    def scripted() -> Any:
        values: Iterator[float] = iter([1.0, 3.0, 2.0, 1.0, 0.5, 0.4, 0.3, 0.2])
        return lambda outputs, targets: next(values)

    rule = EarlyStopping(monitor="val_score", mode="max", patience=2)
    stopped = Trainer(
        net(2), epochs=8, seed=3, progress=False, early_stopping=rule, metrics={"score": scripted()}
    ).fit(train, val)
    assert stopped.stopped_early
    assert len(stopped.history) == 4  # epochs 3 and 4 did not beat epoch 2
    assert (stopped.monitor, stopped.best_epoch, stopped.best_value) == ("val_score", 2, 3.0)
    reference = Trainer(net(2), epochs=2, seed=3, progress=False).fit(train, val)
    assert_same_weights(weights(stopped.model), weights(reference.model))
    assert len(fm.get_metric_history(stopped.run_id, "val_score")) == 4


def test_regression_on_a_dataset_with_bf16_autocast(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    X, y = load_diabetes(return_X_y=True)
    X = StandardScaler().fit_transform(X).astype(np.float32)
    y = ((y - y.mean()) / y.std()).astype(np.float32)

    class Rows(torch.utils.data.Dataset[tuple[torch.Tensor, torch.Tensor]]):
        def __init__(self, start: int, stop: int) -> None:
            self.x, self.y = torch.from_numpy(X[start:stop]), torch.from_numpy(y[start:stop])

        def __len__(self) -> int:
            return len(self.x)

        def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
            return self.x[i], self.y[i]

    def mae(outputs: torch.Tensor, targets: torch.Tensor) -> float:
        return float((outputs.squeeze(-1) - targets).abs().mean())

    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 1))
    result = Trainer(
        model,
        loss="mse",
        optimizer=lambda params: torch.optim.SGD(params, lr=0.05),
        epochs=3,
        batch_size=32,
        precision="bf16",
        metrics={"mae": mae},
        checkpoint_every=None,
        grad_clip=1.0,
        seed=0,
        progress=True,
    ).fit(Rows(0, 300), Rows(300, 400), experiment="diabetes", run_name="bf16", register="dia")
    assert result.precision == "bf16" and result.checkpoint is None
    assert set(result.history[0]) == {
        "epoch",
        "train_loss",
        "val_loss",
        "val_mae",
        "lr",
        "epoch_seconds",
        "samples_per_second",
    }
    assert result.history[-1]["val_loss"] < 1.0  # better than predicting the mean
    run = fm.get_run(result.run_id)
    assert (run.experiment, run.name, run.params["optimizer"]) == ("diabetes", "bf16", "<lambda>")
    assert not [a for a in fm.list_artifacts(run.id) if a.path.startswith("checkpoints/")]
    assert "epoch 3/3" in capsys.readouterr().out
    score = evaluate(result.model, X[300:400], y[300:400], task="regression", plots=False)
    assert score.metrics["rmse"] > 0
    assert result.model_version is not None  # an nn.Sequential goes in as TorchScript
    loaded = fm.load_model(result.model_version.uri)
    x = torch.from_numpy(X[300:310])
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), result.model(x))


def test_bad_settings_are_refused_where_they_are_made(home: Path, cancer: Any) -> None:
    train, val = cancer
    with pytest.raises(InvalidArgumentError, match="loss must be 'cross_entropy', 'mse'"):
        Trainer(net(), loss="hinge")
    with pytest.raises(InvalidArgumentError, match="precision must be 'auto', 'bf16' or"):
        Trainer(net(), precision="fp16")
    with pytest.raises(InvalidArgumentError, match="epochs must be a whole number greater"):
        Trainer(net(), epochs=0)
    with pytest.raises(InvalidArgumentError, match="patience must be at least 1"):
        EarlyStopping(patience=0)
    with pytest.raises(InvalidArgumentError, match="'val_loss', which needs validation data"):
        Trainer(net(), early_stopping=EarlyStopping(), progress=False).fit(train)
    with pytest.raises(InvalidArgumentError, match="'val_auc', which is not logged"):
        Trainer(net(), early_stopping=EarlyStopping("val_auc"), progress=False).fit(train, val)
    bogus = home.parent / "bogus.pt"
    bogus.write_bytes(b"not a checkpoint")
    with pytest.raises(InvalidArgumentError, match="is not a readable checkpoint"):
        Trainer(net(), progress=False).fit(train, val, resume_from=bogus)
    with pytest.raises(InvalidArgumentError, match="has 300 inputs but 5 targets"):
        Trainer(net(), progress=False).fit((train[0], train[1][:5]))
    assert len(fm.search_runs()) == 0


def test_without_torch_the_trainer_says_what_to_install() -> None:
    code = (
        "import sys\n"
        "sys.modules['torch'] = None\n"
        "import forgeml.training as training\n"
        "rule = training.EarlyStopping(patience=2)\n"
        "try:\n"
        "    training.Trainer\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.startswith("ForgeMLError the PyTorch trainer needs torch")
    assert "pip install 'forgeml[torch]'" in out
