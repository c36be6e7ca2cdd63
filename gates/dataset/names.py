"""File names in a dataset: natural order, relative paths that stay inside, portable names.

A path inside a dataset is always a relative POSIX path ("sub/cat_001.png") so that it means
the same on every system and in every JSON it travels in; these checks are what keep one from
ever naming a file outside its folder.
"""

from __future__ import annotations

import re

from .errors import DatasetError

_DIGITS = re.compile(r"(\d+)")
# Names Windows reserves for devices, with or without an extension ("con.txt" is a device too).
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}
_FORBIDDEN_CHARS = re.compile(r'[\x00-\x1f<>:"|?*\\]')
MAX_NAME_BYTES = 200  # one path part, in UTF-8; most file systems allow 255


def natural_key(rel: str) -> tuple[tuple[tuple[str | int, ...], ...], str]:
    """Sort key for a relative path: "img2" before "img10", case-insensitive, folder by folder.

    Each part is split into runs of text and of digits (text at even places, numbers at odd
    ones, so two keys never compare a number with text); the path itself breaks ties ("img01"
    and "img1", "A" and "a") so the order is total and the same on every run.
    """
    parts = tuple(
        tuple(int(run) if i % 2 else run for i, run in enumerate(_DIGITS.split(part.casefold())))
        for part in rel.split("/")
    )
    return parts, rel


def split_rel(rel: str) -> tuple[str, ...]:
    """The parts of a relative POSIX path that stays inside its folder; DatasetError otherwise.

    Refused: empty, absolute ("/x", "C:/x", "//host/x"), a backslash, a NUL, and "", "." or
    ".." as a part. Nothing is resolved: a path is refused for what it says, not for where a
    link would take it (links are never followed anyway).
    """
    if not isinstance(rel, str) or not rel:
        raise DatasetError("a file path inside the dataset is empty")
    if "\x00" in rel or "\\" in rel or rel.startswith("/") or re.match(r"^[A-Za-z]:", rel):
        raise DatasetError(f"{rel} is not a relative path inside the dataset")
    parts = tuple(rel.split("/"))
    if any(part in ("", ".", "..") for part in parts):
        raise DatasetError(f"{rel} leaves its folder or has an empty part")
    return parts


def check_portable(part: str) -> None:
    """Refuse a name a trainer's system might not be able to write or read back.

    Windows-reserved device names (con, nul, com1, ... with any extension), characters
    Windows forbids, a trailing dot or space, names that are not valid UTF-8 (an undecodable
    byte kept by the file system) and names over MAX_NAME_BYTES.
    """
    try:
        size = len(part.encode("utf-8"))
    except UnicodeEncodeError:
        raise DatasetError(f"{part.encode('utf-8', 'replace').decode()} is not a valid UTF-8 name") from None
    if _FORBIDDEN_CHARS.search(part) or part.endswith((".", " ")):
        raise DatasetError(f"{part} has a character or an ending Windows cannot store")
    if part.split(".")[0].casefold().rstrip(" ") in _RESERVED:
        raise DatasetError(f"{part} is a name Windows reserves for a device")
    if size > MAX_NAME_BYTES:
        raise DatasetError(f"{part[:40]}... is longer than {MAX_NAME_BYTES} bytes")
