"""The in-memory bus: slot files held as bytes in this process, under `memory://<name>`.

It stores exactly what a folder bus writes to disk (the codec's slot file and a PNG
thumbnail) and reads it back through the same header checks and checksums, so it is a full
second implementation of the contract: the shared suite runs against it, a script can
checkpoint into it without a disk, and it shows what an object-store backend must do with
the codec on bytes. Buses of one name share their slots within the process, as two folder
buses of one folder do; nothing survives the process.
"""

from __future__ import annotations

import builtins
import itertools
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import torch

from . import codec
from .contract import SlotData, SlotInfo, info_or_damaged
from .errors import SlotError, SlotNotFound
from .ids import format_ref, parse_ref, validate_id
from .policy import Policy, policy_from_json, policy_to_json
from .quota import enforce_quota
from .tensors import image_and_mask, slot_data, slot_tensors

T = TypeVar("T")
SCHEME = "memory://"


@dataclass
class StoredVersion:
    """One version as stored: the slot file's bytes and its thumbnail's."""

    data: bytes
    thumb: bytes | None
    seq: int = 0  # the bus's publish counter when it was stored: what the fingerprint reports


@dataclass
class _Shelf:
    """Everything one named in-memory bus holds. Versions are newest first."""

    slots: dict[str, list[StoredVersion]] = field(default_factory=dict)
    pinned: set[str] = field(default_factory=set)
    policy: bytes | None = None
    lock: threading.RLock = field(default_factory=threading.RLock)
    publishes: Iterator[int] = field(default_factory=itertools.count)
    nonce: str = field(default_factory=lambda: secrets.token_hex(8))  # a shelf made anew: new tokens
    changes: int = 0  # counts every change: the listing token

    def changed(self) -> None:
        """Count a change (the caller holds `lock`)."""
        self.changes += 1


_shelves: dict[str, _Shelf] = {}
_shelves_lock = threading.Lock()


@dataclass
class _BytesStream:
    """A verified slot file held in memory, as a `SlotStream`."""

    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    def chunks(self, chunk_size: int) -> Iterator[bytes]:
        for at in range(0, len(self.data), chunk_size):
            yield self.data[at : at + chunk_size]


