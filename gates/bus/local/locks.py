"""One writer per slot across threads and processes: a lock file per slot id.

A publish replaces the tensors and the thumbnail in two renames and may archive the old
version; without the lock a second writer landing in between would leave one version's
thumbnail beside another's tensors, or archive over a kept version. A symlink planted as the
locks folder or a lock file is refused or removed, so the lock never creates or truncates a
file outside the bus.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import SlotWriteError
from ..ids import validate_id
from .safe_files import UnsafeFile, ensure_real_dir

LOCK_DIR = ".locks"
LOCK_TIMEOUT_S = 120.0


def os_reason(exc: OSError) -> str:
    """What went wrong, without the server path that str(OSError) carries."""
    return exc.strerror or type(exc).__name__


@contextmanager
def slot_lock(root: Path, slot_id: str, bus_name: str) -> Iterator[None]:
    """Hold slot `slot_id`'s writer lock of the bus folder `root`; SlotWriteError when it
    stays busy for LOCK_TIMEOUT_S or cannot be made."""
    from filelock import FileLock, Timeout  # only writers lock: a listing starts without it

    lock = FileLock(_lock_path(root, slot_id, bus_name), timeout=LOCK_TIMEOUT_S)
    try:
        lock.acquire()
    except Timeout:
        raise SlotWriteError(
            f"slot {slot_id!r} is busy: another writer held it for {LOCK_TIMEOUT_S:.0f} s; nothing was changed"
        ) from None
    except OSError as exc:
        raise SlotWriteError(f"{bus_name} cannot lock slot {slot_id!r}: {os_reason(exc)}") from None
    try:
        yield
    finally:
        lock.release()


def _lock_path(root: Path, slot_id: str, bus_name: str) -> Path:
    """The slot's lock file in a real `.locks` folder, with any planted symlink removed."""
    validate_id(slot_id)
    try:
        root.mkdir(parents=True, exist_ok=True)
        locks = ensure_real_dir(root / LOCK_DIR)
        path = locks / f"{slot_id}.lock"
        if os.path.islink(path):
            os.unlink(path)  # removes the link only, never its target
    except UnsafeFile as exc:
        raise SlotWriteError(f"{bus_name} cannot lock slot {slot_id!r}: {exc}") from None
    except OSError as exc:
        raise SlotWriteError(f"{bus_name} cannot lock slot {slot_id!r}: {os_reason(exc)}") from None
    return path
