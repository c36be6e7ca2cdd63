"""A slot folder's older versions: `history/v<number>.safetensors` beside `v<number>.png`.

When the policy keeps more than one version, a publish hard-links the current files into
`history/` before replacing them (no copy, no gap), and prunes beyond the policy afterwards.

A version is named by its number, which the store assigns under the slot's lock and writes
in the version's header (`seq`), never by a clock: FAT32, exFAT, HFS+ and some SMB shares
keep 1- or 2-second timestamps, and two versions published within one step would share a
name (one read for the other, one lost). 0.2.x named versions by their mtime_ns in 20 digits;
every such name sorts before every numbered one ('v' after any digit), so a slot kept by
0.2.x keeps its order, its old versions older than any new one.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from ..errors import SlotCorrupt
from . import slot_file
from .atomic import atomic_write, fsync_dir
from .safe_files import ensure_real_dir, is_real_dir, open_regular

HISTORY_DIR = "history"
_NAME = re.compile(r"(v?)(\d{20})\.safetensors")  # numbered, or 0.2.x's mtime_ns


def older_versions(d: Path) -> list[Path]:
    """Older versions' tensor files of slot folder `d`, newest first.

    A symlinked history folder is ignored: following it could read or prune files
    outside the bus.
    """
    if not is_real_dir(d / HISTORY_DIR):
        return []
    try:
        names = [n for n in os.listdir(d / HISTORY_DIR) if _NAME.fullmatch(n)]
    except FileNotFoundError:
        return []
    return [d / HISTORY_DIR / n for n in sorted(names, reverse=True)]


def numbers(d: Path, current_file: str) -> tuple[int | None, int]:
    """The number of slot folder `d`'s current version (None when there is none) and the
    number the next version takes. Call under the slot's lock.

    A current version without a number of its own (written by 0.2.x, or damaged) takes the
    one after every kept version's, which is where it sorts: it is the newest of them.
    """
    kept = max((int(m[2]) for p in older_versions(d) if (m := _NAME.fullmatch(p.name)) and m[1]), default=0)
    try:
        with open_regular(d / current_file) as f:
            current = slot_file.read_header(f).seq or kept + 1
    except FileNotFoundError:
        return None, kept + 1
    except (SlotCorrupt, OSError):
        current = kept + 1
    return current, max(current, kept) + 1


def archive_current(d: Path, current_file: str, thumb_file: str, number: int) -> None:
    """Hard-link the current version, number `number`, into history before it is replaced
    (no copy, no gap).

    A crash after this and before the replace leaves the same version twice, never none; the
    next publish finds it archived under its number already.
    """
    history = ensure_real_dir(d / HISTORY_DIR)
    stem = f"v{number:020d}"
    for src, dst in ((d / thumb_file, history / f"{stem}.png"), (d / current_file, history / f"{stem}.safetensors")):
        if src.is_file() and not src.is_symlink() and not os.path.lexists(dst):
            try:
                os.link(src, dst, follow_symlinks=False)
            except OSError:  # a filesystem without hard links
                _copy(src, dst)
    fsync_dir(history)


def _copy(src: Path, dst: Path) -> None:
    with atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp)) as commit:
        commit()


def prune(d: Path, keep_older: int) -> None:
    """Drop versions beyond the policy, oldest first, and thumbnails whose tensors are gone."""
    kept = older_versions(d)
    for path in kept[keep_older:]:
        path.unlink(missing_ok=True)
        path.with_suffix(".png").unlink(missing_ok=True)
    if not is_real_dir(d / HISTORY_DIR):
        return
    stems = {p.stem for p in kept[:keep_older]}
    for name in os.listdir(d / HISTORY_DIR):
        if name.endswith(".png") and name[:-4] not in stems:
            (d / HISTORY_DIR / name).unlink(missing_ok=True)
