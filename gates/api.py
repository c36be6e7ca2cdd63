"""The script API: checkpoint tensors to a bus and read them back, without ComfyUI.

Each function takes the bus location first (a folder, or any location `open_bus` serves) and
opens nothing that outlives the call, so a script, a notebook and a running ComfyUI can share
one bus. What a gate publishes, these read, and the other way round.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .bus import SlotData, SlotInfo, open_bus
from .bus.location import Location as Bus

if TYPE_CHECKING:  # hints only: a listing or a script that only lists needs no torch
    import torch


def publish(
    bus: Bus,
    slot_id: str,
    image: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    latent: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
) -> SlotInfo:
    """Store a batch exactly (dtype, shape and bits) under `slot_id`, replacing it atomically.

    Args:
        bus: the bus location: a folder, e.g. `ComfyUI/input/gate_bus` (created if missing),
            or `memory://name`.
        slot_id: 1-64 letters, digits, '-', '_' or '.'.
        image: float IMAGE [B,H,W,C] (C 1..4), any float dtype, any device.
        mask: optional float MASK [B,H,W], [1,H,W] or [H,W].
        latent: optional ComfyUI LATENT dict (`samples`, optional `noise_mask`, `batch_index`).
        meta: optional JSON-able dict kept in the slot's header.

    Returns:
        The new slot's SlotInfo (shapes, dtypes, checksum, created).

    Example:
        >>> import gates, torch
        >>> gates.publish("/tmp/bus", "ckpt", torch.rand(2, 64, 64, 3)).batch
        2
    """
    return open_bus(bus).publish(slot_id, image, mask, meta=meta, latent=latent)


def load(bus: Bus, ref: str, device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(image, mask) bit-identical to what was published, checksum verified.

    Args:
        bus: the bus location.
        ref: a slot id, or `id@-N` for the version N publishes back (when history is kept).
        device: where the tensors go; "cuda" reads into pinned memory and copies once.

    Returns:
        image [B,H,W,C] in its stored dtype, and the mask (zeros [B,H,W] if none was stored).

    Raises:
        SlotNotFound, SlotCorrupt (a damaged file), ValueError (a bad id).

    Example:
        >>> image, mask = gates.load("/tmp/bus", "ckpt")
    """
    return open_bus(bus).load(ref, device)


def read(bus: Bus, ref: str, device: str | torch.device = "cpu") -> SlotData:
    """Everything a slot holds, verified: `.image`, `.mask` and `.latent` (None when absent)
    and `.meta`; what a resume before decode needs.

    Example:
        >>> gates.read("/tmp/bus", "ckpt").latent is None
        True
    """
    return open_bus(bus).read(ref, device)


def info(bus: Bus, ref: str) -> SlotInfo:
    """What a slot holds, read from its header alone (no tensor data): shapes, dtypes, size,
    creation time, checksum, meta, versions kept, pinned.

    Example:
        >>> gates.info("/tmp/bus", "ckpt").image_shape
        [2, 64, 64, 3]
    """
    return open_bus(bus).info(ref)


def list_slots(bus: Bus) -> list[SlotInfo]:
    """Every slot of the bus, newest first; a damaged one is listed with `.error` set.

    Example:
        >>> [s.id for s in gates.list_slots("/tmp/bus")]
        ['ckpt']
    """
    return open_bus(bus).list()


def delete(bus: Bus, slot_id: str) -> int:
    """Remove a slot and every kept version of it in one rename; returns the bytes freed.

    Example:
        >>> gates.delete("/tmp/bus", "ckpt") > 0
        True
    """
    return open_bus(bus).delete(slot_id)
