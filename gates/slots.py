"""The folder store: every slot of one bus folder, its versions, pins and quota.

A slot is a folder `<bus>/<id>/` holding `slot.safetensors` (the exact tensors, in the format
of `slot_format`) and `thumb.png` (what a person sees in pickers and the browser); older
versions, when the policy keeps them, sit in `history/`. A folder in the seed's layout
(`image.png` + `mask.png`) is migrated to a slot the first time anything reads it.

This module owns paths, locks, atomic replacement, listing, history and the quota; what is
inside a slot file is `slot_format`'s business. Every file is opened through `safe_files`,
so a planted symlink, FIFO or foreign file is reported as a damaged slot, never followed.
The gate and the nodes see only the narrow `SlotBus` seam in `bus.py`, so a bus on another
kind of storage can replace this class without touching them.
"""

from __future__ import annotations

import io
import logging
import os
import secrets
import shutil
import stat
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import torch
from filelock import FileLock, Timeout

from . import images, slot_format
from .atomic import atomic_write, clean_stale_temps, fsync_dir
from .errors import SlotCorrupt, SlotError, SlotIndexError, SlotNotFound, SlotTooLarge, SlotWriteError
from .policy import Policy, read_policy, write_policy
from .safe_files import UnsafeFile, ensure_real_dir, is_real_dir, open_regular, read_regular
from .slot_format import LATENT_PREFIX, check_latent, check_tensors
from .slot_ids import format_ref, is_slot_name, parse_ref, validate_id

__all__ = ["SlotStore", "SlotInfo", "SlotData"]  # the errors and the slot id rules: errors.py, slot_ids.py

SLOT_FILE = "slot.safetensors"
THUMB_FILE = "thumb.png"
LEGACY_IMAGE = "image.png"
LEGACY_MASK = "mask.png"
HISTORY_DIR = "history"
LOCK_DIR = ".locks"
LOCK_TIMEOUT_S = 120.0
PIN_FILE = "pinned"
MAX_THUMB_BYTES = 8 << 20  # ours are ~100 KB

log = logging.getLogger("dataset_gates")
T = TypeVar("T")


def _tree_bytes(folder: Path) -> int:
    """Bytes of every file under `folder`, links not followed (files vanishing count as 0)."""
    total = 0
    for parent, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(parent, name)).st_size
            except FileNotFoundError:
                continue
    return total


_thumbs: ThreadPoolExecutor | None = None


def _thumb_pool() -> ThreadPoolExecutor:
    """Two threads that make thumbnails beside the publishes writing their tensor files."""
    global _thumbs
    if _thumbs is None:
        _thumbs = ThreadPoolExecutor(max_workers=2, thread_name_prefix="gates-thumb")
    return _thumbs


def _seed_layout(d: Path) -> bool:
    """A folder in the seed's PNG layout, not yet migrated."""
    return not os.path.lexists(d / SLOT_FILE) and os.path.lexists(d / LEGACY_IMAGE)


def _check_index(index: int, count: int) -> None:
    if not 0 <= index < count:
        raise SlotIndexError(f"index must be from 0 to {count - 1}, got {index}")


def _os_reason(exc: OSError) -> str:
    """What went wrong, without the server path that str(OSError) carries."""
    return exc.strerror or type(exc).__name__


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
            thumb=None,
            error=error,
            version=version,
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["batch"] = self.batch
        d["ref"] = self.ref
        return d


@dataclass
class SlotData:
    """Everything a slot holds: what a resume needs. `mask` and `latent` are None when absent."""

    image: torch.Tensor
    mask: torch.Tensor | None
    latent: dict[str, Any] | None
    meta: dict[str, Any]


@dataclass
class _Version:
    """Where one version of a slot lives: its folder, tensor file and thumbnail."""

    slot_id: str
    back: int
    folder: Path
    path: Path
    thumb: Path

    @property
    def ref(self) -> str:
        return format_ref(self.slot_id, self.back)


