"""Captions that travel with a batch: one text per image, shown and edited at the pause.

A gate's `captions` input and output are one ComfyUI type, CAPTIONS_TYPE: a Python list of
strings, one per batch image, in batch order. A list rather than one STRING, because a
caption may hold any text (newlines and commas included), so no separator could join them
safely. A list of one is shared by every image, as a mask of batch 1 is.

The same limits hold wherever captions come from (a wired input, a slot, the page's answer),
so what a gate shows can always be sent back and stored: each caption is UTF-8 text of at most
MAX_CAPTION_BYTES, and together they fit MAX_CAPTIONS_STORED bytes of a slot's JSON header
(which holds at most 1 MiB). Pure: no ComfyUI, no disk.
"""

from __future__ import annotations

import json
import re
from typing import Any

CAPTIONS_TYPE = "DG_CAPTIONS"
MAX_CAPTION_BYTES = 64 * 1024
MAX_CAPTIONS_STORED = 512 * 1024
ONE_PER_LINE = "one per line"
ONE_FOR_ALL = "one for all"
SPLITS = (ONE_PER_LINE, ONE_FOR_ALL)


def check_text(text: Any, what: str, limit: int) -> str:
    """`text` if it is a string that UTF-8 can write, of at most `limit` bytes; else ValueError
    naming `what` (a lone surrogate, which a browser can send, could never be saved)."""
    if not isinstance(text, str):
        raise ValueError(f"{what} must be text, got {type(text).__name__}")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError(f"{what} is not valid text (it holds a lone surrogate)") from None
    if size > limit:
        raise ValueError(f"{what} is {size:,} bytes; at most {limit:,} bytes (UTF-8) are allowed")
    return text


def stored_size(captions: list[str]) -> int:
    """The bytes the captions take in a slot's header, where the meta is JSON inside JSON."""
    return len(json.dumps(json.dumps(captions)))


def check_captions(captions: Any, batch: int, shared_ok: bool = False) -> list[str]:
    """`captions` as a list of `batch` strings, each within the limits; with `shared_ok` a
    list of one is repeated for every image. ValueError saying what is wrong, else."""
    if not isinstance(captions, (list, tuple)):
        raise ValueError(f"captions must be a list of {batch} strings, one per batch image")
    if shared_ok and len(captions) == 1:
        captions = list(captions) * batch
    if len(captions) != batch:
        one = " (or one for every image)" if shared_ok else ""
        raise ValueError(f"captions: {len(captions)} for a batch of {batch} images; give one per image{one}")
    out = [check_text(text, f"caption {i + 1}", MAX_CAPTION_BYTES) for i, text in enumerate(captions)]
    if stored_size(out) > MAX_CAPTIONS_STORED:
        raise ValueError(
            f"the captions are too long together: a slot keeps at most {MAX_CAPTIONS_STORED:,} bytes of them"
        )
    return out


def recorded_captions(meta: dict[str, Any], batch: int) -> tuple[list[str] | None, list[bool] | None]:
    """The captions a slot's meta records and which were edited, if they fit its batch; a
    record that does not fit is left out rather than trusted."""
    try:
        captions = check_captions(meta.get("captions"), batch)
    except ValueError:
        return None, None
    edited = meta.get("captions_edited")
    fits = isinstance(edited, list) and len(edited) == batch and all(type(e) is bool for e in edited)
    return captions, (edited if fits else None)


def captions_meta(captions: list[str] | None, edited: list[bool] | None) -> dict[str, Any]:
    """What a slot records of a batch's captions: nothing for a batch without any."""
    if captions is None:
        return {}
    return {"captions": captions, "captions_edited": edited or [False] * len(captions)}


def edited_flags(before: list[str], after: list[str], already: list[bool] | None) -> list[bool]:
    """Per image: its caption was changed here, or had been before (a slot's record)."""
    return [(already[i] if already else False) or a != b for i, (b, a) in enumerate(zip(before, after))]


def captions_from_text(text: str, split: str) -> list[str]:
    """Captions Node's list from a STRING: one caption per line (CRLF or LF; one trailing line
    break ignored), or the whole text as one caption for every image."""
    if split == ONE_FOR_ALL:
        return [text]
    if split != ONE_PER_LINE:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    lines = re.split(r"\r\n|\n|\r", text)
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()
    return lines
