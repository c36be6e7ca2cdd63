"""Reading a caption file exactly as it was written.

A caption is UTF-8 with or without a byte order mark; nothing else about it is changed: line
ends (CRLF included), a trailing newline and surrounding spaces are kept, so a caption saved
back unedited is the same bytes minus the BOM. A file that is not UTF-8 is an error for that
one file, never a guess at another encoding (a wrong guess would be written back as mojibake).
"""

from __future__ import annotations

from pathlib import Path

from .errors import FileError
from .files import read_file

MAX_CAPTION_BYTES = 1 << 20  # 1 MiB: far above any caption a trainer's tokenizer reads
_BOM = b"\xef\xbb\xbf"


def decode_caption(data: bytes, rel: str) -> str:
    """The text of caption bytes: a leading UTF-8 BOM dropped, then strict UTF-8.

    Args:
        data: the caption file's bytes.
        rel: the caption's path inside the dataset, for the error message.

    Returns:
        The caption, line ends as written.

    Raises:
        FileError: the bytes are not UTF-8 (the message says where).
    """
    body = data[len(_BOM) :] if data.startswith(_BOM) else data
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileError(
            f"{rel} is not UTF-8 text (byte 0x{body[exc.start]:02x} at offset {len(data) - len(body) + exc.start});"
            " save it as UTF-8"
        ) from None


def read_caption(root: Path, rel: str, max_bytes: int = MAX_CAPTION_BYTES) -> str:
    """Read the caption file `rel` inside the dataset folder `root` (no link followed).

    Args:
        root: the dataset folder, resolved.
        rel: the caption file's path inside it (an `Entry.caption`).
        max_bytes: a bigger file is an error, refused before it is read.

    Returns:
        The caption text (see `decode_caption`).

    Raises:
        FileError: gone, a link, not a plain file, over `max_bytes`, or not UTF-8.
    """
    return decode_caption(read_file(root, rel, max_bytes), rel)
