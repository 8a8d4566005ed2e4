"""Training overhead: the Fashion-MNIST CNN through forgeml's Trainer vs a plain PyTorch loop.

    .venv/bin/python benchmarks/training.py            # 15 epochs each; meant for a GPU
    .venv/bin/python benchmarks/training.py --quick    # 1 epoch on 5,000 images; writes nothing

Both train the network of ``examples/fashion_mnist.py`` from the same initial weights,
in the same process, one after the other, with the same data (random flips and shifts
of the training images), batch size, optimizer (AdamW, lr 2e-3, weight decay 5e-4),
cosine schedule per epoch and precision (bf16 autocast where the GPU supports it). The
plain loop is what one would write by hand: pinned-memory DataLoader, non-blocking
copies, ``zero_grad(set_to_none=True)``, one host synchronisation per epoch. forgeml's
Trainer also logs every epoch to its run, writes a checkpoint every epoch and registers
the model. Targets: test accuracy >= 94% and forgeml's wall time <= 1.15x the plain
loop's. The data is read from the Debian package ``dataset-fashion-mnist`` (or
``FASHION_MNIST_DIR``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "examples"))

import fashion_mnist  # noqa: E402

ACCURACY_TARGET = 0.94
RATIO_TARGET = 1.15


def plain_loop(epochs: int, limit: int | None, batch_size: int) -> dict[str, Any]:
    """The same training, written by hand."""
    import torch
    from torch.utils.data import DataLoader

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    x_train, y_train = fashion_mnist.load("train", limit)
    x_test, y_test = fashion_mnist.load("test", None if limit is None else max(1, limit // 5))
    torch.manual_seed(0)
    model = fashion_mnist.network().to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=2e-3, weight_decay=5e-4, fused=device.type == "cuda"
    )
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    loader = DataLoader(
        fashion_mnist.augmented(x_train, y_train),
        batch_size=batch_size,
        shuffle=True,
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(0),
    )
    test_x = torch.from_numpy(x_test).to(device)
    test_y = torch.from_numpy(y_test).to(device)
    loss_fn = torch.nn.CrossEntropyLoss()
    started = time.perf_counter()
    accuracy = 0.0
    for _epoch in range(epochs):
        model.train()
        total = torch.zeros((), device=device)
        for images, labels in loader:
            images = images.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = loss_fn(model(images), labels)
            loss.backward()
            optimizer.step()
            total += loss.detach()
        schedule.step()
        model.eval()
        correct = 0
        with (
            torch.inference_mode(),
            torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16),
        ):
            for start in range(0, len(test_y), 1024):
                outputs = model(test_x[start : start + 1024])
                correct += int((outputs.argmax(-1) == test_y[start : start + 1024]).sum())
        accuracy = correct / len(test_y)
        float(total)  # the one synchronisation per epoch
    return {"seconds": time.perf_counter() - started, "accuracy": accuracy}


def forgeml_trainer(epochs: int, limit: int | None, batch_size: int) -> dict[str, Any]:
    started = time.perf_counter()
    result = fashion_mnist.train(epochs, limit, batch_size, register="bench-fashion-cnn")
    return {
        "seconds": time.perf_counter() - started,
        "accuracy": result.history[-1]["val_accuracy"],
        "device": result.device,
        "precision": result.precision,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    epochs, limit = (1, 5000) if args.quick else (args.epochs, None)
    import torch

    with tempfile.TemporaryDirectory() as home:
        os.environ.setdefault("FORGEML_HOME", home)
        fashion_mnist.train(1, 512, args.batch_size, register=None, progress=False)  # warm-up
        plain = plain_loop(epochs, limit, args.batch_size)
        forgeml = forgeml_trainer(epochs, limit, args.batch_size)
    ratio = forgeml["seconds"] / plain["seconds"]
    results = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "epochs": epochs,
        "limit": limit,
        "plain": plain,
        "forgeml": forgeml,
        "ratio": ratio,
    }
    text = "\n".join(
        [
            "# Training overhead: Fashion-MNIST CNN",
            "",
            f"{results['when']}, {results['gpu'] or 'CPU'}, torch {results['torch']}, "
            f"{epochs} epochs, {forgeml['device']} ({forgeml['precision']}).",
            "",
            "| Loop | Wall time | Test accuracy |",
            "|---|---|---|",
            f"| plain PyTorch | {plain['seconds']:.1f} s | {plain['accuracy']:.4f} |",
            f"| forgeml Trainer | {forgeml['seconds']:.1f} s | {forgeml['accuracy']:.4f} |",
            "",
            f"- forgeml / plain wall time: {ratio:.3f}x (target <= {RATIO_TARGET}x): "
            f"{'met' if ratio <= RATIO_TARGET else 'NOT met'}",
            f"- forgeml test accuracy {forgeml['accuracy']:.4f} (target >= {ACCURACY_TARGET}): "
            f"{'met' if forgeml['accuracy'] >= ACCURACY_TARGET else 'NOT met'}",
            "",
        ]
    )
    print(text)
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "training.json").write_text(json.dumps(results, indent=2) + "\n")
        (RESULTS / "training.md").write_text(text)


if __name__ == "__main__":
    main()