class MemoryBus:
    """All slots of one in-memory bus. Thread-safe; every method copies in and out."""

    def __init__(self, name: str):
        if not name or "/" in name:
            raise ValueError(f"a memory bus is named memory://<name> with no '/', got {SCHEME}{name}")
        self._bus_name = name
        with _shelves_lock:
            self._shelf = _shelves.setdefault(name, _Shelf())

    @property
    def name(self) -> str:
        return f"bus {self._bus_name!r}"

    @property
    def label(self) -> str:
        return self._bus_name

    @property
    def location(self) -> str:
        return SCHEME + self._bus_name

    def bus_exists(self) -> bool:
        """Opening a memory bus makes it: it is there for as long as the process runs."""
        return True

    def where(self, slot_id: str) -> str:
        return f"{self.location}/{validate_id(slot_id)}"

    # -- raw versions ---------------------------------------------------------------------
    def _versions(self, slot_id: str) -> list[StoredVersion]:
        versions = self._shelf.slots.get(validate_id(slot_id))
        if not versions:
            raise SlotNotFound(f"no slot {slot_id!r} in {self.name}")
        return versions

    def _stored(self, ref: str) -> tuple[str, StoredVersion]:
        slot_id, back = parse_ref(ref)
        with self._shelf.lock:
            versions = self._versions(slot_id)
            if back >= len(versions):
                raise SlotNotFound(
                    f"slot {slot_id!r} keeps {len(versions) - 1} older version(s); {ref!r} asks for {back} back"
                )
            return format_ref(slot_id, back), versions[back]

    @staticmethod
    def _header(ref: str, data: bytes) -> codec.Header:
        return _naming(ref, lambda: codec.parse_file(data))

    # -- SlotBus ----------------------------------------------------------------------------
    def publish(
        self,
        slot_id: str,
        image: torch.Tensor,
        mask: torch.Tensor | None = None,
        meta: dict[str, Any] | None = None,
        latent: dict[str, Any] | None = None,
    ) -> SlotInfo:
        validate_id(slot_id)
        tensors, meta = slot_tensors(image, mask, meta, latent)
        data = codec.encode(tensors, meta, time.time())
        thumb = codec.thumbnail(tensors["image"])
        policy = self.policy()
        with self._shelf.lock:
            version = StoredVersion(data, thumb, next(self._shelf.publishes))
            kept = self._shelf.slots.get(slot_id, [])
            self._shelf.slots[slot_id] = [version, *kept][: policy.keep]
            self._shelf.changed()
            info = self.info(slot_id)
        self.enforce_quota(protect=slot_id, policy=policy)
        return info

    def read(self, ref: str, device: str | torch.device = "cpu", verify: bool = True) -> SlotData:
        name, version = self._stored(ref)
        header = self._header(name, version.data)
        tensors = _naming(name, lambda: codec.decode_tensors(version.data, header, verify))
        return slot_data({k: t.to(device) for k, t in tensors.items()}, header.meta)

    def load(
        self, ref: str, device: str | torch.device = "cpu", verify: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return image_and_mask(self.read(ref, device, verify))

    def fingerprint(self, slot_id: str) -> str:
        with self._shelf.lock:
            versions = self._shelf.slots.get(validate_id(slot_id))
            return f"{versions[0].seq}-{len(versions[0].data)}" if versions else "missing"

    def exists(self, slot_id: str) -> bool:
        with self._shelf.lock:
            return bool(self._shelf.slots.get(validate_id(slot_id)))

    # -- BusAdmin ---------------------------------------------------------------------------
    def ids(self) -> builtins.list[str]:
        with self._shelf.lock:
            return sorted(k for k, v in self._shelf.slots.items() if v)

    def info(self, ref: str) -> SlotInfo:
        slot_id, back = parse_ref(ref)
        name, version = self._stored(ref)
        with self._shelf.lock:
            versions, pinned = len(self._shelf.slots.get(slot_id, [])), slot_id in self._shelf.pinned
        return codec.describe(
            slot_id,
            self._header(name, version.data),
            len(version.data),
            version=-back,
            versions=versions,
            pinned=pinned,
            has_thumb=version.thumb is not None,
        )

    def _info_or_damaged(self, ref: str) -> SlotInfo:
        return info_or_damaged(self.info, ref)

    def list(self) -> builtins.list[SlotInfo]:
        out = []
        for slot_id in self.ids():
            try:
                out.append(self._info_or_damaged(slot_id))
            except SlotNotFound:
                continue  # deleted while we listed
        out.sort(key=lambda s: s.created, reverse=True)
        return out

    def listing_token(self) -> str:
        """The shelf's change count: every change counts, under the lock that makes it."""
        with self._shelf.lock:
            return f"{self._shelf.nonce}-{self._shelf.changes}"

    def history(self, slot_id: str) -> builtins.list[SlotInfo]:
        with self._shelf.lock:
            count = len(self._versions(slot_id))
        return [self._info_or_damaged(format_ref(slot_id, n)) for n in range(count)]

    def delete(self, slot_id: str) -> int:
        with self._shelf.lock:
            versions = self._versions(slot_id)
            del self._shelf.slots[slot_id]
            self._shelf.pinned.discard(slot_id)
            self._shelf.changed()
        return sum(_size(v) for v in versions)

    def rename(self, old: str, new: str, overwrite: bool = False) -> SlotInfo:
        validate_id(new)
        with self._shelf.lock:
            self._versions(old)
            if old == new:
                return self._info_or_damaged(new)
            if self._shelf.slots.get(new):
                if not overwrite:
                    raise FileExistsError(f"slot {new!r} already exists; delete it first or overwrite")
                self.delete(new)
            self._shelf.slots[new] = self._shelf.slots.pop(old)
            self._shelf.changed()
            if old in self._shelf.pinned:
                self._shelf.pinned.discard(old)
                self._shelf.pinned.add(new)
            return self._info_or_damaged(new)

    def pin(self, slot_id: str, pinned: bool = True) -> SlotInfo:
        with self._shelf.lock:
            self._versions(slot_id)
            (self._shelf.pinned.add if pinned else self._shelf.pinned.discard)(slot_id)
            self._shelf.changed()
        return self._info_or_damaged(slot_id)

    def policy(self) -> Policy:
        stored = self._shelf.policy
        return Policy() if stored is None else policy_from_json(stored, self.name)

    def set_policy(self, **changes: Any) -> tuple[Policy, builtins.list[str]]:
        policy = replace(self.policy(), **changes)
        with self._shelf.lock:
            self._shelf.policy = policy_to_json(policy)
            self._shelf.changed()
        return policy, self.enforce_quota(policy=policy)

    def enforce_quota(self, protect: str | None = None, policy: Policy | None = None) -> builtins.list[str]:
        return enforce_quota(self, (policy or self.policy()).quota_bytes, protect)

    def usage(self) -> int:
        with self._shelf.lock:
            return sum(_size(v) for versions in self._shelf.slots.values() for v in versions) + len(
                self._shelf.policy or b""
            )

    def thumbnail(self, ref: str) -> bytes:
        name, version = self._stored(ref)
        if version.thumb is None:
            raise SlotNotFound(f"slot {name!r} has no thumbnail")
        return codec.check_thumbnail(name, version.thumb)

    def render(self, ref: str, index: int, side: int = 1024, mask: bool = False) -> bytes:
        name, version = self._stored(ref)
        header = self._header(name, version.data)
        return _naming(name, lambda: codec.preview(name, header, index, side, _reader(version.data), mask))

    @contextmanager
    def verified_stream(self, ref: str) -> Iterator[_BytesStream]:
        name, version = self._stored(ref)
        header = self._header(name, version.data)
        # the bytes this stream sends are the ones checked, whatever a publish does meanwhile
        _naming(name, lambda: codec.verify_stream(_reader(version.data), header))
        yield _BytesStream(version.data)

    # -- what a foreign writer or damage leaves (tests use it to plant a slot) ---------------
    def put_raw(self, slot_id: str, data: bytes, thumb: bytes | None = None) -> None:
        """Store `data` as the current slot file of `slot_id` unchecked, replacing the slot."""
        with self._shelf.lock:
            self._shelf.slots[validate_id(slot_id)] = [StoredVersion(bytes(data), thumb, next(self._shelf.publishes))]
            self._shelf.changed()

    def raw(self, ref: str) -> bytes:
        """The stored slot file of `ref`, unchecked."""
        return self._stored(ref)[1].data


def _naming(ref: str, work: Callable[[], T]) -> T:
    """Run `work` on slot `ref`'s bytes; a failure it reports names the slot, once."""
    try:
        return work()
    except SlotError as exc:
        if str(exc).startswith(f"slot {ref!r}"):
            raise
        raise type(exc)(f"slot {ref!r}: {exc}") from None


def _reader(data: bytes) -> Callable[[int, memoryview], None]:
    """`read_into(offset, buffer)` over a slot file held in memory, as a ranged read would be."""
    view = memoryview(data)

    def read_into(offset: int, out: memoryview) -> None:
        if offset + len(out) > len(view):
            raise codec.truncated()
        out[:] = view[offset : offset + len(out)]

    return read_into


def _size(version: StoredVersion) -> int:
    return len(version.data) + len(version.thumb or b"")


def forget(name: str) -> None:
    """Drop every slot of memory bus `name` (tests start from an empty bus with it)."""
    with _shelves_lock:
        _shelves.pop(name, None)
