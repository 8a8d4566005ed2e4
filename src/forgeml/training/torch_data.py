"""Data and hardware for the PyTorch trainer: the device, the numeric precision, datasets
built from arrays, and loaders that keep the accelerator fed.

Tensors given as an ``(X, y)`` pair are batched by indexing whole batches at once (one
gather per tensor and batch) instead of fetching rows one by one and stacking them,
which is what makes an in-memory dataset as cheap to iterate as slicing it by hand.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

from forgeml.errors import InvalidArgumentError
from forgeml.training import deps

try:
    import torch
    from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset
except ImportError as exc:  # pragma: no cover - exercised in a process without torch
    raise deps.missing("torch", "the PyTorch trainer") from exc

Precision = Literal["bf16", "fp32"]


def resolve_device(device: str | torch.device) -> torch.device:
    """ "auto" is CUDA when there is a GPU, else Apple's MPS, else the CPU."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError):
        raise InvalidArgumentError(
            f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}"
        ) from None


def resolve_precision(precision: str, device: torch.device) -> Precision:
    """ "auto" is bf16 autocast on a GPU that supports it, else fp32."""
    if precision == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return "bf16"
        return "fp32"
    if precision in ("bf16", "fp32"):
        return "bf16" if precision == "bf16" else "fp32"
    raise InvalidArgumentError(f"precision must be 'auto', 'bf16' or 'fp32', got {precision!r}")


def _tensor(value: Any, name: str) -> torch.Tensor:
    """A tensor from a tensor, array or frame; floating NumPy data becomes float32, the
    dtype of PyTorch's default parameters."""
    if isinstance(value, torch.Tensor):
        return value
    import numpy as np

    from forgeml.training import frames

    if frames.is_frame(value) or type(value).__module__.split(".")[0] in ("pandas", "polars"):
        value = frames.features(value).to_numpy() if frames.is_frame(value) else value.to_numpy()
    array = np.asarray(value)
    if array.dtype.kind == "f":
        array = array.astype(np.float32, copy=False)
    elif array.dtype.kind == "b":
        array = array.astype(np.int64)
    elif array.dtype.kind not in "iu":
        raise InvalidArgumentError(f"{name} must be numeric, got an array of dtype {array.dtype}")
    return torch.from_numpy(np.ascontiguousarray(array))


def as_dataset(data: Any, name: str) -> Dataset[Any]:
    """A torch Dataset as it is, or an ``(X, y)`` pair of tensors/arrays as a TensorDataset."""
    if isinstance(data, Dataset):
        return data
    if isinstance(data, Sequence) and not isinstance(data, str) and len(data) == 2:
        X = _tensor(data[0], f"{name}[0]")
        y = _tensor(data[1], f"{name}[1]")
        if not isinstance(data[1], torch.Tensor) and not y.is_floating_point():
            y = y.long()  # class indices, as cross-entropy takes them
        if len(X) != len(y):
            raise InvalidArgumentError(f"{name} has {len(X)} inputs but {len(y)} targets")
        if len(X) == 0:
            raise InvalidArgumentError(f"{name} is empty")
        return TensorDataset(X, y)
    raise InvalidArgumentError(
        f"{name} must be a torch Dataset or a pair (X, y) of tensors or arrays, "
        f"got {type(data).__name__}"
    )


class _Batches(Sampler[torch.Tensor]):
    """Index tensors of whole batches, from one permutation per epoch when shuffling."""

    def __init__(
        self, size: int, batch_size: int, shuffle: bool, generator: torch.Generator | None
    ) -> None:
        self.size = size
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator

    def __iter__(self) -> Iterator[torch.Tensor]:
        if self.shuffle:
            order = torch.randperm(self.size, generator=self.generator)
        else:
            order = torch.arange(self.size)
        yield from torch.split(order, self.batch_size)

    def __len__(self) -> int:
        return -(-self.size // self.batch_size)


def make_loader(
    dataset: Dataset[Any],
    *,
    batch_size: int,
    shuffle: bool,
    generator: torch.Generator | None,
    num_workers: int,
    device: torch.device,
) -> DataLoader[Any]:
    """A loader that pins host memory only when batches go to a CUDA device."""
    pin = device.type == "cuda"
    if isinstance(dataset, TensorDataset):
        pin = pin and all(t.device.type == "cpu" for t in dataset.tensors)
        return DataLoader(
            dataset,
            batch_size=None,  # the sampler yields whole batches, fetched with one gather
            sampler=_Batches(len(dataset), batch_size, shuffle, generator),
            num_workers=num_workers,
            pin_memory=pin,
            generator=generator,
            persistent_workers=num_workers > 0,
        )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        pin_memory=pin,
        generator=generator,
        persistent_workers=num_workers > 0,
    )


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor of a batch (nested in tuples, lists, dicts) without blocking."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple | list):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def split_batch(batch: Any) -> tuple[tuple[Any, ...], Any]:
    """(model inputs, targets): a batch is ``(x, y)``, or ``(x1, ..., xn, y)`` for a model
    that takes several inputs."""
    if isinstance(batch, tuple | list) and len(batch) >= 2:
        return tuple(batch[:-1]), batch[-1]
    raise InvalidArgumentError(
        f"each batch must be a pair (inputs, targets) or (input1, ..., targets), got "
        f"{type(batch).__name__}" + (f" of {len(batch)}" if isinstance(batch, tuple | list) else "")
    )


def batch_rows(target: Any) -> int:
    """Rows in a batch, read from its shape (no device synchronisation)."""
    if isinstance(target, torch.Tensor):
        return int(target.shape[0]) if target.dim() else 1
    return len(target)


def example_inputs(dataset: Dataset[Any], rows: int) -> Any:
    """The first ``rows`` inputs of a dataset, on the CPU: a registered model's example."""
    if isinstance(dataset, TensorDataset):
        return dataset.tensors[0][:rows].detach().cpu()
    from torch.utils.data import default_collate

    size = len(dataset)  # type: ignore[arg-type]
    items = [dataset[i] for i in range(min(rows, size))]
    inputs, _ = split_batch(default_collate(items))
    first = inputs[0]
    return first.detach().cpu() if isinstance(first, torch.Tensor) else first
