"""A child Python for the tests: the command line, a README script, a call that may hang."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_python(
    *args: str | Path, cwd: Path = REPO, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """This interpreter run with `args` in `cwd`, its output captured as text; `env` replaces
    the environment (None: this process's). A child still running after `timeout` seconds is
    killed and subprocess.TimeoutExpired raised."""
    return subprocess.run(
        [sys.executable, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