class SlotStore:
    """All slots under one bus folder. Stateless: safe to share between threads and processes."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    @property
    def name(self) -> str:
        """How messages name the bus: its folder name, never the server's full path."""
        return f"bus {self.root.name!r}"

    def policy(self) -> Policy:
        """Read on every use, so a change made from the command line applies at once."""
        return read_policy(self.root)

    # -- paths -----------------------------------------------------------------------------
    def slot_dir(self, slot_id: str) -> Path:
        """The folder of a slot: one validated name under the bus, never a symlink."""
        path = self.root / validate_id(slot_id)
        try:
            mode = os.lstat(path).st_mode  # one look: a folder deleted meanwhile is just absent
        except FileNotFoundError:
            return path
        if not stat.S_ISDIR(mode):
            raise SlotCorrupt(f"slot {slot_id!r} is a symbolic link or a file, not a slot folder")
        return path

    def _history(self, d: Path) -> list[Path]:
        """Older versions' tensor files, newest first (names are zero-padded mtime_ns).

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

    def _version(self, ref: str) -> _Version:
        """Where 'id' or 'id@-N' lives; SlotNotFound when fewer versions are kept."""
        slot_id, back = parse_ref(ref)
        d = self.slot_dir(slot_id)
        self.migrate(slot_id)
        if back == 0:
            return _Version(slot_id, 0, d, d / SLOT_FILE, d / THUMB_FILE)
        older = self._history(d)
        if back > len(older):
            raise SlotNotFound(f"slot {slot_id!r} keeps {len(older)} older version(s); {ref!r} asks for {back} back")
        path = older[back - 1]
        return _Version(slot_id, back, d, path, path.with_suffix(".png"))

    def exists(self, slot_id: str) -> bool:
        """Whether the slot has a current version."""
        self.migrate(slot_id)
        return os.path.lexists(self.slot_dir(slot_id) / SLOT_FILE)

    def ids(self) -> list[str]:
        """The ids of every slot folder, sorted; no file is opened."""
        return sorted(slot_id for slot_id, _, _ in self._scan())

    def fingerprint(self, slot_id: str) -> str:
        """Changes whenever the slot is republished; what Bus Load's IS_CHANGED reports."""
        self.migrate(slot_id)
        try:
            st = os.lstat(self.slot_dir(slot_id) / SLOT_FILE)
        except FileNotFoundError:
            return "missing"
        return f"{st.st_mtime_ns}-{st.st_size}-{st.st_ino}"

    # -- reading one file -------------------------------------------------------------------
    @contextmanager
    def _open(self, v: _Version) -> Iterator[tuple[_Version, io.FileIO, slot_format.Header]]:
        """The version's tensor file, open and with its header checked.

        Everything read through the yielded file comes from one inode, so a publish that
        replaces the path meanwhile cannot pair one version's header with another's data.
        """
        try:
            f = open_regular(v.path)
        except FileNotFoundError:
            raise SlotNotFound(f"no slot {v.ref!r} in {self.name}") from None
        except SlotCorrupt as exc:
            raise SlotCorrupt(f"slot {v.ref!r}: {exc}") from None
        with f:
            yield v, f, self._checked(v.ref, lambda: slot_format.read_header(f))

    @staticmethod
    def _checked(ref: str, read: Callable[[], T]) -> T:
        """Run a read of slot `ref`; damage and I/O errors become SlotCorrupt naming it."""
        try:
            return read()
        except SlotError as exc:
            if str(exc).startswith(f"slot {ref!r}"):
                raise
            raise type(exc)(f"slot {ref!r}: {exc}") from None
        except OSError as exc:
            raise SlotCorrupt(f"slot {ref!r} is unreadable: {_os_reason(exc)}") from None

    # -- write -----------------------------------------------------------------------------
    def publish(
        self,
        slot_id: str,
        image: torch.Tensor,
        mask: torch.Tensor | None = None,
        meta: dict[str, Any] | None = None,
        latent: dict[str, Any] | None = None,
    ) -> SlotInfo:
        """Store `image` (and `mask`, and a ComfyUI LATENT) exactly, replacing the slot atomically.

        The tensor file and its thumbnail are both fully written and fsynced under temporary
        names before either replaces the old one, so a crash or a full disk leaves the previous
        version whole. A latent's `samples` and `noise_mask` are stored as tensors; its
        `batch_index`, if any, goes in the meta.
        """
        check_tensors(image, mask)
        meta = dict(meta or {})
        tensors = {"image": image, "mask": mask}
        if latent is not None:
            check_latent(latent)
            tensors |= {LATENT_PREFIX + k: latent.get(k) for k in ("samples", "noise_mask")}
            if latent.get("batch_index") is not None:
                meta["latent_batch_index"] = [int(i) for i in latent["batch_index"]]
        tensors = {k: t.detach().to("cpu").contiguous() for k, t in tensors.items() if t is not None}
        policy = self.policy()
        with self._locked(slot_id):
            self._write(slot_id, tensors, meta, time.time(), policy.keep)
            info = self.info(slot_id)
        self.enforce_quota(protect=slot_id, policy=policy)  # outside the lock: it takes other slots' locks
        return info

    def _write(
        self, slot_id: str, tensors: dict[str, torch.Tensor], meta: dict[str, Any], created: float, keep: int
    ) -> None:
        """Write a new current version, the caller holding the slot's lock.

        The tensor file and its thumbnail are both fully written and fsynced under temporary
        names before either replaces the old one, so a crash or a full disk leaves the previous
        version whole. The thumbnail (downscale + PNG, which release the GIL) is made while the
        tensor file is written and fsynced, so a publish costs about the larger of the two.
        """
        d = self.slot_dir(slot_id)
        thumb = _thumb_pool().submit(lambda: images.png_bytes(images.thumbnail(tensors["image"])))
        try:
            ensure_real_dir(d)
            clean_stale_temps(d)
            with (
                atomic_write(d / SLOT_FILE, lambda tmp: slot_format.write(tmp, tensors, meta, created)) as commit_slot,
                atomic_write(d / THUMB_FILE, lambda tmp: Path(tmp).write_bytes(thumb.result())) as commit_thumb,
            ):
                if keep > 1:
                    self._archive_current(d)
                commit_slot()
                commit_thumb()
            fsync_dir(d)
        except UnsafeFile as exc:
            raise SlotWriteError(f"could not publish slot {slot_id!r}: {exc}; nothing was changed") from None
        except OSError as exc:
            raise SlotWriteError(
                f"could not publish slot {slot_id!r} in {self.name}: "
                f"{_os_reason(exc)}; the previous version, if any, is "
                f"unchanged"
            ) from None
        self._prune_history(d, keep - 1)

    # -- the seed's PNG layout --------------------------------------------------------------
    def migrate(self, slot_id: str, dry_run: bool = False) -> bool:
        """Convert a seed-layout folder (`image.png` + `mask.png`) into a slot, in place.

        The 8-bit values are kept exactly (as float32 v/255, what the seed's loader gave), the
        creation time is the PNG's, and the PNGs are removed only once the new slot has been
        read back bit-identical. Returns whether the folder needed it. Every read of the store
        runs this first, under the writer lock, so an upgraded bus never shows a missing slot.
        """
        d = self.slot_dir(slot_id)
        if not _seed_layout(d):
            return False
        if dry_run:
            return True
        with self._locked(slot_id):
            if not _seed_layout(d):
                return False  # another thread or process converted it meanwhile
            image, mask = self._read_seed_pngs(slot_id, d)
            tensors = {"image": image} | ({"mask": mask} if mask is not None else {})
            self._write(
                slot_id,
                tensors,
                {"source": "migrated from the PNG layout"},
                os.lstat(d / LEGACY_IMAGE).st_mtime,
                keep=1,
            )
            back = self.read(slot_id)
            if not (
                torch.equal(back.image, image)
                and (mask is None or (back.mask is not None and torch.equal(back.mask, mask)))
            ):
                (d / SLOT_FILE).unlink(missing_ok=True)
                raise SlotCorrupt(
                    f"slot {slot_id!r}: the migrated slot did not read back exactly; the PNG files are kept"
                )
            for name in (LEGACY_IMAGE, LEGACY_MASK):
                (d / name).unlink(missing_ok=True)
            fsync_dir(d)
        log.info("migrated slot %r from the PNG layout", slot_id)
        return True

    def migrate_all(self, dry_run: bool = False) -> list[tuple[str, str | None]]:
        """Every seed-layout folder of the bus as (id, error or None), converted unless dry_run."""
        out = []
        for slot_id, d, _ in self._scan():
            if _seed_layout(d):
                try:
                    self.migrate(slot_id, dry_run)
                    out.append((slot_id, None))
                except SlotError as exc:
                    out.append((slot_id, str(exc)))
        return out

    def _read_seed_pngs(self, slot_id: str, d: Path) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The seed's image.png and mask.png, PNG only, pixel-capped, read through safe opens."""
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

    @contextmanager
    def _locked(self, slot_id: str) -> Iterator[None]:
        """Serialize writers of one slot across threads and processes.

        A publish replaces the tensors and the thumbnail in two renames and may archive the
        old version; without the lock a second writer landing in between would leave one
        version's thumbnail beside another's tensors, or archive over a kept version. A
        symlink planted as the locks folder or a lock file is refused or removed, so the
        lock never creates or truncates a file outside the bus.
        """
        lock = FileLock(self._lock_path(slot_id), timeout=LOCK_TIMEOUT_S)
        try:
            lock.acquire()
        except Timeout:
            raise SlotWriteError(
                f"slot {slot_id!r} is busy: another writer held it for {LOCK_TIMEOUT_S:.0f} s; nothing was changed"
            ) from None
        except OSError as exc:
            raise SlotWriteError(f"{self.name} cannot lock slot {slot_id!r}: {_os_reason(exc)}") from None
        try:
            yield
        finally:
            lock.release()

    def _lock_path(self, slot_id: str) -> Path:
        """The slot's lock file in a real `.locks` folder, with any planted symlink removed."""
        validate_id(slot_id)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            locks = ensure_real_dir(self.root / LOCK_DIR)
            path = locks / f"{slot_id}.lock"
            if os.path.islink(path):
                os.unlink(path)  # removes the link only, never its target
        except UnsafeFile as exc:
            raise SlotWriteError(f"{self.name} cannot lock slot {slot_id!r}: {exc}") from None
        except OSError as exc:
            raise SlotWriteError(f"{self.name} cannot lock slot {slot_id!r}: {_os_reason(exc)}") from None
        return path

    def _archive_current(self, d: Path) -> None:
        """Hard-link the current version into history before it is replaced (no copy, no gap).

        A crash after this and before the replace leaves the same version twice, never none.
        """
        try:
            stamp = f"{os.lstat(d / SLOT_FILE).st_mtime_ns:020d}"
        except FileNotFoundError:
            return
        history = ensure_real_dir(d / HISTORY_DIR)
        for src, dst in ((d / THUMB_FILE, history / f"{stamp}.png"), (d / SLOT_FILE, history / f"{stamp}.safetensors")):
            if src.is_file() and not src.is_symlink() and not os.path.lexists(dst):
                try:
                    os.link(src, dst, follow_symlinks=False)
                except OSError:  # a filesystem without hard links
                    with atomic_write(dst, lambda tmp, src=src: shutil.copyfile(src, tmp)) as commit:
                        commit()
        fsync_dir(history)

    def _prune_history(self, d: Path, keep_older: int) -> None:
        """Drop versions beyond the policy, oldest first, and thumbnails whose tensors are gone."""
        kept = self._history(d)
        for path in kept[keep_older:]:
            path.unlink(missing_ok=True)
            path.with_suffix(".png").unlink(missing_ok=True)
        if not is_real_dir(d / HISTORY_DIR):
            return
        stems = {p.stem for p in kept[:keep_older]}
        for name in os.listdir(d / HISTORY_DIR):
            if name.endswith(".png") and name[:-4] not in stems:
                (d / HISTORY_DIR / name).unlink(missing_ok=True)

    def pin(self, slot_id: str, pinned: bool = True) -> SlotInfo:
        """A pinned slot is never removed to meet the quota."""
        if not self.exists(slot_id):
            raise SlotNotFound(f"no slot {slot_id!r} in {self.name}")
        marker = self.slot_dir(slot_id) / PIN_FILE
        try:
            if pinned and not os.path.lexists(marker):
                os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644))
            elif not pinned:
                marker.unlink(missing_ok=True)  # a planted link is removed, not followed
        except OSError as exc:
            raise SlotWriteError(
                f"could not {'pin' if pinned else 'unpin'} slot {slot_id!r}: {_os_reason(exc)}"
            ) from None
        return self.info(slot_id)

    def usage(self) -> int:
        """Bytes used by everything in the bus folder."""
        return _tree_bytes(self.root)

    def set_policy(self, **changes: Any) -> tuple[Policy, list[str]]:
        """Save the policy with `changes` (keep, quota_bytes) applied and meet it at once.

        Returns the new policy and the ids the quota removed; a lowered `keep` applies at each
        slot's next publish. A full disk is SlotWriteError, and the old policy stays.
        """
        policy = replace(self.policy(), **changes)
        try:
            write_policy(self.root, policy)
        except OSError as exc:
            raise SlotWriteError(
                f"could not save the storage policy of {self.name}: {_os_reason(exc)}; the old policy stays"
            ) from None
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
            log.warning("%s uses %d bytes, over its quota of %d, with nothing left to prune", self.name, used, quota)
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
            raise SlotNotFound(f"no slot {slot_id!r} in {self.name}")
        trash = d.with_name(f".trash-{slot_id}-{secrets.token_hex(4)}")
        self._move(slot_id, d, trash, "delete")
        freed = _tree_bytes(trash)
        shutil.rmtree(trash, ignore_errors=True)  # rmtree never follows links inside
        return freed

    def rename(self, old: str, new: str, overwrite: bool = False) -> SlotInfo:
        """Give a slot another id (all its versions and its pin go with it)."""
        src, dst = self.slot_dir(old), self.slot_dir(new)
        if src == dst:
            if not self.exists(old):
                raise SlotNotFound(f"no slot {old!r} in {self.name}")
            return self.info(new)
        first, second = sorted((old, new))  # one order everywhere: no deadlock
        with self._locked(first), self._locked(second):
            return self._rename_unlocked(old, new, src, dst, overwrite)

    def _rename_unlocked(self, old: str, new: str, src: Path, dst: Path, overwrite: bool) -> SlotInfo:
        if not self.exists(old):
            raise SlotNotFound(f"no slot {old!r} in {self.name}")
        if os.path.lexists(dst):
            if not overwrite:
                raise FileExistsError(f"slot {new!r} already exists; delete it first or overwrite")
            self._delete_unlocked(new)
        self._move(old, src, dst, "rename")
        fsync_dir(self.root)
        return self.info(new)

    def _move(self, slot_id: str, src: Path, dst: Path, doing: str) -> None:
        """Rename slot `slot_id`'s folder `src` to `dst`, a name the caller made sure is free.

        Callers check that the slot exists first, under its lock; a folder gone since then was
        deleted or renamed by another thread or process: SlotNotFound, like the check itself.
        """
        try:
            os.rename(src, dst)
        except FileNotFoundError:
            raise SlotNotFound(f"no slot {slot_id!r} in {self.name}") from None
        except OSError as exc:
            raise SlotWriteError(f"could not {doing} slot {slot_id!r}: {_os_reason(exc)}") from None

    # -- read ------------------------------------------------------------------------------
    def read(self, ref: str, device: str | torch.device = "cpu", verify: bool = True) -> SlotData:
        """Everything the slot holds, bit-identical to what was published; `ref` may be 'id@-N'.

        The tensors are copies owned by the process (read, not memory-mapped), so the slot
        may be replaced or deleted right away, Windows included. For a CUDA device the read
        goes into pinned memory and one non-blocking copy moves it.
        """
        device = torch.device(device)
        with self._open(self._version(ref)) as (v, f, header):
            tensors = self._checked(v.ref, lambda: slot_format.read_tensors(f, header, verify, device))
        moved = {k: t.to(device, non_blocking=device.type == "cuda") for k, t in tensors.items()}
        latent = None
        if "latent.samples" in moved:
            latent = {k[len(LATENT_PREFIX) :]: t for k, t in moved.items() if k.startswith(LATENT_PREFIX)}
            if "latent_batch_index" in header.meta:
                latent["batch_index"] = header.meta["latent_batch_index"]
        return SlotData(moved["image"], moved.get("mask"), latent, header.meta)

    def load(
        self, ref: str, device: str | torch.device = "cpu", verify: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(image, mask) exactly as published, as `read` gives them; a slot without a mask
        yields zeros [B,H,W] float32, ComfyUI's MASK convention."""
        data = self.read(ref, device, verify)
        if data.mask is not None:
            return data.image, data.mask
        b, h, w, _ = data.image.shape
        return data.image, torch.zeros((b, h, w), dtype=torch.float32, device=data.image.device)

    def render(self, ref: str, index: int, side: int = 1024) -> bytes:
        """PNG preview of batch image `index`, long side <= side, in bounded memory.

        Only that image's bytes are read, band by band, so paging a big batch stays cheap
        and an image too big to render is refused from its header alone.
        """
        with self._open(self._version(ref)) as (v, f, header):
            b, h, w, c = header.image.shape
            _check_index(index, b)
            if h * w > images.MAX_RENDER_PIXELS:
                raise SlotTooLarge(
                    f"slot {v.ref!r}: an image of {w}x{h} pixels is over the "
                    f"render limit of {images.MAX_RENDER_PIXELS} pixels"
                )
            return self._checked(
                v.ref,
                lambda: images.preview_rows(
                    lambda r0, r1: slot_format.read_rows(f, header, index, r0, r1), h, w, c, side
                ),
            )

    def thumbnail(self, ref: str) -> bytes:
        """The version's PNG thumbnail, checked to be a small regular PNG file."""
        v = self._version(ref)
        try:
            data = read_regular(v.thumb, MAX_THUMB_BYTES)
        except FileNotFoundError:
            raise SlotNotFound(f"slot {v.ref!r} has no thumbnail") from None
        except (SlotCorrupt, OSError) as exc:
            raise SlotCorrupt(f"slot {v.ref!r}: thumbnail refused: {exc}") from None
        if not data.startswith(images.PNG_SIGNATURE):
            raise SlotCorrupt(f"slot {v.ref!r}: thumbnail refused: not a PNG file")
        return data

    @contextmanager
    def verified_file(self, ref: str) -> Iterator[tuple[io.FileIO, int]]:
        """The exact slot file, open, its header and checksum verified: what a download sends.

        The same open file is then streamed, so what was verified is what is sent.
        """
        with self._open(self._version(ref)) as (v, f, header):
            self._checked(v.ref, lambda: slot_format.verify(f, header))
            yield f, os.fstat(f.fileno()).st_size

    def info(self, ref: str) -> SlotInfo:
        """Header-only description of a slot (or of 'id@-N'); raises SlotNotFound / SlotCorrupt."""
        v = self._version(ref)
        try:
            names = set(os.listdir(v.folder))
        except (FileNotFoundError, NotADirectoryError):
            raise SlotNotFound(f"no slot {v.slot_id!r} in {self.name}") from None
        return self._describe(v, names)

    def _describe(self, v: _Version, names: set[str]) -> SlotInfo:
        """SlotInfo from one listing of the slot folder and the file's header, never tensor data."""
        extra = {
            "version": -v.back,
            "pinned": PIN_FILE in names,
            "versions": 1 + (len(self._history(v.folder)) if HISTORY_DIR in names else 0),
        }
        if not v.back and SLOT_FILE not in names:
            raise SlotNotFound(f"no slot {v.slot_id!r} in {self.name}")
        with self._open(v) as (_, f, h):
            size = os.fstat(f.fileno()).st_size
        mask, latent = h.mask, h.latent
        has_thumb = os.path.lexists(v.thumb) if v.back else THUMB_FILE in names
        return SlotInfo(
            id=v.slot_id,
            image_shape=list(h.image.shape),
            image_dtype=slot_format.dtype_name(h.image.dtype),
            mask_shape=list(mask.shape) if mask else None,
            mask_dtype=slot_format.dtype_name(mask.dtype) if mask else None,
            created=h.created,
            bytes=size,
            thumb=str(v.thumb) if has_thumb else None,
            checksum=h.checksum,
            meta=h.meta,
            latent_shape=list(latent.shape) if latent else None,
            latent_dtype=slot_format.dtype_name(latent.dtype) if latent else None,
            **extra,
        )

    def history(self, slot_id: str) -> list[SlotInfo]:
        """Every kept version, newest first; a damaged older one is listed with `error` set."""
        d = self.slot_dir(slot_id)
        if not self.exists(slot_id):
            raise SlotNotFound(f"no slot {slot_id!r} in {self.name}")
        return [self._info_or_damaged(format_ref(slot_id, n)) for n in range(len(self._history(d)) + 1)]

    def _info_or_damaged(self, ref: str) -> SlotInfo:
        slot_id, back = parse_ref(ref)
        try:
            return self.info(ref)
        except SlotNotFound:
            raise
        except SlotError as exc:
            return SlotInfo.damaged(slot_id, str(exc), version=-back)

    def _scan(self) -> Iterator[tuple[str, Path, set[str]]]:
        """(id, folder, file names) of every slot folder, one directory read each.

        Temp and trash names start with '.', and symlinks are skipped, so neither can pose
        as a slot.
        """
        try:
            entries = list(os.scandir(self.root))
        except (FileNotFoundError, NotADirectoryError):
            return
        for e in entries:
            if e.is_dir(follow_symlinks=False) and is_slot_name(e.name):
                try:
                    names = set(os.listdir(e.path))
                except FileNotFoundError:
                    continue  # deleted while we scanned
                if SLOT_FILE in names or LEGACY_IMAGE in names:
                    yield e.name, Path(e.path), names

    def list(self) -> list[SlotInfo]:
        """Every slot, newest first; a damaged one is listed with `error` set rather than hidden."""
        out = []
        for slot_id, d, names in self._scan():
            try:
                if SLOT_FILE not in names and self.migrate(slot_id):
                    names = set(os.listdir(d))
                out.append(self._describe(_Version(slot_id, 0, d, d / SLOT_FILE, d / THUMB_FILE), names))
            except SlotNotFound:
                continue  # deleted while we listed
            except SlotError as exc:
                out.append(SlotInfo.damaged(slot_id, str(exc)))
        out.sort(key=lambda s: s.created, reverse=True)
        return out
