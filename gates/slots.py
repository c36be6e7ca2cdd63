"""The slot store: named, lossless snapshots of IMAGE/MASK tensors on disk.

A slot is a folder `<bus>/<id>/` holding `slot.safetensors` (the exact tensors plus a JSON-ish
header of metadata) and `thumb.png` (what a person sees in pickers and the browser). Folders in
the seed's layout (`image.png` + `mask.png`) still load, as 8-bit float32 tensors.

Why safetensors and not torch.save: the header can be read without touching tensor data (a
listing of thousands of slots stays fast), nothing in the file can execute code, and the
library memory-maps the data so a load is a single copy.
"""
from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import time
import zlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import torch
from filelock import FileLock, Timeout
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from . import images
from .atomic import atomic_write, clean_stale_temps, fsync_dir
from .policy import Policy, read_policy, write_policy

FORMAT = "dataset-gates.slot"
FORMAT_VERSION = 1
SLOT_FILE = "slot.safetensors"
THUMB_FILE = "thumb.png"
LEGACY_IMAGE = "image.png"
LEGACY_MASK = "mask.png"
HISTORY_DIR = "history"
LOCK_DIR = ".locks"
LOCK_TIMEOUT_S = 120.0
PIN_FILE = "pinned"

ID_RULE = ("a slot id is 1-64 characters of letters, digits, '-', '_' and '.', "
           "not starting or ending with '.'")
_ID_RE = re.compile(r"[A-Za-z0-9_-](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9_-])?")
# Names Windows cannot create, with or without an extension.
_RESERVED = re.compile(r"(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?", re.IGNORECASE)


log = logging.getLogger("dataset_gates")


class SlotError(Exception):
    """Base for every failure the store reports; the message names the slot."""


class SlotNotFound(SlotError, LookupError):
    pass


class SlotCorrupt(SlotError):
    pass


class SlotWriteError(SlotError, OSError):
    pass


class SlotIndexError(SlotError, ValueError):
    """A batch index out of range: the caller's mistake, not damage."""


T = TypeVar("T")
_READ_ATTEMPTS = 5
# What safetensors and the OS raise for a file that is damaged, vanished or being replaced.
_READ_ERRORS = (SafetensorError, OSError, ValueError, KeyError, RuntimeError)


def _identity(path: Path) -> tuple[int, int, int, int] | None:
    """Changes whenever the file is replaced (a new inode) or rewritten."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size


def _tree_bytes(folder: Path) -> int:
    """Bytes of every file under `folder` (files vanishing meanwhile count as 0)."""
    total = 0
    for parent, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(parent, name)).st_size
            except FileNotFoundError:
                continue
    return total


def validate_id(slot_id: Any) -> str:
    """Return `slot_id` if it is a safe folder name, else raise ValueError naming the rule."""
    if not isinstance(slot_id, str) or not _ID_RE.fullmatch(slot_id) or _RESERVED.fullmatch(slot_id):
        raise ValueError(f"invalid slot id {slot_id!r}: {ID_RULE}")
    return slot_id


_REF_RE = re.compile(r"(?P<id>[^@]*)@-(?P<back>[1-9][0-9]{0,2})")


def parse_ref(ref: Any) -> tuple[str, int]:
    """'id' -> (id, 0), the latest version; 'id@-2' -> (id, 2), two publishes back."""
    m = _REF_RE.fullmatch(ref) if isinstance(ref, str) else None
    if m:
        return validate_id(m["id"]), int(m["back"])
    return validate_id(ref), 0


def format_ref(slot_id: str, back: int) -> str:
    """The inverse of parse_ref: (id, 0) -> 'id', (id, 2) -> 'id@-2'."""
    return f"{slot_id}@-{back}" if back else slot_id


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


CHECKSUM_CHUNK = 2 << 20
_pool: ThreadPoolExecutor | None = None


def _in_parallel(work: Callable[[Any], int], jobs: list[Any]) -> list[int]:
    """Run chunk jobs on up to eight cores: zlib and numpy copies release the GIL."""
    global _pool
    if len(jobs) < 2:
        return [work(job) for job in jobs]
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1),
                                   thread_name_prefix="gates-checksum")
    return list(_pool.map(work, jobs))


def _chunks(t: torch.Tensor) -> list[np.ndarray]:
    """The tensor's bytes as stored (contiguous CPU), in checksum chunks; bfloat16 included."""
    raw = t.reshape(-1).view(torch.uint8).numpy()
    return [raw[i:i + CHECKSUM_CHUNK] for i in range(0, len(raw), CHECKSUM_CHUNK)]


