"""The Fashion-MNIST example on a slice of the real data (the Debian package's files)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

import forgeml as fm

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
sys.path.insert(0, str(EXAMPLES))

import fashion_mnist  # noqa: E402


@pytest.fixture
def fashion_data() -> Path:
    if not (fashion_mnist.DATA_DIR / "train-images-idx3-ubyte.gz").is_file():
        message = "Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message + "; CI=true: the example must be tested")
        pytest.skip(message)
    return fashion_mnist.DATA_DIR


def test_idx_files_read_as_the_real_data(fashion_data: Path) -> None:
    images, labels = fashion_mnist.load("test")
    assert images.shape == (10_000, 1, 28, 28) and images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() == 1.0
    assert np.bincount(labels).tolist() == [1000] * 10  # the test set is balanced


def test_a_short_training_learns_and_registers(home: Path, fashion_data: Path) -> None:
    result = fashion_mnist.train(
        epochs=2, limit=2000, batch_size=50, register="fashion-test", progress=False
    )
    assert result.history[-1]["val_accuracy"] > 0.6  # chance is 0.1
    version = result.model_version
    assert version is not None
    images, _ = fashion_mnist.load("test", 8)
    import torch

    loaded = fm.load_model(version.uri)
    with torch.no_grad():
        expected = result.model.cpu()(torch.from_numpy(images))
        torch.testing.assert_close(loaded(torch.from_numpy(images)), expected)
