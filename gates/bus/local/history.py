"""A slot folder's older versions: `history/<stamp>.safetensors` beside `<stamp>.png`.

When the policy keeps more than one version, a publish hard-links the current files into
`history/` before replacing them (no copy, no gap), and prunes beyond the policy afterwards.
Names are the zero-padded mtime_ns of the version they hold, newest sorting last.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .atomic import atomic_write, fsync_dir
from .safe_files import ensure_real_dir, is_real_dir

HISTORY_DIR = "history"


def older_versions(d: Path) -> list[Path]:
    """Older versions' tensor files of slot folder `d`, newest first.

    A symlinked history folder is ignored: following it could read or prune files
    outside the bus.
    """
    if not is_real_dir(d / HISTORY_DIR):
        return []
    try:
        names = [n for n in os.listdir(d / HISTORY_DIR) if n.endswith(".safetensors") and not n.startswith(".")]
    except FileNotFoundError:
        return []
    return [d / HISTORY_DIR / n for n in sorted(names, reverse=True)]


def archive_current(d: Path, slot_file: str, thumb_file: str) -> None:
    """Hard-link the current version into history before it is replaced (no copy, no gap).

    A crash after this and before the replace leaves the same version twice, never none.
    """
    try:
        stamp = f"{os.lstat(d / slot_file).st_mtime_ns:020d}"
    except FileNotFoundError:
        return
    history = ensure_real_dir(d / HISTORY_DIR)
    for src, dst in ((d / thumb_file, history / f"{stamp}.png"), (d / slot_file, history / f"{stamp}.safetensors")):
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
