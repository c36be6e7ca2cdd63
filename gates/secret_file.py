"""A secret kept in a file: read one that only its owner can read, or make one on first use.

`gates serve --token-file` reads its token this way (a token on the command line is visible to
every local user in the process list), and ComfyUI's park secret (`gates.comfy.park_secret`)
lives in such a file. A secret that others can read is no secret, so, as ssh does with a
private key, a file that group or others may read or write is refused (on POSIX systems; on
Windows the mode bits mean nothing and are not checked). Messages name the file, never its
content.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

MIN_LENGTH = 16


class SecretFileError(ValueError):
    """A secret file that cannot be used: unreadable, open to others, or too short."""


def read_secret(path: Path) -> str:
    """The secret in `path` (its text, whitespace stripped).

    SecretFileError when it cannot be read, when group or others may read or write it (chmod
    600 fixes that), or when it holds fewer than MIN_LENGTH characters.
    """
    try:
        with open(path, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            if not stat.S_ISREG(mode):
                raise SecretFileError(f"secret file {path} is not a regular file")
            if os.name == "posix" and mode & 0o077:
                raise SecretFileError(
                    f"secret file {path} can be read or written by others (mode {stat.S_IMODE(mode):o}): chmod 600 it"
                )
            raw = f.read(4096)
    except OSError as exc:
        raise SecretFileError(f"cannot read secret file {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise SecretFileError(f"secret file {path} is not UTF-8 text") from None
    if len(text) < MIN_LENGTH:
        raise SecretFileError(f"secret file {path} holds fewer than {MIN_LENGTH} characters")
    return text


def ensure_secret(path: Path) -> str:
    """The secret in `path`, made on first use: 32 random bytes as URL-safe text, in a file
    only its owner can read (0600) in a folder only its owner can enter (0700).

    The file is written whole under a temporary name and then hard-linked into place, which
    fails if the name exists: two processes starting at once both end up reading the same
    secret, never a half-written one.
    """
    if path.exists():
        return read_secret(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(temp, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
    finally:
        temp.unlink(missing_ok=True)
    return read_secret(path)
