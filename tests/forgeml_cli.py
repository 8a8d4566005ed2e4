"""Running the `forgeml` command as a real process, for the CLI tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

FORGEML = str(Path(sys.executable).parent / "forgeml")


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [FORGEML, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"forgeml {' '.join(args)} exited {result.returncode}: {result.stderr}"
        )
    return result


def cli_json(*args: str) -> Any:
    return json.loads(cli(*args, "--json").stdout)
