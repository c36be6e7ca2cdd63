"""One writer per slot across threads and processes: a lock file per slot, under `.locks/`.

A publish replaces the tensors and the thumbnail in two renames and may archive the old
version; without the lock a second writer landing in between would leave one version's
thumbnail beside another's tensors, or archive over a kept version. A symlink planted as the
locks folder or a lock file is refused or removed, so the lock never creates or truncates a
file outside the bus.

- Private: lock files are 0600 in a 0700 folder. Any account that can open a lock file can
  lock it, and every writer of that slot would wait on it for LOCK_TIMEOUT_S.
- Keyed by the id in lower case (ids are ASCII): ids that differ only in case are one folder
  on a case-insensitive disk (macOS, Windows), so they share one lock, and a rename from one
  to the other takes it once instead of waiting on itself.
- Removed with the slot: when a holder's slot folder is gone (deleted, renamed away, never
  made), it unlinks the lock file before letting go. A writer that was waiting on that file
  then holds a lock on a file no longer at the path; it sees so and locks the path again, so
  two writers never both hold a slot's lock.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from ..errors import SlotWriteError
from ..ids import validate_id
from .safe_files import UnsafeFile, ensure_real_dir

LOCK_DIR = ".locks"
LOCK_TIMEOUT_S = 120.0
MAX_POLL_S = 0.05
_OPEN_FLAGS = (
    os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
)

if sys.platform == "win32":  # mypy narrows on sys.platform, not os.name
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


def os_reason(exc: OSError) -> str:
    """What went wrong, without the server path that str(OSError) carries."""
    return exc.strerror or type(exc).__name__


def lock_key(slot_id: str) -> str:
    """The name of `slot_id`'s lock: one for every id that differs from it only in case."""
    return validate_id(slot_id).lower()


@contextmanager
def slot_lock(root: Path, slot_id: str, bus_name: str) -> Iterator[None]:
    """Hold slot `slot_id`'s writer lock of the bus folder `root`; SlotWriteError when it
    stays busy for LOCK_TIMEOUT_S or cannot be made."""
    with slot_locks(root, [slot_id], bus_name):
        yield


@contextmanager
def slot_locks(root: Path, slot_ids: Iterable[str], bus_name: str) -> Iterator[None]:
    """Hold the writer locks of every slot in `slot_ids` (a rename needs two): taken in one
    order everywhere, so two callers never wait on each other, and once for ids of one key."""
    by_key: dict[str, list[str]] = {}
    for slot_id in slot_ids:
        by_key.setdefault(lock_key(slot_id), []).append(slot_id)
    with ExitStack() as held:
        for key in sorted(by_key):
            held.enter_context(_held(root, key, by_key[key], bus_name))
        yield


@contextmanager
def _held(root: Path, key: str, slot_ids: list[str], bus_name: str) -> Iterator[None]:
    """Hold lock `key` of the slots `slot_ids`; remove its file on the way out, still holding
    it, when none of those slots has a folder."""
    path = _lock_path(root, key, slot_ids[0], bus_name)
    try:
        fd = _acquire(path, LOCK_TIMEOUT_S)
    except TimeoutError:
        raise SlotWriteError(
            f"slot {slot_ids[0]!r} is busy: another writer held it for {LOCK_TIMEOUT_S:.0f} s; nothing was changed"
        ) from None
    except OSError as exc:
        raise SlotWriteError(f"{bus_name} cannot lock slot {slot_ids[0]!r}: {os_reason(exc)}") from None
    try:
        yield
    finally:
        try:
            if not any(os.path.lexists(root / slot_id) for slot_id in slot_ids):
                os.unlink(path)  # Windows cannot unlink an open file: the file then stays
        except OSError:
            pass
        try:
            _unlock(fd)
        finally:
            os.close(fd)


def _acquire(path: Path, timeout: float) -> int:
    """A descriptor of the lock file at `path`, opened and locked; TimeoutError when another
    holder keeps it for `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        fd = os.open(path, _OPEN_FLAGS, 0o600)
        try:
            delay = 0.001
            while not _try_lock(fd):
                if time.monotonic() >= deadline:
                    raise TimeoutError
                time.sleep(delay)
                delay = min(2 * delay, MAX_POLL_S)
            if _is_at(fd, path):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # its last holder removed it meanwhile: lock the file at the path now


def _is_at(fd: int, path: Path) -> bool:
    """Whether the open file `fd` is still the file at `path`."""
    try:
        return os.path.samestat(os.fstat(fd), os.lstat(path))
    except FileNotFoundError:
        return False


def _lock_path(root: Path, key: str, slot_id: str, bus_name: str) -> Path:
    """Lock `key`'s file in a real, private `.locks` folder, with any planted symlink removed."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        locks = ensure_real_dir(root / LOCK_DIR)
        _make_private(locks)
        path = locks / f"{key}.lock"
        if os.path.islink(path):
            os.unlink(path)  # removes the link only, never its target
    except UnsafeFile as exc:
        raise SlotWriteError(f"{bus_name} cannot lock slot {slot_id!r}: {exc}") from None
    except OSError as exc:
        raise SlotWriteError(f"{bus_name} cannot lock slot {slot_id!r}: {os_reason(exc)}") from None
    return path


def _make_private(folder: Path) -> None:
    """0700 for a folder of ours that others may read (0.2.x made `.locks` with the umask)."""
    if not hasattr(os, "geteuid"):  # Windows: no POSIX modes
        return
    st = os.lstat(folder)
    if st.st_mode & 0o077 and st.st_uid == os.geteuid():
        os.chmod(folder, 0o700)
