"""What a run ran on: code version, command line, host, Python and package versions.

Collected once per process (a git call and a scan of installed packages cost
milliseconds; a training script starts hundreds of runs). The package list is stored
once per distinct environment and runs point at it by digest.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shlex
import socket
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from typing import Any

import orjson


@dataclass(frozen=True)
class CodeVersion:
    git_sha: str | None
    git_dirty: bool | None


@dataclass(frozen=True)
class Environment:
    digest: str
    body: dict[str, Any]


def _git(args: list[str], cwd: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout if result.returncode == 0 else None


@cache
def code_version(cwd: str | None = None) -> CodeVersion:
    """The git commit of the working directory and whether tracked files differ from it."""
    where = cwd or os.getcwd()
    sha = _git(["rev-parse", "HEAD"], where)
    if sha is None:
        return CodeVersion(None, None)
    status = _git(["status", "--porcelain", "--untracked-files=no"], where)
    return CodeVersion(sha.strip(), None if status is None else bool(status.strip()))


def command_line() -> str:
    return shlex.join(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])


@cache
def hostname() -> str:
    return socket.gethostname()


def _gpus() -> list[dict[str, Any]]:
    from forgeml.tracking.resources import gpu_inventory

    return gpu_inventory()


@cache
def environment() -> Environment:
    """This process's environment and its content digest (cached for the process)."""
    packages = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            packages[name.lower()] = dist.version
    body: dict[str, Any] = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "gpus": _gpus(),
        "packages": dict(sorted(packages.items())),
    }
    digest = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return Environment(digest, body)
