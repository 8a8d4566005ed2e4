"""An image classifier on Fashion-MNIST, trained and registered through forgeml.

    python examples/fashion_mnist.py                 # 15 epochs; a GPU is used when present
    python examples/fashion_mnist.py --epochs 1 --limit 5000

The data is Zalando's Fashion-MNIST (MIT licence) as shipped by the Debian package
``dataset-fashion-mnist`` (``apt-get install dataset-fashion-mnist``; ``dpkg -L`` lists
its idx files); ``FASHION_MNIST_DIR`` points elsewhere. Nothing is downloaded.

The network is a small VGG-style CNN (two blocks of two 3x3 convolutions with batch
norm, then a dense head) trained with AdamW and a cosine learning-rate schedule, with
random horizontal flips and shifts of the training images. forgeml's ``Trainer`` picks the
device (CUDA, with bf16 autocast where supported), logs every epoch, checkpoints, and
registers the result as ``fashion-cnn``.
"""

from __future__ import annotations

import argparse
import gzip
import os
from pathlib import Path
from typing import Any

import numpy as np

import forgeml as fm

DATA_DIR = Path(os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
LABELS = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
MODEL = "fashion-cnn"


def read_idx(path: Path) -> np.ndarray:
    """An idx file (the MNIST format: magic, dimensions, then the bytes), gzipped or not."""
    if not path.is_file():
        raise fm.ForgeMLError(
            f"{path} not found: install the Debian package dataset-fashion-mnist "
            "or set FASHION_MNIST_DIR"
        )
    opener: Any = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    magic = int.from_bytes(data[:4], "big")
    if magic >> 8 != 0x08:  # unsigned bytes
        raise fm.ForgeMLError(f"{path}: not an idx file of unsigned bytes (magic {magic:#x})")
    dims = magic & 0xFF
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(split: str, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images as float32 (N, 1, 28, 28) scaled to [0, 1], labels as int64."""
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(DATA_DIR / f"{prefix}-images-idx3-ubyte.gz")
    labels = read_idx(DATA_DIR / f"{prefix}-labels-idx1-ubyte.gz")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return (images.astype(np.float32) / 255.0)[:, None], labels.astype(np.int64)


def network() -> Any:
    import torch
    from torch import nn

    def block(inputs: int, outputs: int) -> list[nn.Module]:
        return [
            nn.Conv2d(inputs, outputs, 3, padding=1, bias=False),
            nn.BatchNorm2d(outputs),
            nn.ReLU(inplace=True),
            nn.Conv2d(outputs, outputs, 3, padding=1, bias=False),
            nn.BatchNorm2d(outputs),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        ]

    torch.manual_seed(0)
    return nn.Sequential(
        *block(1, 32),
        *block(32, 64),
        nn.Flatten(),
        nn.Dropout(0.3),
        nn.Linear(64 * 7 * 7, 256),
        nn.ReLU(inplace=True),
        nn.Dropout(0.3),
        nn.Linear(256, 10),
    )


def augmented(images: np.ndarray, labels: np.ndarray, seed: int = 0) -> Any:
    """Training images with random horizontal flips and shifts of up to 2 pixels."""
    import torch
    from torch.utils.data import Dataset

    class Augmented(Dataset[tuple[Any, Any]]):
        def __init__(self) -> None:
            self.images = torch.from_numpy(images)
            self.labels = torch.from_numpy(labels)
            self.generator = torch.Generator().manual_seed(seed)

        def __len__(self) -> int:
            return len(self.labels)

        def __getitem__(self, index: int) -> tuple[Any, Any]:
            image = self.images[index]
            if torch.rand((), generator=self.generator) < 0.5:
                image = image.flip(-1)
            dx, dy = torch.randint(-2, 3, (2,), generator=self.generator).tolist()
            return torch.roll(image, shifts=(dy, dx), dims=(-2, -1)), self.labels[index]

    return Augmented()


def train(
    epochs: int = 15,
    limit: int | None = None,
    batch_size: int = 256,
    register: str | None = MODEL,
    progress: bool = True,
    device: str = "auto",
) -> Any:
    """Train and evaluate; returns the Trainer's result (accuracy in its history)."""
    import torch

    x_train, y_train = load("train", limit)
    x_test, y_test = load("test", None if limit is None else max(1, limit // 5))
    trainer = fm.training.Trainer(
        network(),
        optimizer="adamw",
        lr=2e-3,
        weight_decay=5e-4,
        scheduler=lambda optimizer: torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=epochs
        ),
        epochs=epochs,
        batch_size=batch_size,
        device=device,
        seed=0,
        progress=progress,
    )
    return trainer.fit(
        augmented(x_train, y_train),
        (x_test, y_test),
        register=register,
        example=x_test[:4],
        experiment="fashion-mnist",
        run_name=f"cnn-{epochs}ep",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--limit", type=int, default=None, help="use the first N images")
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    result = train(args.epochs, args.limit, args.batch_size)
    last = result.history[-1]
    print(
        f"test accuracy {last['val_accuracy']:.4f} after {len(result.history)} epochs on "
        f"{result.device} ({result.precision}); registered {result.model_version.uri}"
    )


if __name__ == "__main__":
    main()
