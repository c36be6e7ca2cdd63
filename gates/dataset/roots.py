"""Which folders a shared server lets its dataset loader read and its saver write.

A ComfyUI on a network runs whatever path anyone types into a node. Setting
DATASET_GATES_ROOTS (folders separated by os.pathsep: ':' on Linux and macOS, ';' on Windows)
limits dataset reads and writes to those folders and what is inside them; a node may also pass
defaults of its own (ComfyUI's input and output folders) for when the variable is not set.
Neither set: any folder, as core nodes take any path.

A path is checked where it really leads (links resolved), and callers go on with the resolved
path `check` returns, so a link swapped in afterwards changes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from .errors import DatasetError, RootRefused

ENV_VAR = "DATASET_GATES_ROOTS"
Purpose = Literal["read", "write"]


class Roots:
    """The allowed folders, or None for any folder."""

    def __init__(self, allowed: Sequence[str | os.PathLike[str]] | None) -> None:
        """Args:
        allowed: the folders (each with everything under it), or None to allow any folder.
            An empty sequence allows none.
        """
        self.allowed = None if allowed is None else tuple(_real(p) for p in allowed)

    @classmethod
    def from_env(
        cls, defaults: Sequence[str | os.PathLike[str]] | None = None, environ: Mapping[str, str] | None = None
    ) -> Roots:
        """The roots DATASET_GATES_ROOTS sets; else `defaults`; else any folder.

        Args:
            defaults: the caller's folders for when the variable is unset or empty.
            environ: the environment to read (os.environ by default).
        """
        value = (os.environ if environ is None else environ).get(ENV_VAR, "")
        listed = [p for p in value.split(os.pathsep) if p.strip()]
        return cls(listed if listed else defaults)

    def check(self, path: str | os.PathLike[str], purpose: Purpose) -> Path:
        """The folder `path` really is (links resolved), if it is one of the allowed folders or inside one.

        Args:
            path: the folder a user typed.
            purpose: "read" (a dataset to load) or "write" (a folder to save into), for the message.

        Returns:
            The resolved path: use it, not `path`, from here on.

        Raises:
            DatasetError: no folder given.
            RootRefused: outside every allowed folder (the message names the setting, not the folders).
        """
        if not str(path).strip():
            raise DatasetError("no folder given: type the folder's path")
        real = _real(path)
        if self.allowed is None or any(_inside(real, root) for root in self.allowed):
            return real
        verb = "read datasets from" if purpose == "read" else "save datasets to"
        raise RootRefused(f"{path} is outside the folders this server may {verb} (set by {ENV_VAR})")


def _real(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.realpath(os.fspath(path)))


def _inside(path: Path, root: Path) -> bool:
    a, b = os.path.normcase(str(path)), os.path.normcase(str(root))
    try:
        return os.path.commonpath([a, b]) == b
    except ValueError:  # different drives
        return False