def _fold(crcs: list[int]) -> str:
    return f"crc32x2m:{zlib.crc32(b''.join(c.to_bytes(4, 'little') for c in crcs)):08x}"


def checksum(tensors: list[torch.Tensor]) -> str:
    """crc32 of every 2 MiB chunk, folded into one crc32 of the chunk crcs.

    Chunks let every core work, so verifying each load stays cheap: crc32 runs at ~7 GB/s a
    core, a 256 MiB batch costs ~15 ms on two.
    """
    return _fold(_in_parallel(zlib.crc32, [c for t in tensors for c in _chunks(t)]))


def copy_with_checksum(sources: list[torch.Tensor]) -> tuple[list[torch.Tensor], str]:
    """Copy (memory-mapped) tensors into owned memory and checksum each 2 MiB chunk as it lands.

    The chunk is still in cache when it is checksummed, so a verified load makes one pass
    over memory instead of two, split across the cores.
    """
    copies = [torch.empty_like(t) for t in sources]

    def copy_then_crc(job: tuple[np.ndarray, np.ndarray]) -> int:
        src, dst = job
        np.copyto(dst, src)
        return zlib.crc32(dst)

    jobs = [pair for src, dst in zip(sources, copies) for pair in zip(_chunks(src), _chunks(dst))]
    return copies, _fold(_in_parallel(copy_then_crc, jobs))


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
    thumb: str | None
    layout: str = "safetensors"
    checksum: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    version: int = 0  # 0 = latest, -1 = the one before, ...
    versions: int = 1  # how many are kept
    pinned: bool = False

    @property
    def batch(self) -> int:
        return self.image_shape[0] if self.image_shape else 0

    @property
    def ref(self) -> str:
        """What load() takes to get this exact version back."""
        return format_ref(self.id, -self.version)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["batch"] = self.batch
        d["ref"] = self.ref
        return d


def _slot_header(f: Any, ref: str, path: Path) -> tuple[dict[str, str], set[str]]:
    """The header and tensor names of an open slot file; SlotCorrupt for any other safetensors."""
    header = f.metadata() or {}
    keys = set(f.keys())
    if header.get("format") != FORMAT or "image" not in keys:
        raise SlotCorrupt(f"slot {ref!r}: {path.name} is not a Dataset Gates slot")
    return header, keys


def _check_index(index: int, count: int) -> None:
    if not 0 <= index < count:
        raise SlotIndexError(f"index must be from 0 to {count - 1}, got {index}")


def _check_tensors(image: Any, mask: Any) -> None:
    if not isinstance(image, torch.Tensor) or image.ndim != 4:
        raise ValueError(f"image must be a tensor [B,H,W,C], got {getattr(image, 'shape', type(image))}")
    if not image.is_floating_point():
        raise ValueError(f"image must be a float tensor, got {_dtype_name(image.dtype)}")
    b, h, w, c = image.shape
    if min(b, h, w) < 1 or not 1 <= c <= 4:
        raise ValueError(f"image shape {list(image.shape)} is not [B>=1,H>=1,W>=1,C in 1..4]")
    if mask is None:
        return
    if not isinstance(mask, torch.Tensor) or mask.ndim not in (2, 3) or not mask.is_floating_point():
        raise ValueError(f"mask must be a float tensor [B,H,W] or [H,W], got "
                         f"{getattr(mask, 'dtype', type(mask))} {list(getattr(mask, 'shape', []))}")
    if tuple(mask.shape[-2:]) != (h, w):
        raise ValueError(f"mask size {list(mask.shape[-2:])} does not match image size [{h}, {w}]")
    if mask.ndim == 3 and mask.shape[0] not in (1, b):
        raise ValueError(f"mask batch {mask.shape[0]} must be 1 or the image batch {b}")


