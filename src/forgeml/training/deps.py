"""Optional packages: one place that turns a missing import into an error a person can act on.

Training touches libraries forgeml does not install by default (PyTorch, matplotlib).
Failing with the package's name and the command that installs it beats a bare
``ModuleNotFoundError`` from deep inside a helper.
"""

from __future__ import annotations

import importlib.util

from forgeml.errors import ForgeMLError

_INSTALL = {
    "torch": "pip install 'forgeml[torch]'",
    "matplotlib": "pip install matplotlib",
    "xgboost": "pip install 'forgeml[xgboost]'",
    "lightgbm": "pip install 'forgeml[lightgbm]'",
}


def missing(package: str, purpose: str) -> ForgeMLError:
    """The error to raise when ``package`` is not installed but ``purpose`` needs it."""
    how = _INSTALL.get(package, f"pip install {package}")
    return ForgeMLError(f"{purpose} needs {package}, which is not installed: {how}")


def require(package: str, purpose: str) -> None:
    """Fail early, before any work is done, when ``package`` cannot be imported."""
    try:
        found = importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):  # a module set to None in sys.modules, or a broken one
        found = False
    if not found:
        raise missing(package, purpose)
