"""The seed's PNG layout: a slot folder holding `image.png` (+ `mask.png`) from before slots
were safetensors files. The store converts such a folder the first time anything reads it;
this module tells one apart and reads its pictures safely.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import SlotCorrupt
from .safe_files import open_regular

if TYPE_CHECKING:
    import torch

LEGACY_IMAGE = "image.png"
LEGACY_MASK = "mask.png"
MIGRATED_META = {"source": "migrated from the PNG layout"}


def seed_layout(d: Path, slot_file: str) -> bool:
    """A folder in the seed's PNG layout, not yet migrated."""
    return not os.path.lexists(d / slot_file) and os.path.lexists(d / LEGACY_IMAGE)


def read_seed_pngs(slot_id: str, d: Path) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The seed's image.png and mask.png, PNG only, pixel-capped, read through safe opens.

    The 8-bit values are kept exactly (as float32 v/255, what the seed's loader gave).
    """
    from ... import images  # Pillow and torch: only a migration needs them

    try:
        with open_regular(d / LEGACY_IMAGE) as f:
            image = images.read_image(f, formats=("PNG",))
        mask = None
        if os.path.lexists(d / LEGACY_MASK):
            with open_regular(d / LEGACY_MASK) as f:
                mask = images.resize_mask(images.read_mask(f, formats=("PNG",)), image.shape[1], image.shape[2])
    except (ValueError, OSError, SlotCorrupt) as exc:
        raise SlotCorrupt(f"slot {slot_id!r} (PNG layout) cannot be migrated: {exc}") from None
    return image, mask


def seed_created(d: Path) -> float:
    """The creation time a migrated slot keeps: its PNG's."""
    return os.lstat(d / LEGACY_IMAGE).st_mtime


def remove_seed_pngs(d: Path) -> None:
    """Once the new slot read back bit-identical, the PNGs go."""
    for name in (LEGACY_IMAGE, LEGACY_MASK):
        (d / name).unlink(missing_ok=True)
