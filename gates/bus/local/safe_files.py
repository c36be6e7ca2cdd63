"""Opening files in a folder that someone else may have planted things in.

The bus folder is shared: another user, a sync tool or an attacker may leave a symlink, a
FIFO or a huge file where a slot file should be. Every file the store reads or serves is
opened here, without following a final symlink, and refused unless it is a regular file;
every folder it writes into is refused if it is a symlink.
"""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

from ..errors import SlotCorrupt

# O_NONBLOCK: opening a planted FIFO must not hang the reader; it is refused by fstat below.
_READ_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_BINARY", 0)
    | getattr(os, "O_CLOEXEC", 0)
)


class UnsafeFile(SlotCorrupt):
    """A path in the bus is a symlink, a folder, a device or a FIFO where a file belongs."""


def open_regular(path: Path, dir_fd: int | None = None) -> io.FileIO:
    """Open `path` for reading; FileNotFoundError if absent, UnsafeFile unless a regular file.

    With `dir_fd`, `path` is a name inside that open folder (where the platform allows it), so
    a caller that walked down to the folder without following links opens no link either.
    """
    if os.name == "nt" and os.path.islink(path):  # no O_NOFOLLOW there
        raise UnsafeFile(f"{path.name} is a symbolic link")
    try:
        fd = os.open(path, _READ_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        raise
    except OSError as exc:  # ELOOP: a symlink; others: a socket, no permission
        raise UnsafeFile(f"{path.name} cannot be opened as a plain file ({exc.strerror})") from None
    f = io.FileIO(fd, "rb", closefd=True)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        f.close()
        raise UnsafeFile(f"{path.name} is not a regular file")
    return f


def read_regular(path: Path, max_bytes: int) -> bytes:
    """The whole of a small regular file, refusing one over `max_bytes` before reading it."""
    with open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        if size > max_bytes:
            raise UnsafeFile(f"{path.name} is {size} bytes, over the limit of {max_bytes}")
        return f.read(max_bytes + 1)[:max_bytes]


def is_real_dir(path: Path) -> bool:
    """A folder that is not a symlink (a symlinked one may lead outside the bus)."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def ensure_real_dir(path: Path) -> Path:
    """Create `path` if needed; UnsafeFile if something other than a real folder is there."""
    try:
        path.mkdir(exist_ok=True)
    except FileExistsError:  # a file, or a dangling symlink
        pass
    if not is_real_dir(path):
        raise UnsafeFile(f"{path.name} is a symbolic link or a file where a folder belongs")
    return path
