"""Per-image routing: which batch images took which route, and the sub-batches that follow.

A gate answers with one route per batch image. Its route outputs carry the images of each
route (`take`); its `decisions` output carries the routes themselves (`Decisions`), with the
batch's captions when it has some, so a Gate Split node can cut the matching masks, latents
and captions (`split_mask`, `split_latent`, `Decisions.captions_of`) anywhere downstream.
Everything keeps batch order and copies values exactly (indexing, no resampling).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

DECISIONS_TYPE = "DG_DECISIONS"  # the ComfyUI socket type of a gate's `decisions` output


@dataclass(frozen=True)
class Decisions:
    """What a gate decided: `routes[i]` is the 1-based route of batch image i; `captions[i]`
    its caption as it left the gate and `edited[i]` whether a person changed it (both None
    for a batch without captions)."""

    routes: tuple[int, ...]
    captions: tuple[str, ...] | None = None
    edited: tuple[bool, ...] | None = None

    def __post_init__(self) -> None:
        if not self.routes or not all(type(r) is int and r >= 1 for r in self.routes):
            raise ValueError(f"decisions need one route (an integer from 1) per image, got {self.routes!r}")
        for name in ("captions", "edited"):
            value = getattr(self, name)
            if value is not None and len(value) != len(self.routes):
                raise ValueError(f"decisions need one of {name} per image: {len(value)} for {len(self.routes)}")

    @property
    def batch(self) -> int:
        return len(self.routes)

    def indices(self, route: int) -> list[int]:
        """The batch indices that went down `route`, in batch order."""
        return [i for i, r in enumerate(self.routes) if r == route]

    def captions_of(self, indices: list[int]) -> list[str] | None:
        """The captions of the images at `indices`, in that order; None without captions."""
        return None if self.captions is None else [self.captions[i] for i in indices]


def format_indices(indices: list[int]) -> str:
    """ "0,2,5": how Gate Split shows which images it passed."""
    return ",".join(str(i) for i in indices)


def take(
    tensor: torch.Tensor, indices: list[int], batch: int, what: str = "image", shared_ok: bool = False
) -> torch.Tensor:
    """The sub-batch of `tensor` at `indices` (dim 0), exactly. All of it when every index is
    taken (the tensor itself). With `shared_ok`, a batch of 1 (or a 2-D [H,W] mask) is shared
    by every image and returned whole, as ComfyUI broadcasts it."""
    if shared_ok and (tensor.ndim == 2 or (tensor.shape[0] == 1 and batch != 1)):
        return tensor
    if tensor.ndim == 0 or tensor.shape[0] != batch:
        shape = tuple(tensor.shape)
        raise ValueError(
            f"{what} has a batch of {shape[0] if shape else 0} ({list(shape)}) but "
            f"the decisions are for {batch} images" + ("; a batch of 1 is shared" if shared_ok else "")
        )
    if indices == list(range(batch)):
        return tensor
    return tensor.index_select(0, torch.tensor(indices, dtype=torch.long, device=tensor.device))


def split_mask(mask: torch.Tensor, indices: list[int], batch: int) -> torch.Tensor:
    return take(mask, indices, batch, "mask", shared_ok=True)


def split_latent(latent: dict[str, Any], indices: list[int], batch: int) -> dict[str, Any]:
    """A LATENT's sub-batch: `samples` and a per-image `noise_mask` indexed, a noise mask of
    batch 1 shared, `batch_index` (when one per image) indexed, other keys kept."""
    samples = latent.get("samples") if isinstance(latent, dict) else None
    if not isinstance(samples, torch.Tensor):
        raise ValueError("latent must be a LATENT (a dict with a 'samples' tensor)")
    out = dict(latent)
    out["samples"] = take(samples, indices, batch, "latent", shared_ok=True)
    shared = out["samples"] is samples and samples.shape[0] == 1 and batch != 1
    if isinstance(latent.get("noise_mask"), torch.Tensor) and not shared:
        out["noise_mask"] = take(latent["noise_mask"], indices, batch, "latent noise_mask", shared_ok=True)
    index = latent.get("batch_index")
    if isinstance(index, (list, tuple)) and len(index) == batch and not shared:
        out["batch_index"] = [index[i] for i in indices]
    return out


def route_images(routes: list[int], image: Any, count: int, blocker: Any) -> tuple:
    """`count` route outputs: route k gets the images that took it (in batch order), or
    `blocker()` when none did."""
    decisions = Decisions(tuple(routes))
    out = []
    for k in range(1, count + 1):
        indices = decisions.indices(k)
        out.append(take(image, indices, decisions.batch) if indices else blocker())
    return tuple(out)
