"""The seam between a gate and wherever slots are kept.

A gate publishes what passed and resumes from a slot; it needs nothing else of the storage.
`SlotStore` (a bus folder) is the one implementation today; a bus shared by several ComfyUI
machines (an object store, say) implements these few methods and the gate, the nodes and
their tests stay as they are.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

from .slots import SlotData, SlotInfo


class SlotBus(Protocol):
    """What gates and the Bus nodes use: publish, load, and enough to notice a change."""

    @property
    def name(self) -> str:
        """How messages name the bus (never a server path)."""

    def publish(
        self,
        slot_id: str,
        image: torch.Tensor,
        mask: torch.Tensor | None = None,
        meta: dict[str, Any] | None = None,
        latent: dict[str, Any] | None = None,
    ) -> SlotInfo:
        """Store the tensors exactly under `slot_id`, replacing it atomically."""

    def read(self, ref: str, device: str | torch.device = "cpu", verify: bool = True) -> SlotData:
        """Image, mask, latent and meta, bit-identical to what was published."""

    def load(
        self, ref: str, device: str | torch.device = "cpu", verify: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(image, mask) bit-identical to what was published; SlotNotFound / SlotCorrupt."""

    def fingerprint(self, slot_id: str) -> str:
        """A string that changes whenever the slot is republished."""
