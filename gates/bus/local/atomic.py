"""Crash-safe file replacement: write a temp file, fsync it, os.replace it, fsync the folder.

Temp names start with '.' and end in `.<pid>.<random>.tmp`, so no listing mistakes them for a
slot, and a later publish can tell a dead writer's leftovers from a live writer's work.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

_TEMP_RE = re.compile(r"\..+\.(\d+)\.[0-9a-f]+\.tmp")
STALE_AFTER_S = 3600.0


def fsync_file(path: str | os.PathLike[str]) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename durable. Windows cannot open folders; NTFS journals renames anyway."""
    if os.name == "nt":
        return
    fsync_file(path)


@contextmanager
def atomic_write(path: Path, write: Callable[[str], object]) -> Iterator[Callable[[], None]]:
    """Run `write(tmp_path)`, fsync the result, and yield a function that swaps it into place.

    Yielding the swap instead of doing it lets a caller finish several files before replacing
    any of them. A temp file that is never swapped in is removed on the way out.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp")
    try:
        write(str(tmp))
        fsync_file(tmp)
        yield lambda: os.replace(tmp, path)
    finally:
        with suppress(FileNotFoundError):
            os.unlink(tmp)


def _writer_alive(pid: int) -> bool:
    if pid == os.getpid() or os.name == "nt":  # os.kill would terminate on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temps(folder: Path, now: float | None = None) -> list[Path]:
    """Remove temp files left by writers that died mid-write (or that are over an hour old)."""
    now = time.time() if now is None else now
    removed = []
    for entry in os.scandir(folder):
        m = _TEMP_RE.fullmatch(entry.name)
        if not m:
            continue
        try:
            old = now - entry.stat().st_mtime > STALE_AFTER_S
            if old or not _writer_alive(int(m.group(1))):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except FileNotFoundError:
            continue
    return removed
