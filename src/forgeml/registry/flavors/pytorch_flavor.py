"""PyTorch modules: TorchScript, or a state_dict plus a reference to the model's code.

``format="state_dict"`` stores only tensors (read back with ``weights_only=True``, so
no pickled objects are ever built) and ``code="package.module:Class"`` with JSON
``init_kwargs`` to rebuild the module; the class must be importable where the model is
loaded. ``format="torchscript"`` stores a self-contained TorchScript archive (scripted,
or traced from the example). Without a format, importable classes of the user's own
use state_dict; others (defined in ``__main__``, or torch containers such as
``nn.Sequential``) use TorchScript.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import orjson

from forgeml.errors import ModelFlavorError

NAME = "pytorch"
PACKAGES = ("torch", "numpy")
STATE_FILE = "state_dict.pt"
SCRIPT_FILE = "model.torchscript.pt"


def matches(model: Any) -> bool:
    import torch

    return isinstance(model, torch.nn.Module)


def _code_reference(model: Any) -> str | None:
    """``module:Class`` that rebuilds the model from its constructor, or None.

    torch's own containers (``nn.Sequential``...) are not rebuilt by their constructor's
    arguments, and script classes cannot be imported elsewhere: both go to TorchScript.
    """
    cls = type(model)
    if cls.__module__ in ("__main__", "builtins") or "<locals>" in cls.__qualname__:
        return None
    if cls.__module__.split(".")[0] == "torch":
        return None
    return f"{cls.__module__}:{cls.__qualname__}"


def save(model: Any, directory: Path, options: dict[str, Any]) -> dict[str, Any]:
    import torch

    fmt = options.get("format")
    code = options.get("code") or _code_reference(model)
    if fmt is None:
        fmt = "state_dict" if code is not None else "torchscript"
    if fmt == "state_dict":
        if code is None:
            raise ModelFlavorError(
                f"{type(model).__qualname__} is defined in a script, so it cannot be rebuilt "
                "from a state_dict elsewhere: pass code='package.module:Class' or "
                "format='torchscript'"
            )
        init_kwargs = options.get("init_kwargs") or {}
        try:
            orjson.dumps(init_kwargs)
        except TypeError as exc:
            raise ModelFlavorError(f"init_kwargs must be JSON values: {exc}") from None
        torch.save(model.state_dict(), directory / STATE_FILE)
        return {
            "format": "state_dict",
            "file": STATE_FILE,
            "code": code,
            "init_kwargs": init_kwargs,
        }
    if fmt == "torchscript":
        scripted = _script(model, options.get("example"))
        torch.jit.save(scripted, str(directory / SCRIPT_FILE))
        return {"format": "torchscript", "file": SCRIPT_FILE}
    raise ModelFlavorError(f"unknown PyTorch format {fmt!r}: use 'state_dict' or 'torchscript'")


def _script(model: Any, example: Any) -> Any:
    import torch

    if isinstance(model, torch.jit.ScriptModule):
        return model
    try:
        return torch.jit.script(model)
    except Exception as script_error:
        if example is None:
            raise ModelFlavorError(
                f"cannot script {type(model).__qualname__} ({script_error}); pass an example "
                "to trace it instead"
            ) from script_error
        with torch.no_grad():
            return torch.jit.trace(model.eval(), _as_tensor(example))  # type: ignore[no-untyped-call]


def load(directory: Path, options: dict[str, Any]) -> Any:
    import torch

    if options.get("format") == "torchscript":
        return torch.jit.load(  # type: ignore[no-untyped-call]
            str(directory / options["file"]), map_location="cpu"
        )
    module_name, _, qualname = str(options["code"]).partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ModelFlavorError(
            f"cannot import the model class {options['code']!r} to load this state_dict: {exc}"
        ) from None
    if not (isinstance(target, type) and issubclass(target, torch.nn.Module)):
        raise ModelFlavorError(f"{options['code']!r} is not a torch.nn.Module class")
    model = target(**options.get("init_kwargs", {}))
    state = torch.load(directory / options["file"], map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()


def _as_tensor(example: Any) -> Any:
    import numpy as np
    import torch

    if isinstance(example, torch.Tensor):
        return example
    return torch.as_tensor(np.asarray(example))


def predict(model: Any, example: Any) -> Any:
    import torch

    with torch.no_grad():
        output = model.eval()(_as_tensor(example))
    return output.detach().cpu().numpy() if isinstance(output, torch.Tensor) else None
