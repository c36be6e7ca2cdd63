"""Reading one file inside a dataset folder, following no symbolic link on the way to it.

A dataset folder may be shared, synced or downloaded: anyone who can write there can plant a
link to a file they should not read through us. The listing never offers a link, and every
read walks down from the dataset's folder one open folder at a time with O_NOFOLLOW, so a
folder swapped for a link after the listing is refused too, not followed.
"""

from __future__ import annotations

import errno
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..bus.local.safe_files import UnsafeFile, is_real_dir, open_regular
from .errors import FileError
from .names import split_rel

_WALKS = os.open in os.supports_dir_fd and hasattr(os, "O_NOFOLLOW") and hasattr(os, "O_DIRECTORY")
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
_CHUNK = 16 << 20


def read_file(root: Path, rel: str, max_bytes: int) -> bytes:
    """The bytes of `rel` inside the folder `root`; FileError, naming `rel`, when it cannot be.

    Args:
        root: the dataset's folder, already resolved (a link in `root` itself is the caller's).
        rel: a relative POSIX path inside it (see `names.split_rel`).
        max_bytes: a file bigger than this is refused before it is read.

    Returns:
        The whole file.

    Raises:
        FileError: gone, a symbolic link (the file or a folder on its way), not a plain file,
            unreadable, or over `max_bytes`.
    """
    parts = split_rel(rel)
    try:
        with _open_in(root, parts) as f:
            size = os.fstat(f.fileno()).st_size
            if size > max_bytes:
                raise FileError(f"{rel} is {size:,} bytes, over the limit of {max_bytes:,}")
            return _read_upto(f, rel, max_bytes)
    except FileNotFoundError:
        raise FileError(f"{rel} is gone (moved or deleted since the folder was listed)") from None
    except UnsafeFile:
        raise FileError(f"{rel} is a symbolic link, a folder or a device, not a plain file") from None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise FileError(f"a folder on the way to {rel} is a symbolic link or a file") from None
        raise FileError(f"{rel} cannot be read ({exc.strerror})") from None


@contextmanager
def _open_in(root: Path, parts: tuple[str, ...]) -> Iterator[io.FileIO]:
    if not _WALKS:  # Windows: check each folder, then open (a race there is the platform's limit)
        for depth in range(1, len(parts)):
            if not is_real_dir(root.joinpath(*parts[:depth])):
                raise UnsafeFile("a folder on the way is a link")
        with open_regular(root.joinpath(*parts)) as f:
            yield f
        return
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in parts[:-1]:
            inner = os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = inner
        with open_regular(Path(parts[-1]), dir_fd=fd) as f:
            yield f
    finally:
        os.close(fd)


def _read_upto(f: io.FileIO, rel: str, max_bytes: int) -> bytes:
    """Read to the end, refusing a file that grew past `max_bytes` while it was read."""
    chunks: list[bytes] = []
    total = 0
    while chunk := f.read(min(_CHUNK, max_bytes + 1 - total)):
        chunks.append(chunk)
        total += len(chunk)
        if total > max_bytes:
            raise FileError(f"{rel} grew over the limit of {max_bytes:,} bytes while it was read")
    return b"".join(chunks)
