"""Training checkpoints: written atomically, read back without unpickling any object.

A checkpoint holds everything the next epoch depends on: the weights, the optimizer and
scheduler state, the best-so-far bookkeeping (and the best weights, when early
stopping needs them), the history so far, and every random number generator the loop
draws from, so resuming from epoch k gives the same weights as never having stopped.

Only tensors and plain Python values go in, and ``torch.load(weights_only=True)`` reads
them, so opening a checkpoint never runs code.
"""

from __future__ import annotations

import os
import random
import uuid
from pathlib import Path
from typing import Any, cast

from forgeml.errors import InvalidArgumentError
from forgeml.training import deps

try:
    import torch
except ImportError as exc:  # pragma: no cover - exercised in a process without torch
    raise deps.missing("torch", "the PyTorch trainer") from exc

FORMAT = "forgeml.checkpoint/1"
_KEYS = ("format", "epoch", "model", "optimizer", "scheduler", "tracker", "history", "rng")


def save(state: dict[str, Any], path: Path) -> Path:
    """Write ``state`` to ``path`` so that a reader sees the old file or the new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with temporary.open("wb") as handle:
            torch.save({"format": FORMAT, **state}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)
    return path


def _fsync_directory(directory: Path) -> None:
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:  # some platforms cannot open a directory; the rename is still atomic
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save` (tensors on the CPU)."""
    location = Path(path)
    if not location.is_file():
        raise InvalidArgumentError(f"no checkpoint at {location}")
    try:
        state = torch.load(location, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InvalidArgumentError(f"{location} is not a readable checkpoint: {exc}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise InvalidArgumentError(f"{location} is not a forgeml training checkpoint")
    missing = [key for key in _KEYS if key not in state]
    if missing:
        raise InvalidArgumentError(f"checkpoint {location} lacks {', '.join(missing)}")
    return state


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    """The state of every generator a training loop draws from."""
    import numpy as np

    kind, keys, position, has_gauss, cached = cast(
        "tuple[str, np.ndarray[Any, Any], int, int, float]", np.random.get_state(legacy=True)
    )
    version, internal, gauss = random.getstate()
    return {
        "loader": generator.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if _cuda_in_use() else [],
        "python": [version, list(internal), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached],
    }


def _cuda_in_use() -> bool:
    return bool(torch.cuda.is_initialized())  # type: ignore[no-untyped-call]


def restore_rng(state: dict[str, Any], generator: torch.Generator) -> None:
    import numpy as np

    generator.set_state(state["loader"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"][: torch.cuda.device_count()])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
