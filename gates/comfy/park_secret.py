"""This ComfyUI's park secret: the key that seals the runs it parks (gates.gate.seal).

It must live outside the bus (whoever can write the bus must not be able to seal), so, first
found wins:
- DATASET_GATES_PARK_SECRET: the secret itself (16 or more characters). Workers that share a
  bus and should resume each other's parked runs (a farm) are given the same value.
- DATASET_GATES_PARK_SECRET_FILE: a file that holds it, readable by its owner only (chmod 600).
- else a file made on first use in ComfyUI's user directory, in a system folder its HTTP routes
  never serve (user/__dataset_gates/park_secret, 0600).

The secret is never logged and never part of an error message.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ..secret_file import MIN_LENGTH, ensure_secret, read_secret

ENV_SECRET = "DATASET_GATES_PARK_SECRET"
ENV_SECRET_FILE = "DATASET_GATES_PARK_SECRET_FILE"
FILE_NAME = "park_secret"


def park_secret(default_dir: Path, environ: Mapping[str, str] = os.environ) -> bytes:
    """The secret, as above, with `default_dir` the folder of the file made on first use.

    ValueError (SecretFileError for a file) when the configured one cannot be used.
    """
    given = (environ.get(ENV_SECRET) or "").strip()
    if given:
        if len(given) < MIN_LENGTH:
            raise ValueError(f"{ENV_SECRET} holds fewer than {MIN_LENGTH} characters")
        return given.encode("utf-8")
    path = environ.get(ENV_SECRET_FILE)
    if path:
        return read_secret(Path(path)).encode("utf-8")
    return ensure_secret(default_dir / FILE_NAME).encode("utf-8")