class SlotStore:
    """All slots under one bus folder. Stateless: safe to share between threads and processes."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    def policy(self) -> Policy:
        """Read on every use, so a change made from the command line applies at once."""
        return read_policy(self.root)

    # -- paths -----------------------------------------------------------------------------
    def slot_dir(self, slot_id: str) -> Path:
        """The folder of a slot, guaranteed (after symlinks) to lie inside the bus folder."""
        validate_id(slot_id)
        root = self.root.resolve()
        path = (root / slot_id).resolve()
        if path.parent != root:
            raise ValueError(f"slot {slot_id!r} resolves outside the bus folder {root}")
        return path

    def thumb_path(self, slot_id: str) -> Path:
        return self.slot_dir(slot_id) / THUMB_FILE

    def _history(self, d: Path) -> list[Path]:
        """Older versions' tensor files, newest first (names are zero-padded mtime_ns)."""
        try:
            names = [n for n in os.listdir(d / HISTORY_DIR)
                     if n.endswith(".safetensors") and not n.startswith(".")]
        except FileNotFoundError:
            return []
        return [d / HISTORY_DIR / n for n in sorted(names, reverse=True)]

    def _version(self, ref: str) -> tuple[str, int, Path, Path]:
        """(slot id, steps back, tensor file, thumbnail) for 'id' or 'id@-N'."""
        slot_id, back = parse_ref(ref)
        d = self.slot_dir(slot_id)
        if back == 0:
            return slot_id, 0, d / SLOT_FILE, d / THUMB_FILE
        older = self._history(d)
        if back > len(older):
            raise SlotNotFound(f"slot {slot_id!r} keeps {len(older)} older version(s); "
                               f"{ref!r} asks for {back} back")
        path = older[back - 1]
        return slot_id, back, path, path.with_suffix(".png")

    def exists(self, slot_id: str) -> bool:
        d = self.slot_dir(slot_id)
        return (d / SLOT_FILE).is_file() or (d / LEGACY_IMAGE).is_file()

    def fingerprint(self, slot_id: str) -> str:
        """Changes whenever the slot is republished; what Bus Load's IS_CHANGED reports."""
        d = self.slot_dir(slot_id)
        for name in (SLOT_FILE, LEGACY_IMAGE):
            try:
                st = (d / name).stat()
            except FileNotFoundError:
                continue
            return f"{st.st_mtime_ns}-{st.st_size}-{st.st_ino}"
        return "missing"

    # -- write -----------------------------------------------------------------------------
    def publish(self, slot_id: str, image: torch.Tensor, mask: torch.Tensor | None = None,
                meta: dict[str, Any] | None = None) -> SlotInfo:
        """Store `image` (and `mask`) exactly, replacing the slot atomically.

        The tensor file and its thumbnail are both fully written and fsynced under temporary
        names before either replaces the old one, so a crash or a full disk leaves the previous
        version whole.
        """
        _check_tensors(image, mask)
        d = self.slot_dir(slot_id)
        tensors = {"image": image.detach().to("cpu").contiguous()}
        if mask is not None:
            tensors["mask"] = mask.detach().to("cpu").contiguous()
        created = time.time()
        header = {
            "format": FORMAT,
            "version": str(FORMAT_VERSION),
            "created": repr(created),
            "image_shape": json.dumps(list(tensors["image"].shape)),
            "image_dtype": _dtype_name(image.dtype),
            "checksum": checksum(list(tensors.values())),
            "meta": json.dumps(meta or {}, default=str),
        }
        if mask is not None:
            header["mask_shape"] = json.dumps(list(tensors["mask"].shape))
            header["mask_dtype"] = _dtype_name(mask.dtype)
        thumb = images.png_bytes(images.thumbnail(tensors["image"]))
        policy = self.policy()
        with self._locked(slot_id):
            try:
                d.mkdir(parents=True, exist_ok=True)
                clean_stale_temps(d)
                with atomic_write(d / SLOT_FILE, lambda tmp: save_file(tensors, tmp, metadata=header)) as commit_slot, \
                        atomic_write(d / THUMB_FILE, lambda tmp: Path(tmp).write_bytes(thumb)) as commit_thumb:
                    if policy.keep > 1:
                        self._archive_current(d)
                    commit_slot()
                    commit_thumb()
                fsync_dir(d)
            except (OSError, SafetensorError) as exc:
                raise SlotWriteError(f"could not publish slot {slot_id!r} in {self.root}: {exc}; "
                                     f"the previous version, if any, is unchanged") from exc
            self._prune_history(d, policy.keep - 1)
            info = self.info(slot_id)
        self.enforce_quota(protect=slot_id, policy=policy)  # outside the lock: it takes other slots' locks
        return info

    @contextmanager
    def _locked(self, slot_id: str) -> Iterator[None]:
        """Serialize writers of one slot across threads and processes.

        A publish replaces the tensors and the thumbnail in two renames and may archive the
        old version; without the lock a second writer landing in between would leave one
        version's thumbnail beside another's tensors, or archive over a kept version.
        """
        locks = self.root / LOCK_DIR
        try:
            locks.mkdir(parents=True, exist_ok=True)
            with FileLock(locks / f"{slot_id}.lock", timeout=LOCK_TIMEOUT_S):
                yield
        except Timeout:
            raise SlotWriteError(f"slot {slot_id!r} is busy: another writer held it for "
                                 f"{LOCK_TIMEOUT_S:.0f} s; nothing was changed") from None

    def _archive_current(self, d: Path) -> None:
        """Hard-link the current version into history before it is replaced (no copy, no gap).

        A crash after this and before the replace leaves the same version twice, never none.
        """
        current = d / SLOT_FILE
        try:
            stamp = f"{current.stat().st_mtime_ns:020d}"
        except FileNotFoundError:
            return
        history = d / HISTORY_DIR
        history.mkdir(exist_ok=True)
        for src, dst in ((d / THUMB_FILE, history / f"{stamp}.png"),
                         (current, history / f"{stamp}.safetensors")):
            if src.is_file() and not dst.exists():
                try:
                    os.link(src, dst)
                except OSError:  # a filesystem without hard links
                    with atomic_write(dst, lambda tmp, src=src: shutil.copyfile(src, tmp)) as commit:
                        commit()
        fsync_dir(history)

    def _prune_history(self, d: Path, keep_older: int) -> None:
        """Drop versions beyond the policy, oldest first; each goes in one unlink of its tensors."""
        for path in self._history(d)[keep_older:]:
            path.unlink(missing_ok=True)
            path.with_suffix(".png").unlink(missing_ok=True)

    def pin(self, slot_id: str, pinned: bool = True) -> SlotInfo:
        """A pinned slot is never removed to meet the quota."""
        if not self.exists(slot_id):
            raise SlotNotFound(f"no slot {slot_id!r} in {self.root}")
        marker = self.slot_dir(slot_id) / PIN_FILE
        if pinned:
            marker.touch()
        else:
            marker.unlink(missing_ok=True)
        return self.info(slot_id)

    def usage(self) -> int:
        """Bytes used by everything in the bus folder."""
        return _tree_bytes(self.root)

    def set_policy(self, **changes: Any) -> tuple[Policy, list[str]]:
        """Save the policy with `changes` (keep, quota_bytes) applied and meet it at once.

        Returns the new policy and the ids the quota removed; a lowered `keep` applies at each
        slot's next publish.
        """
        policy = replace(self.policy(), **changes)
        write_policy(self.root, policy)
        return policy, self.enforce_quota(policy=policy)

    def enforce_quota(self, protect: str | None = None, policy: Policy | None = None) -> list[str]:
        """Delete the oldest unpinned slots until the bus fits its quota; returns their ids.

        Damaged slots are never pruned (they may be recoverable), nor is `protect`, the slot
        just published. `policy` saves a second read of the file by a caller that has it.
        """
        quota = (policy or self.policy()).quota_bytes
        if quota is None:
            return []
        used = self.usage()
        removed: list[str] = []
        for info in sorted(self.list(), key=lambda s: s.created):
            if used <= quota:
                break
            if info.pinned or info.error or info.id == protect:
                continue
            try:
                freed = self.delete(info.id)
            except SlotNotFound:  # another process removed it first: just measure again
                used = self.usage()
                continue
            used -= freed
            removed.append(info.id)
            log.info("bus quota: removed slot %r (%d bytes)", info.id, freed)
        if used > quota:
            log.warning("bus %s uses %d bytes, over its quota of %d, with nothing left to prune",
                        self.root, used, quota)
        return removed

    def delete(self, slot_id: str) -> int:
        """Move the folder aside in one rename, then remove it: never a half-deleted slot.

        Returns the bytes freed, so the quota need not walk the whole bus after each deletion.
        """
        with self._locked(validate_id(slot_id)):
            return self._delete_unlocked(slot_id)

    def _delete_unlocked(self, slot_id: str) -> int:
        d = self.slot_dir(slot_id)
        if not self.exists(slot_id):
            raise SlotNotFound(f"no slot {slot_id!r} in {self.root}")
        trash = d.with_name(f".trash-{slot_id}-{secrets.token_hex(4)}")
        try:
            os.replace(d, trash)
        except FileNotFoundError:  # deleted or renamed by another thread/process since the check
            raise SlotNotFound(f"no slot {slot_id!r} in {self.root}") from None
        freed = _tree_bytes(trash)
        shutil.rmtree(trash, ignore_errors=True)
        return freed

    def rename(self, old: str, new: str, overwrite: bool = False) -> SlotInfo:
        src, dst = self.slot_dir(old), self.slot_dir(new)
        first, second = sorted({old, new})  # one order everywhere: no deadlock
        with self._locked(first), self._locked(second):
            return self._rename_unlocked(old, new, src, dst, overwrite)

    def _rename_unlocked(self, old: str, new: str, src: Path, dst: Path, overwrite: bool) -> SlotInfo:
        if not self.exists(old):
            raise SlotNotFound(f"no slot {old!r} in {self.root}")
        if src == dst:
            return self.info(new)
        if dst.exists():
            if not overwrite:
                raise FileExistsError(f"slot {new!r} already exists; delete it first or overwrite")
            self._delete_unlocked(new)
        try:
            os.rename(src, dst)
        except FileNotFoundError:  # deleted or renamed by another thread/process since the check
            raise SlotNotFound(f"no slot {old!r} in {self.root}") from None
        fsync_dir(self.root)
        return self.info(new)

    # -- read ------------------------------------------------------------------------------
    def load(self, ref: str, device: str | torch.device = "cpu",
             verify: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (image, mask) bit-identical to what was published; `ref` may be 'id@-N'.

        The tensors are copies owned by the process (the memory map is closed before
        returning), so the slot may be replaced or deleted right away, Windows included.
        A slot without a mask yields zeros [B,H,W] float32, ComfyUI's MASK convention.
        """
        slot_id, back, path, _ = self._version(ref)
        if path.is_file():
            image, mask = self._load_safetensors(ref, path, verify)
        elif back == 0 and (path.parent / LEGACY_IMAGE).is_file():
            image, mask = self._load_legacy(slot_id, path.parent)
        else:
            raise SlotNotFound(f"no slot {slot_id!r} in {self.root}")
        if mask is None:
            b, h, w, _ = image.shape
            mask = torch.zeros((b, h, w), dtype=torch.float32)
        return image.to(device), mask.to(device)

    def _load_safetensors(self, ref: str, path: Path,
                          verify: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        def read() -> tuple[dict[str, str], list[torch.Tensor], str | None]:
            with safe_open(path, framework="pt") as f:
                header, keys = _slot_header(f, ref, path)
                mapped = [f.get_tensor(k) for k in ("image", "mask") if k in keys]
                if verify:
                    return (header, *copy_with_checksum(mapped))
                return header, [t.clone() for t in mapped], None

        header, tensors, actual = self._read_stable(ref, path, read)
        if verify and header.get("checksum") != actual:
            raise SlotCorrupt(f"slot {ref!r} failed its checksum ({header.get('checksum')} "
                              f"stored, {actual} read): the file is damaged")
        return tensors[0], tensors[1] if len(tensors) > 1 else None

    def _read_failure(self, ref: str, path: Path, exc: BaseException) -> SlotError:
        """What a failed read of `path` tells the caller: the slot is gone, or damaged."""
        if isinstance(exc, FileNotFoundError):
            return SlotNotFound(f"no slot {ref!r} in {self.root}")
        return SlotCorrupt(f"slot {ref!r} is unreadable ({path}): {exc}")

    def _read_stable(self, ref: str, path: Path, read: Callable[[], T]) -> T:
        """Run `read` until the file was not replaced meanwhile.

        safetensors opens the file once for the header and again for the data, so a publish
        landing in between would pair one version's header with the next one's tensors.
        Reads take no lock; only a reader that writers keep beating reads once more holding
        the writers' lock, so it cannot starve and a busy slot is never called damaged.
        """
        for _ in range(_READ_ATTEMPTS):
            before = _identity(path)
            try:
                result = read()
            except SlotError:
                raise
            except _READ_ERRORS as exc:
                if _identity(path) != before:
                    continue
                raise self._read_failure(ref, path, exc) from None
            if _identity(path) == before:
                return result
        with self._locked(parse_ref(ref)[0]):
            try:
                return read()
            except SlotError:
                raise
            except _READ_ERRORS as exc:
                raise self._read_failure(ref, path, exc) from None

    def read_image(self, ref: str, index: int) -> torch.Tensor:
        """One image [H,W,C] of the batch, reading only its bytes: paging a big batch stays cheap."""
        _, _, path, _ = self._version(ref)
        if not path.is_file():
            batch_images = self.load(ref)[0]  # PNG layout: one small image
            _check_index(index, batch_images.shape[0])
            return batch_images[index]

        def read() -> torch.Tensor:
            with safe_open(path, framework="pt") as f:
                sliced = f.get_slice("image")
                _check_index(index, sliced.get_shape()[0])
                return sliced[index:index + 1].clone()[0]
        return self._read_stable(ref, path, read)

    def tensor_file(self, ref: str) -> Path:
        """The exact tensors as a downloadable file (safetensors slots only)."""
        slot_id, _, path, _ = self._version(ref)
        if not path.is_file():
            raise SlotNotFound(f"slot {ref!r} has no tensor file in {self.root}")
        return path

    def _load_legacy(self, slot_id: str, d: Path) -> tuple[torch.Tensor, torch.Tensor | None]:
        try:
            image = images.read_image(d / LEGACY_IMAGE)
            mask = images.read_mask(d / LEGACY_MASK) if (d / LEGACY_MASK).is_file() else None
        except Exception as exc:  # Pillow's error types vary by format
            raise SlotCorrupt(f"slot {slot_id!r} (PNG layout) is unreadable: {exc}") from None
        if mask is not None:
            mask = images.resize_mask(mask, image.shape[1], image.shape[2])
        return image, mask

    def info(self, ref: str) -> SlotInfo:
        """Header-only description of a slot (or of 'id@-N'); raises SlotNotFound / SlotCorrupt."""
        slot_id, back, path, thumb = self._version(ref)
        d = path.parent.parent if back else path.parent
        try:
            names = set(os.listdir(d))
        except FileNotFoundError:
            raise SlotNotFound(f"no slot {slot_id!r} in {self.root}") from None
        return self._describe(slot_id, back, d, names, path, thumb)

    def _describe(self, slot_id: str, back: int, d: Path, names: set[str], path: Path,
                  thumb: Path) -> SlotInfo:
        """SlotInfo from one listing of the slot folder and the file's header, never tensor data.

        One safe_open reads the whole header, so unlike a load it cannot pair two versions.
        """
        ref = format_ref(slot_id, back)
        extra = {"version": -back, "pinned": PIN_FILE in names,
                 "versions": 1 + (len(self._history(d)) if HISTORY_DIR in names else 0)}
        if not back and SLOT_FILE not in names:
            if LEGACY_IMAGE in names:
                return self._legacy_info(slot_id, d, pinned=PIN_FILE in names)
            raise SlotNotFound(f"no slot {slot_id!r} in {self.root}")
        try:
            size = os.stat(path).st_size
            with safe_open(path, framework="pt") as f:
                h, keys = _slot_header(f, ref, path)
                image_shape = list(f.get_slice("image").get_shape())
                mask_shape = list(f.get_slice("mask").get_shape()) if "mask" in keys else None
            has_thumb = thumb.is_file() if back else THUMB_FILE in names
            return SlotInfo(
                id=slot_id, image_shape=image_shape, image_dtype=h["image_dtype"],
                mask_shape=mask_shape, mask_dtype=h.get("mask_dtype"),
                created=float(h["created"]), bytes=size, thumb=str(thumb) if has_thumb else None,
                checksum=h.get("checksum"), meta=json.loads(h.get("meta") or "{}"), **extra)
        except SlotError:
            raise
        except _READ_ERRORS as exc:
            raise self._read_failure(ref, path, exc) from None

    def history(self, slot_id: str) -> list[SlotInfo]:
        """Every kept version, newest first: the latest, then 'id@-1', 'id@-2', ..."""
        d = self.slot_dir(slot_id)
        return [self.info(format_ref(slot_id, n)) for n in range(len(self._history(d)) + 1)]

    def _legacy_info(self, slot_id: str, d: Path, pinned: bool) -> SlotInfo:
        from PIL import Image
        try:
            with Image.open(d / LEGACY_IMAGE) as img:
                w, h = img.size
        except Exception as exc:
            raise SlotCorrupt(f"slot {slot_id!r} (PNG layout) is unreadable: {exc}") from None
        has_mask = (d / LEGACY_MASK).is_file()
        files = [d / LEGACY_IMAGE] + ([d / LEGACY_MASK] if has_mask else [])
        return SlotInfo(
            id=slot_id, image_shape=[1, h, w, 3], image_dtype="float32",
            mask_shape=[1, h, w] if has_mask else None, mask_dtype="float32" if has_mask else None,
            created=(d / LEGACY_IMAGE).stat().st_mtime, bytes=sum(p.stat().st_size for p in files),
            thumb=str(d / LEGACY_IMAGE), layout="png", pinned=pinned)

    def _scan(self) -> Iterator[tuple[str, Path, set[str]]]:
        """(id, folder, file names) of every slot folder, one directory read each.

        Temp and trash names start with '.', and symlinks are skipped, so neither can pose
        as a slot.
        """
        try:
            entries = list(os.scandir(self.root.resolve()))
        except FileNotFoundError:
            return
        for e in entries:
            if e.is_dir(follow_symlinks=False) and _ID_RE.fullmatch(e.name) and \
                    not _RESERVED.fullmatch(e.name):
                try:
                    names = set(os.listdir(e.path))
                except FileNotFoundError:
                    continue  # deleted while we scanned
                if SLOT_FILE in names or LEGACY_IMAGE in names:
                    yield e.name, Path(e.path), names

    def ids(self) -> list[str]:
        return sorted(slot_id for slot_id, _, _ in self._scan())

    def list(self) -> list[SlotInfo]:
        """Every slot, newest first; a damaged one is listed with `error` set rather than hidden."""
        out = []
        for slot_id, d, names in self._scan():
            try:
                out.append(self._describe(slot_id, 0, d, names, d / SLOT_FILE, d / THUMB_FILE))
            except SlotNotFound:
                continue  # deleted while we listed
            except SlotError as exc:
                out.append(SlotInfo(id=slot_id, image_shape=[], image_dtype="", mask_shape=None,
                                    mask_dtype=None, created=0.0, bytes=0, thumb=None,
                                    error=str(exc)))
        out.sort(key=lambda s: s.created, reverse=True)
        return out
