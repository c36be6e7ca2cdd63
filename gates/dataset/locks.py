"""One lock per file or folder, between threads, processes and (on NFSv4) machines.

POSIX: `flock` on a descriptor of the file or folder itself, so locking creates no file
beside it (the journal must be the only file the pack writes into a dataset's folder). A
process-wide thread lock per path comes first: where flock is emulated with per-process
record locks (NFS), two threads of one process would otherwise both get it.

Windows: a lock on one byte of the file far past its end (its locks are mandatory: a locked
byte that holds data could not be read by anyone else), exclusive for readers too. A folder
cannot be opened there, so a folder's lock holds between the threads of one process only.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

_THREAD_LOCKS: dict[str, threading.Lock] = {}
_GUARD = threading.Lock()

if sys.platform == "win32":  # mypy narrows on sys.platform, not os.name
    import msvcrt

    _FAR = 1 << 62  # a byte no read or write reaches

    def _lock(fd: int, shared: bool) -> None:
        if fd < 0:
            return
        os.lseek(fd, _FAR, os.SEEK_SET)
        while True:
            try:
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
                return
            except OSError:
                time.sleep(0.01)

    def _unlock(fd: int) -> None:
        if fd >= 0:
            os.lseek(fd, _FAR, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock(fd: int, shared: bool) -> None:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


@contextmanager
def held(path: str, fd: int, *, shared: bool = False) -> Iterator[None]:
    """Hold the lock of `path` (opened as `fd`) while the block runs.

    Args:
        path: the file or folder, the key of this process's thread lock.
        fd: an open descriptor of it (-1 for a folder on Windows, which cannot open one).
        shared: a reader's lock, which other readers may hold at the same time (POSIX).
    """
    with _GUARD:
        thread_lock = _THREAD_LOCKS.setdefault(path, threading.Lock())
    with thread_lock:
        _lock(fd, shared)
        try:
            yield
        finally:
            _unlock(fd)
