"""The tensors a slot holds, checked on the way in and assembled on the way out.

Every backend stores the same four tensors (`image`, `mask`, and a LATENT's `samples` and
`noise_mask`) in the same dtypes; these checks and conversions are written once, here, so a
slot means the same thing on every bus.

torch is imported where a tensor is made or checked, never at import: a listing reads headers
only (dtypes by name, below), so `gates ls` starts without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .contract import SlotData

if TYPE_CHECKING:
    import torch

TENSORS = ("image", "mask", "latent.samples", "latent.noise_mask")  # file and checksum order
LATENT_PREFIX = "latent."

# The dtypes a slot holds, by their safetensors codes: names and sizes, no torch needed.
DTYPE_NAMES = {"F16": "float16", "BF16": "bfloat16", "F32": "float32", "F64": "float64"}
ITEMSIZES = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8}
_CODES = {name: code for code, name in DTYPE_NAMES.items()}


def dtype_name(dtype: torch.dtype) -> str:
    """'float32' for torch.float32: how the header and listings name a dtype."""
    return str(dtype).removeprefix("torch.")


def dtype_code(dtype: torch.dtype) -> str:
    """'F32' for torch.float32: how a slot file's header names it (KeyError for no float)."""
    return _CODES[dtype_name(dtype)]


def torch_dtype(code: str) -> torch.dtype:
    """torch.float32 for 'F32': what the bytes of a tensor so coded are read as."""
    import torch

    dtype: torch.dtype = getattr(torch, DTYPE_NAMES[code])
    return dtype


def _is_float(t: torch.Tensor) -> bool:
    return dtype_name(t.dtype) in _CODES


def check_tensors(image: Any, mask: Any) -> None:
    """ValueError unless `image` is float [B,H,W,C<=4] and `mask` float [B|1,H,W] or [H,W]."""
    import torch

    if not isinstance(image, torch.Tensor) or image.ndim != 4:
        raise ValueError(f"image must be a tensor [B,H,W,C], got {getattr(image, 'shape', type(image))}")
    if not _is_float(image):
        raise ValueError(f"image must be a float tensor, got {dtype_name(image.dtype)}")
    b, h, w, c = image.shape
    if min(b, h, w) < 1 or not 1 <= c <= 4:
        raise ValueError(f"image shape {list(image.shape)} is not [B>=1,H>=1,W>=1,C in 1..4]")
    if mask is None:
        return
    if not isinstance(mask, torch.Tensor) or mask.ndim not in (2, 3) or not _is_float(mask):
        raise ValueError(
            f"mask must be a float tensor [B,H,W] or [H,W], got "
            f"{getattr(mask, 'dtype', type(mask))} {list(getattr(mask, 'shape', []))}"
        )
    if tuple(mask.shape[-2:]) != (h, w):
        raise ValueError(f"mask size {list(mask.shape[-2:])} does not match image size [{h}, {w}]")
    if mask.ndim == 3 and mask.shape[0] not in (1, b):
        raise ValueError(f"mask batch {mask.shape[0]} must be 1 or the image batch {b}")


def check_latent(latent: Any) -> None:
    """ValueError unless `latent` is a ComfyUI LATENT: float `samples` [B,C,(T,)H,W], an
    optional float `noise_mask`, nothing else that is a tensor."""
    import torch

    samples = latent.get("samples") if isinstance(latent, dict) else None
    if not isinstance(samples, torch.Tensor) or not _is_float(samples) or not 3 <= samples.ndim <= 5:
        raise ValueError("latent must be a LATENT dict with float 'samples' of 3 to 5 dimensions")
    noise_mask = latent.get("noise_mask")
    if noise_mask is not None and (
        not isinstance(noise_mask, torch.Tensor) or not _is_float(noise_mask) or not 2 <= noise_mask.ndim <= 5
    ):
        raise ValueError("latent noise_mask must be a float tensor of 2 to 5 dimensions")


def slot_tensors(
    image: torch.Tensor,
    mask: torch.Tensor | None,
    meta: dict[str, Any] | None,
    latent: dict[str, Any] | None,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """What a publish stores: the checked tensors as contiguous CPU tensors named from
    TENSORS, and the meta (a latent's `batch_index`, not a tensor, goes there). ValueError
    for anything that is not an IMAGE, MASK or LATENT."""
    check_tensors(image, mask)
    meta = dict(meta or {})
    tensors = {"image": image, "mask": mask}
    if latent is not None:
        check_latent(latent)
        tensors |= {LATENT_PREFIX + k: latent.get(k) for k in ("samples", "noise_mask")}
        if latent.get("batch_index") is not None:
            meta["latent_batch_index"] = [int(i) for i in latent["batch_index"]]
    return {k: t.detach().to("cpu").contiguous() for k, t in tensors.items() if t is not None}, meta


def slot_data(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> SlotData:
    """What a read returns from the stored tensors and the slot's meta."""
    latent = None
    if LATENT_PREFIX + "samples" in tensors:
        latent = {k[len(LATENT_PREFIX) :]: t for k, t in tensors.items() if k.startswith(LATENT_PREFIX)}
        if "latent_batch_index" in meta:
            latent["batch_index"] = meta["latent_batch_index"]
    return SlotData(tensors["image"], tensors.get("mask"), latent, meta)


def image_and_mask(data: SlotData) -> tuple[torch.Tensor, torch.Tensor]:
    """(image, mask) of a read; a slot without a mask yields zeros [B,H,W] float32, ComfyUI's
    MASK convention."""
    if data.mask is not None:
        return data.image, data.mask
    import torch

    b, h, w, _ = data.image.shape
    return data.image, torch.zeros((b, h, w), dtype=torch.float32, device=data.image.device)
