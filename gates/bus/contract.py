"""The bus contract: what every caller may ask of a bus, and what every backend must do.

Two protocols, as zarr keeps its store contract apart from its stores:
- `SlotBus`: what a gate and the Bus nodes need (publish, read, load, a fingerprint).
- `BusAdmin`: what the slot browser, the command line and the HTTP routes need on top
  (list, info, history, delete, rename, pin, policy, usage, thumbnail bytes, a verified
  stream of the exact slot file, previews).

Callers get a bus from `gates.bus.open_bus(location)` and never touch a path of it; the
folder bus (`gates.bus.local`) and the in-memory bus (`gates.bus.memory`) implement both
protocols and pass one shared suite (tests/bus_contract.py). What a slot *is* (its tensors,
its header, its checksum) is the codec's business (`gates.bus.codec`), shared by every
backend, so a slot published by one backend reads back bit-exactly from the bytes on another.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .errors import SlotError, SlotNotFound
from .ids import format_ref, parse_ref
from .policy import Policy

if TYPE_CHECKING:  # hints only: a listing or a script that only lists needs no torch
    import torch


@dataclass
class SlotInfo:
    """What a listing knows about a slot without reading its tensor data."""

    id: str
    image_shape: list[int]
    image_dtype: str
    mask_shape: list[int] | None
    mask_dtype: str | None
    created: float
    bytes: int
    has_thumb: bool = False
    checksum: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    version: int = 0  # 0 = latest, -1 = the one before, ...
    versions: int = 1  # how many are kept
    pinned: bool = False
    latent_shape: list[int] | None = None
    latent_dtype: str | None = None

    @property
    def batch(self) -> int:
        return self.image_shape[0] if self.image_shape else 0

    @property
    def ref(self) -> str:
        """What load() takes to get this exact version back."""
        return format_ref(self.id, -self.version)

    @classmethod
    def damaged(cls, slot_id: str, error: str, version: int = 0) -> SlotInfo:
        """A listing's row for a slot that could not be read: the id and why, nothing else."""
        return cls(
            id=slot_id,
            image_shape=[],
            image_dtype="",
            mask_shape=None,
            mask_dtype=None,
            created=0.0,
            bytes=0,
            error=error,
            version=version,
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["batch"] = self.batch
        d["ref"] = self.ref
        return d


def info_or_damaged(info: Callable[[str], SlotInfo], ref: str) -> SlotInfo:
    """`info(ref)`, or the damaged row of `ref` when its files are there but unreadable: what
    a listing or a history shows. A slot that is not there stays SlotNotFound."""
    slot_id, back = parse_ref(ref)
    try:
        return info(ref)
    except SlotNotFound:
        raise
    except SlotError as exc:
        return SlotInfo.damaged(slot_id, str(exc), version=-back)


@dataclass
class SlotData:
    """Everything a slot holds: what a resume needs. `mask` and `latent` are None when absent."""

    image: torch.Tensor
    mask: torch.Tensor | None
    latent: dict[str, Any] | None
    meta: dict[str, Any]


class SlotStream(Protocol):
    """The exact bytes of one slot version, checksum already verified: what a download sends.

    Reads come from the version that was verified, whatever a publish does meanwhile.
    """

    @property
    def size(self) -> int:
        """The slot file's length in bytes."""

    def chunks(self, chunk_size: int) -> Iterator[bytes]:
        """The file front to back, `chunk_size` bytes at a time (the last may be shorter)."""


@runtime_checkable
class SlotBus(Protocol):
    """What gates and the Bus nodes use: publish, read, and enough to notice a change."""

    @property
    def name(self) -> str:
        """How messages name the bus: "bus 'label'" (never a server path or a secret)."""

    def publish(
        self,
        slot_id: str,
        image: torch.Tensor,
        mask: torch.Tensor | None = None,
        meta: dict[str, Any] | None = None,
        latent: dict[str, Any] | None = None,
    ) -> SlotInfo:
        """Store the tensors exactly under `slot_id`, replacing it atomically.

        Raises:
            ValueError: a bad id or tensors that are not an IMAGE/MASK/LATENT.
            SlotMetaTooLarge: meta too large to read back; nothing written.
            SlotWriteError: the storage refused (full, busy, permissions); the previous
                version is unchanged.
        """

    def read(self, ref: str, device: str | torch.device = "cpu", verify: bool = True) -> SlotData:
        """Image, mask, latent and meta of `ref` ('id' or 'id@-N'), bit-identical to what
        was published. SlotNotFound / SlotCorrupt (a checksum that fails, a crafted file)."""

    def load(
        self, ref: str, device: str | torch.device = "cpu", verify: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(image, mask) as `read` gives them; a slot without a mask yields zeros [B,H,W]
        float32, ComfyUI's MASK convention."""

    def fingerprint(self, slot_id: str) -> str:
        """A string that changes whenever the slot is republished ("missing" when absent)."""

    def exists(self, slot_id: str) -> bool:
        """Whether the slot has a current version."""


@runtime_checkable
class BusAdmin(SlotBus, Protocol):
    """What the slot browser, the command line and the routes use on top of `SlotBus`."""

    @property
    def location(self) -> str:
        """The location `open_bus` was given, as a person would type it again."""

    @property
    def label(self) -> str:
        """The bus's short name for a page's title (a folder's name, never its path)."""

    def bus_exists(self) -> bool:
        """Whether there is a bus at the location to read (a typo'd folder is none); the
        first publish or policy change creates it. ValueError where none can ever be made
        (a file where the bus folder would be). An in-memory bus exists once opened."""

    def list(self) -> builtins.list[SlotInfo]:
        """Every slot, newest first; a damaged one is listed with `error` set, never hidden."""

    def listing_token(self) -> str:
        """A string that changes whenever `list()` would answer differently, and on every
        change made through the bus (publish, delete, rename, pin, policy); equal tokens mean
        an equal listing, so a client holding a listing asks for it again only when the token
        moved (`/bus/list`'s ETag). Take it *before* the `list()` it goes with: a change in
        between then shows as a new token next time, never as an old token on new rows. Costs
        at most what a `list()` does; backends answer it cheaply for an unchanged bus."""

    def ids(self) -> builtins.list[str]:
        """The ids of every slot, sorted, read from names alone (no slot file is opened)."""

    def info(self, ref: str) -> SlotInfo:
        """What `ref` holds, from its header alone. SlotNotFound / SlotCorrupt."""

    def history(self, slot_id: str) -> builtins.list[SlotInfo]:
        """Every kept version, newest first; a damaged older one has `error` set."""

    def delete(self, slot_id: str) -> int:
        """Remove the slot and every kept version at once; returns the bytes freed."""

    def rename(self, old: str, new: str, overwrite: bool = False) -> SlotInfo:
        """Give a slot another id, its versions and pin with it. FileExistsError when `new`
        exists and not `overwrite`. A damaged slot is renamed too: the slot comes back with
        `error` set (what was done is done; the damage is reported, not raised)."""

    def pin(self, slot_id: str, pinned: bool = True) -> SlotInfo:
        """A pinned slot is never removed to meet the quota. A damaged slot is pinned too and
        comes back with `error` set, as from `rename`."""

    def policy(self) -> Policy:
        """The bus's storage policy, read afresh (another process may have changed it)."""

    def set_policy(self, **changes: Any) -> tuple[Policy, builtins.list[str]]:
        """Save the policy with `changes` (keep, quota_bytes) and meet it at once; returns it
        and the ids the quota removed."""

    def enforce_quota(self, protect: str | None = None, policy: Policy | None = None) -> builtins.list[str]:
        """Delete the oldest unpinned, undamaged slots (never `protect`) until the bus fits."""

    def usage(self) -> int:
        """Bytes the bus uses, everything counted."""

    def thumbnail(self, ref: str) -> bytes:
        """The version's PNG thumbnail, checked to be a small PNG."""

    def render(self, ref: str, index: int, side: int = 1024, mask: bool = False) -> bytes:
        """PNG preview of batch image `index` (with `mask`, of its mask: grey, white = masked;
        SlotNotFound when the slot holds none), long side <= side, in bounded memory."""

    def verified_stream(self, ref: str) -> AbstractContextManager[SlotStream]:
        """The exact slot file of `ref`, its checksum verified first."""

    def where(self, slot_id: str) -> str:
        """Where a person finds the slot outside the pack (a folder, an object prefix)."""
